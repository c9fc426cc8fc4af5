"""Python surface of the C++ download engine: plans as dicts, options, progress polled from another
thread while the GIL is released, cancellation (token and Ctrl-C), error mapping, verify_files."""

from __future__ import annotations

import _thread
import hashlib
import http.server
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import modelagent
from modelagent import _core


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.log: list[tuple[str, str | None]] = []
        self.chunk_delay = 0.0  # seconds slept per 64 KiB sent
        self.release = threading.Event()
        self.release.set()
        self.tail_release = threading.Event()  # ranges that do not start at byte 0 wait for it too
        self.tail_release.set()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_port}{path}"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        srv = self.server
        srv.log.append((self.path, self.headers.get("Range")))
        srv.release.wait(30)
        body = srv.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end = 0, len(body)
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            first, _, last = rng[6:].partition("-")
            start = int(first)
            end = int(last) + 1 if last else len(body)
        if start > 0:
            srv.tail_release.wait(30)
        pos = start
        try:
            if rng and rng.startswith("bytes="):
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(end - start))
            self.end_headers()
            while pos < end:
                chunk = body[pos : min(end, pos + 65536)]
                self.wfile.write(chunk)
                pos += len(chunk)
                if srv.chunk_delay:
                    time.sleep(srv.chunk_delay)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.tail_release.set()
    srv.shutdown()
    srv.server_close()


def _entry(srv: _Server, path: str, data: bytes, kind: str = "sha256") -> dict[str, object]:
    srv.files["/" + path] = data
    if kind == "sha256":
        value = hashlib.sha256(data).hexdigest()
    elif kind == "git-blob-sha1":
        value = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    else:
        value = hashlib.md5(data).hexdigest()
    return {"path": path, "url": srv.url("/" + path), "size": len(data), "digest": {"kind": kind, "value": value}}


def test_download_verify_and_report(server: _Server, tmp_path: Path) -> None:
    blob = os.urandom(3 << 20)
    plan = [
        _entry(server, "model.safetensors", blob),
        _entry(server, "config.json", b'{"model_type": "phi"}', "git-blob-sha1"),
        _entry(server, "sub/vocab.txt", b"a\nb\n", "md5"),
    ]
    progress = modelagent.DownloadProgress()
    report = modelagent.run_download(plan, tmp_path, modelagent.DownloadOptions(max_connections=4), None, progress)
    assert isinstance(report, modelagent.DownloadReport)
    assert [f.path for f in report.files] == ["model.safetensors", "config.json", "sub/vocab.txt"]
    assert all(f.downloaded and f.verified for f in report.files)
    assert report.files[0].digest == hashlib.sha256(blob).hexdigest()
    assert report.bytes_fetched == len(blob) + 21 + 4
    assert (tmp_path / "model.safetensors").read_bytes() == blob
    assert (tmp_path / "sub/vocab.txt").read_bytes() == b"a\nb\n"
    assert progress.files_done == progress.files_total == 3
    assert progress.bytes_done == progress.bytes_total == report.bytes_fetched
    assert report.files[1].to_dict()["verified"] is True

    # A second run trusts the verified-stamps: nothing fetched, nothing re-read.
    requests = len(server.log)
    rehashed = modelagent._core.bytes_rehashed_from_disk()
    again = modelagent.run_download(plan, str(tmp_path))
    assert len(server.log) == requests
    assert _core.bytes_rehashed_from_disk() == rehashed
    assert not any(f.downloaded for f in again.files)

    checks = modelagent.verify_files(plan, tmp_path)
    assert [c.verified for c in checks] == [True, True, True]
    (tmp_path / "sub/vocab.txt").write_bytes(b"a\nc\n")
    checks = modelagent.verify_files(plan, tmp_path)
    assert not checks[2].verified and "mismatch" in checks[2].note


def test_progress_is_readable_from_another_thread_while_the_gil_is_released(server: _Server, tmp_path: Path) -> None:
    blob = os.urandom(12 << 20)
    plan = [_entry(server, "slow.bin", blob)]
    server.chunk_delay = 0.005  # about 12 MiB/s per connection
    progress = modelagent.DownloadProgress()
    seen: list[int] = []
    fetched: list[int] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            seen.append(progress.bytes_done)
            fetched.append(progress.bytes_fetched)
            time.sleep(0.01)

    poller = threading.Thread(target=poll)
    poller.start()
    modelagent.run_download(plan, tmp_path, None, None, progress)
    done.set()
    poller.join()
    # The poller kept running (so the GIL was free) and watched the count grow.
    assert len(seen) > 10
    assert any(0 < v < len(blob) for v in fetched)
    assert any(0 < v < len(blob) for v in seen)  # written bytes advance in 4 MiB buffers
    assert seen == sorted(seen)
    assert progress.bytes_done == len(blob)


def test_cancel_token_from_another_thread(server: _Server, tmp_path: Path) -> None:
    plan = [_entry(server, "held.bin", os.urandom(1 << 20))]
    server.release.clear()
    cancel = modelagent.CancelToken()
    threading.Timer(0.3, cancel.cancel).start()
    started = time.monotonic()
    with pytest.raises(modelagent.CancelledError, match="partial files are kept"):
        modelagent.run_download(plan, tmp_path, cancel=cancel)
    assert time.monotonic() - started < 5
    assert cancel.cancelled
    assert not (tmp_path / "held.bin").exists()


def test_ctrl_c_cancels_and_raises_keyboard_interrupt(server: _Server, tmp_path: Path) -> None:
    blob = os.urandom(4 << 20)
    plan = [_entry(server, "big.bin", blob)]
    # Four 1 MiB ranges: the first one arrives (so there is something to keep for resuming); the server holds
    # the other three until Ctrl-C was handled, so the download cannot finish first however slowly the
    # interrupting thread or the signal check gets to run.
    server.tail_release.clear()
    progress = modelagent.DownloadProgress()

    def interrupt_when_started() -> None:
        deadline = time.monotonic() + 20
        while progress.bytes_done == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        _thread.interrupt_main()

    threading.Thread(target=interrupt_when_started).start()
    with pytest.raises(KeyboardInterrupt):
        modelagent.run_download(plan, tmp_path, modelagent.DownloadOptions(chunk_size=1 << 20), None, progress)
    assert not (tmp_path / "big.bin").exists()
    # What arrived was kept for resuming.
    assert (tmp_path / "big.bin.partial.journal").exists()
    server.tail_release.set()
    report = modelagent.run_download(plan, tmp_path, None, None, modelagent.DownloadProgress())
    assert report.bytes_fetched < len(blob)
    assert (tmp_path / "big.bin").read_bytes() == blob


def test_http_errors_carry_status_and_url(server: _Server, tmp_path: Path) -> None:
    plan = [{"path": "nope.bin", "url": server.url("/nope.bin"), "size": 3, "digest": None}]
    with pytest.raises(modelagent.HttpStatusError) as info:
        modelagent.run_download(plan, tmp_path)
    assert info.value.status == 404
    assert info.value.url == server.url("/nope.bin")
    assert "nope.bin" in str(info.value)


def test_unsafe_paths_and_disk_space(server: _Server, tmp_path: Path) -> None:
    with pytest.raises(modelagent.UnsafePathError, match=r"\.\."):
        modelagent.run_download([{"path": "../evil", "url": server.url("/x")}], tmp_path / "root")
    assert not (tmp_path / "root").exists()
    with pytest.raises(modelagent.UnsafePathError):
        _core.check_safe_relative_path(tmp_path, "/etc/passwd")
    _core.check_safe_relative_path(tmp_path, "ok/file.bin")
    huge = [{"path": "huge.bin", "url": server.url("/huge"), "size": 1 << 50,
             "digest": {"kind": "sha256", "value": "0" * 64}}]
    with pytest.raises(modelagent.DiskSpaceError, match="available"):
        modelagent.run_download(huge, tmp_path)
    assert server.log == []


@pytest.mark.parametrize(
    ("plan", "error", "message"),
    [
        ("not a list", TypeError, "list of dicts"),
        ([42], TypeError, r"plan\[0\]"),
        ([{"url": "http://x/a"}], ValueError, r"plan\[0\]\['path'\]"),
        ([{"path": "a", "url": "http://x/a", "sizes": 1}], ValueError, "unknown key 'sizes'"),
        ([{"path": "a", "url": "http://x/a", "size": -1}], ValueError, r"\['size'\] must be >= 0"),
        ([{"path": "a", "url": "http://x/a", "digest": {"kind": "crc"}}], ValueError, "not one of"),
        ([{"path": "a", "url": "http://x/a", "digest": {"kind": "sha256"}}], ValueError, r"\['value'\]"),
        ([{"path": "a", "url": "http://x/a", "headers": {"Bad\nName": "v"}}], ValueError, "invalid header"),
    ],
)
def test_malformed_plans_name_the_entry(plan: object, error: type[Exception], message: str, tmp_path: Path) -> None:
    with pytest.raises(error, match=message):
        modelagent.run_download(plan, tmp_path)  # type: ignore[arg-type]


def test_bad_digest_value_is_a_download_error(tmp_path: Path) -> None:
    plan = [{"path": "w.bin", "url": "http://127.0.0.1:9/w", "size": 1, "digest": {"kind": "sha256", "value": "xyz"}}]
    with pytest.raises(modelagent.DownloadError, match="w.bin"):
        modelagent.run_download(plan, tmp_path)


def test_options_fields_and_validation(tmp_path: Path) -> None:
    options = modelagent.DownloadOptions(max_connections=3, bandwidth_limit=1000, verify_tls=False)
    assert options.max_connections == 3
    assert options.bandwidth_limit == 1000
    assert options.verify_tls is False
    assert options.connections_per_file == 8
    assert "max_connections=3" in repr(options)
    with pytest.raises(TypeError, match="no field 'max_conections'"):
        modelagent.DownloadOptions(max_conections=3)
    with pytest.raises(modelagent.DownloadError, match="connections_per_file"):
        modelagent.run_download([], tmp_path, modelagent.DownloadOptions(connections_per_file=0))


def test_file_digest(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"hello world\n")
    assert _core.file_digest(path) == hashlib.sha256(b"hello world\n").hexdigest()
    assert _core.file_digest(path, "git-blob-sha1") == "3b18e512dba79e4c8300dd08aeb37f8e728b8dad"
    assert _core.file_digest(path, "md5") == hashlib.md5(b"hello world\n").hexdigest()
    with pytest.raises(ValueError, match="kind"):
        _core.file_digest(path, "crc32")
    with pytest.raises(modelagent.DownloadError, match="missing"):
        _core.file_digest(tmp_path / "missing")


def _multipart_md5(data: bytes, part_size: int) -> str:
    parts = [data[i : i + part_size] for i in range(0, len(data), part_size)]
    return hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f"-{len(parts)}"


@pytest.mark.parametrize("part_mib", [8, 7])
def test_multipart_md5_with_an_inferred_part_size(server: _Server, tmp_path: Path, part_mib: int) -> None:
    """20 MiB + 5 bytes in 3 parts: 8 MiB (the likeliest, hashed while streaming) and 10 MiB and 7 MiB all
    fit. An upload with 7 MiB parts is still verified: the other candidates are tried from the page cache."""
    data = os.urandom(20 * 1024 * 1024 + 5)
    server.files["/big.bin"] = data
    expected = _multipart_md5(data, part_mib << 20)
    entry = {"path": "big.bin", "url": server.url("/big.bin"), "size": len(data),
             "digest": {"kind": "md5-multipart", "value": expected}}
    before = _core.bytes_rehashed_from_disk()
    report = modelagent.run_download([entry], tmp_path, modelagent.DownloadOptions())
    assert (tmp_path / "big.bin").read_bytes() == data
    assert report.files[0].verified and report.files[0].digest == expected
    assert _core.bytes_rehashed_from_disk() - before == (0 if part_mib == 8 else len(data))
    # A digest no candidate explains is still a verification failure.
    bad = dict(entry, path="bad.bin", digest={"kind": "md5-multipart", "value": _multipart_md5(data[::-1], 7 << 20)})
    with pytest.raises(modelagent.VerificationError, match="bad.bin"):
        modelagent.run_download([bad], tmp_path, modelagent.DownloadOptions(max_attempts=1))
