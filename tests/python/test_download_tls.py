"""TLS: certificates are verified for the hub API and the file downloads; a CA bundle makes a private
hub (self-signed certificate) work; verification can be switched off explicitly."""

from __future__ import annotations

import hashlib
import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import modelagent

COMMIT = "c0ffee" + "0" * 34
CONTENT = b'{"model_type": "tls-test"}\n'
BLOB = hashlib.sha1(b"blob %d\0" % len(CONTENT) + CONTENT).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _send(self, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?")[0]
        if path == "/api/models/org/tls/revision/main":
            self._send(json.dumps({"id": "org/tls", "sha": COMMIT}).encode())
        elif path == f"/api/models/org/tls/tree/{COMMIT}":
            entry = {"type": "file", "path": "config.json", "size": len(CONTENT), "oid": BLOB}
            self._send(json.dumps([entry]).encode())
        elif path == f"/org/tls/resolve/{COMMIT}/config.json":
            self._send(CONTENT, "application/octet-stream")
        else:
            self.send_error(404)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def https_hub(certificate: tuple[Path, Path], hf_env: Path) -> Iterator[str]:
    cert, key = certificate
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_untrusted_certificate_is_refused(https_hub: str, tmp_path: Path) -> None:
    with pytest.raises(modelagent.DownloadError) as info:
        modelagent.download("hf://org/tls", tmp_path / "m", endpoint=https_hub, progress=False)
    message = str(info.value)
    assert "certificate" in message.lower()
    assert f"{https_hub}/api/models/org/tls/revision/main" in message
    assert not (tmp_path / "m" / "config.json").exists()


def test_ca_bundle_makes_a_private_hub_work(https_hub: str, certificate: tuple[Path, Path], tmp_path: Path) -> None:
    options = modelagent.DownloadOptions(ca_bundle=str(certificate[0]))
    result = modelagent.download("hf://org/tls", tmp_path / "m", endpoint=https_hub, options=options, progress=False)
    assert result.commit == COMMIT
    assert (tmp_path / "m" / "config.json").read_bytes() == CONTENT
    assert modelagent.verify(tmp_path / "m").ok


def test_verification_can_be_switched_off_explicitly(https_hub: str, tmp_path: Path) -> None:
    options = modelagent.DownloadOptions(verify_tls=False)
    result = modelagent.download("hf://org/tls", tmp_path / "m", endpoint=https_hub, options=options, progress=False)
    assert result.downloaded == ["config.json"]


def test_ca_bundle_from_the_environment(
    https_hub: str, certificate: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)  # it would be consulted first
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    options = modelagent.DownloadOptions(max_connections=2)
    result = modelagent.download("hf://org/tls", tmp_path / "m", endpoint=https_hub, options=options, progress=False)
    assert (tmp_path / "m" / "config.json").read_bytes() == CONTENT and result.commit == COMMIT
    assert options.ca_bundle == ""  # the caller's options object is left as it was
