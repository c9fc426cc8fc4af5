"""The example plug-in in examples/mirror_source: a manifest-described HTTPS mirror, served on 127.0.0.1
with a self-signed certificate. Registered in-process with register_source, and found through its
``modelagent.sources`` entry point (a dist-info built from its pyproject.toml in tmp_path) both in-process
and by the ``model-agent`` CLI."""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_download_tls import certificate  # noqa: F401 - the self-signed certificate fixture

import modelagent
from modelagent import _core

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mirror_source"
MiB = 1 << 20
FILES = {
    "config.json": b'{"model_type": "llama"}',
    "model.safetensors": bytes(range(256)) * (3 * 4096),  # 3 MiB
    "tokenizer/vocab.txt": b"a\nb\n",
}


def _manifest(files: dict[str, bytes], *, without_digest: tuple[str, ...] = ()) -> bytes:
    entries = []
    for path, data in files.items():
        entry: dict[str, object] = {"path": path, "size": len(data)}
        if path not in without_digest:
            entry["sha256"] = hashlib.sha256(data).hexdigest()
        entries.append(entry)
    return json.dumps(entries).encode()


class Mirror(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, certificate: tuple[Path, Path]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(*certificate)
        self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.content: dict[str, bytes] = {}
        self.seen: list[tuple[str, str | None, str | None]] = []  # (path, Range, Authorization)
        self.token: str | None = None
        self.lock = threading.Lock()

    def publish(self, files: dict[str, bytes], manifest: bytes | None = None) -> str:
        self.content = {f"/models/tiny/{p}": d for p, d in files.items()}
        self.content["/models/tiny/manifest.json"] = manifest if manifest is not None else _manifest(files)
        return f"mirror+https://127.0.0.1:{self.server_port}/models/tiny/manifest.json"

    def gets(self) -> list[str]:
        return [p for p, _, _ in self.seen]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Mirror

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        srv = self.server
        auth = self.headers.get("Authorization")
        with srv.lock:
            srv.seen.append((self.path, self.headers.get("Range"), auth))
        body = srv.content.get(self.path)
        if srv.token is not None and auth != f"Bearer {srv.token}":
            status, body = 401, b""
        elif body is None:
            status, body = 404, b""
        else:
            status = 200
        start, end = 0, len(body)
        rng = self.headers.get("Range")
        if status == 200 and rng:
            first, _, last = rng[len("bytes="):].partition("-")
            start, end = int(first), min(int(last) + 1 if last else len(body), len(body))
            status = 206
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(body)}")
        self.send_header("Content-Length", str(end - start))
        self.end_headers()
        self.wfile.write(body[start:end])


@pytest.fixture
def mirror(certificate: tuple[Path, Path]) -> Iterator[Mirror]:  # noqa: F811
    server = Mirror(certificate)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture
def options(certificate: tuple[Path, Path]) -> modelagent.DownloadOptions:  # noqa: F811
    return modelagent.DownloadOptions(ca_bundle=str(certificate[0]), chunk_size=MiB, max_attempts=2,
                                      retry_base_seconds=0.01, retry_cap_seconds=0.02)  # fmt: skip


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The example registered in-process, the way an application embedding modelagent would."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from modelagent_mirror import MirrorSource

    modelagent.register_source("mirror+https", MirrorSource())
    try:
        yield
    finally:
        modelagent.sources.unregister_source("mirror+https")


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The example as if installed: its package plus a dist-info whose entry_points.txt is generated from
    the example's pyproject.toml, both on sys.path. Yields the site directory."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    site = tmp_path / "site"
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = [f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
             for group, eps in project["entry-points"].items()]  # fmt: skip
    (info / "entry_points.txt").write_text("\n".join(lines))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.syspath_prepend(str(site))
    try:
        yield site
    finally:
        modelagent.sources.unregister_source("mirror+https")


def test_registered_example_downloads_verifies_and_reruns_for_free(
    mirror: Mirror, options: modelagent.DownloadOptions, registered: None, tmp_path: Path
) -> None:
    uri = mirror.publish(FILES)
    dest = tmp_path / "m"
    result = modelagent.download(uri, dest, options=options, progress=False)

    assert sorted(result.downloaded) == sorted(FILES) and result.unverified == []
    for path, data in FILES.items():
        assert (dest / path).read_bytes() == data
    assert result.source == "mirror+https" and result.label == f"127.0.0.1:{mirror.server_port}/models/tiny"
    assert result.snapshot == hashlib.sha256(mirror.content["/models/tiny/manifest.json"]).hexdigest()
    ranges = sorted(r for p, r, _ in mirror.seen if p.endswith("model.safetensors"))
    assert ranges == ["bytes=0-1048575", "bytes=1048576-2097151", "bytes=2097152-3145727"]
    record = modelagent.read_record(dest)
    assert record is not None and record["source"] == "mirror+https" and record["snapshot"] == result.snapshot
    assert modelagent.verify(dest).ok

    mirror.seen.clear()
    rehashed = _core.bytes_rehashed_from_disk()
    again = modelagent.download(uri, dest, options=options, progress=False)
    assert again.downloaded == [] and again.bytes_fetched == 0
    assert mirror.gets() == ["/models/tiny/manifest.json"]
    assert _core.bytes_rehashed_from_disk() == rehashed


def test_wrong_bytes_on_the_mirror_fail_verification(
    mirror: Mirror, options: modelagent.DownloadOptions, registered: None, tmp_path: Path
) -> None:
    uri = mirror.publish(FILES)
    mirror.content["/models/tiny/config.json"] = b'{"model_type": "LLAMA"}'  # same size, other bytes
    with pytest.raises(modelagent.VerificationError, match="config.json"):
        modelagent.download(uri, tmp_path / "m", options=options, progress=False)
    assert not (tmp_path / "m" / "config.json").exists()


def test_unverifiable_entries_filters_and_bad_manifests(
    mirror: Mirror, options: modelagent.DownloadOptions, registered: None, tmp_path: Path
) -> None:
    uri = mirror.publish(FILES, _manifest(FILES, without_digest=("tokenizer/vocab.txt",)))
    result = modelagent.download(uri, tmp_path / "a", options=options, exclude="*.safetensors", progress=False)
    assert sorted(result.downloaded) == ["config.json", "tokenizer/vocab.txt"]
    assert result.excluded == [("model.safetensors", "excluded by pattern '*.safetensors'")]
    assert result.unverified == [("tokenizer/vocab.txt", f"the manifest {uri.removeprefix('mirror+')} gives no sha256")]

    for manifest, needle in [
        (b"{not json", "is not valid JSON"),
        (b'{"files": []}', "must be a JSON list of files"),
        (b'[{"path": "a", "size": -1}]', "entry 0 (a): 'size' must be a non-negative integer"),
        (b'[{"path": "a", "size": 1, "sha256": "XYZ"}]', "'sha256' must be 64 lower-case hex digits"),
    ]:
        mirror.content["/models/tiny/manifest.json"] = manifest
        with pytest.raises(modelagent.DownloadError, match="mirror manifest https://127.0.0.1:.*manifest.json"):
            try:
                modelagent.download(uri, tmp_path / "b", options=options, progress=False)
            except modelagent.DownloadError as e:
                assert needle in str(e)
                raise
    missing = uri.replace("manifest.json", "gone.json")
    with pytest.raises(modelagent.DownloadError, match=r"cannot fetch mirror manifest .*gone\.json: HTTP 404"):
        modelagent.download(missing, tmp_path / "b", options=options, progress=False)


def test_untrusted_certificate_is_refused(mirror: Mirror, registered: None, tmp_path: Path) -> None:
    uri = mirror.publish(FILES)
    with pytest.raises(modelagent.DownloadError, match="CERTIFICATE_VERIFY_FAILED"):
        modelagent.download(uri, tmp_path / "m", progress=False)  # the system's CAs do not know this certificate
    assert mirror.gets() == []  # the handshake failed: no request was made


def test_token_credentials_sign_every_request(
    mirror: Mirror, options: modelagent.DownloadOptions, registered: None, tmp_path: Path
) -> None:
    uri = mirror.publish(FILES)
    mirror.token = "t0k"
    with pytest.raises(modelagent.CredentialsError, match="credentials key 'token'"):
        modelagent.download(uri, tmp_path / "m", options=options, progress=False)
    result = modelagent.download(uri, tmp_path / "m", options=options, credentials={"token": "t0k"}, progress=False)
    assert sorted(result.downloaded) == sorted(FILES)
    assert len(mirror.seen) > len(FILES) + 1  # manifest, files, several ranges
    assert {a for _, _, a in mirror.seen[1:]} >= {"Bearer t0k"}
    assert all(a == "Bearer t0k" for _, _, a in mirror.seen if a is not None)


def test_entry_point_discovery_in_process(
    mirror: Mirror, options: modelagent.DownloadOptions, installed: Path, tmp_path: Path
) -> None:
    assert {"mirror+https", "mirror+http"} <= set(modelagent.registered_schemes())
    source = modelagent.get_source("mirror+https")
    assert type(source).__module__ == "modelagent_mirror.source"
    result = modelagent.download(mirror.publish(FILES), tmp_path / "m", options=options, progress=False)
    assert sorted(result.downloaded) == sorted(FILES)


def test_entry_point_discovery_by_the_cli(
    mirror: Mirror, certificate: tuple[Path, Path], installed: Path, tmp_path: Path  # noqa: F811
) -> None:
    uri = mirror.publish(FILES)
    mirror.token = "cli-token"
    creds = tmp_path / "creds"
    creds.write_text("token=cli-token\n")
    env = dict(os.environ, SSL_CERT_FILE=str(certificate[0]), CURL_CA_BUNDLE=str(certificate[0]),
               PYTHONPATH=os.pathsep.join([str(installed), str(EXAMPLE), os.environ.get("PYTHONPATH", "")]),
               )  # fmt: skip
    dest = tmp_path / "m"
    run = subprocess.run(
        [sys.executable, "-m", "modelagent", "download", uri, "-d", str(dest), "--credentials-file", str(creds),
         "--no-progress"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"127.0.0.1:{mirror.server_port}/models/tiny (")
    assert "3 files" in run.stdout
    assert (dest / "model.safetensors").read_bytes() == FILES["model.safetensors"]

    verify = subprocess.run([sys.executable, "-m", "modelagent", "verify", str(dest)], capture_output=True, text=True,
                            timeout=60, env=env)  # fmt: skip
    assert verify.returncode == 0 and "3 files of mirror+https://" in verify.stdout and "OK" in verify.stdout
