"""Per-request signing: the engine asks a plan's signer for headers before every request attempt (each
range, each retry), and never signs a request redirected to another origin."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import modelagent
from modelagent import _core


class _Origin(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, body: bytes, redirect_to: str | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.body = body
        self.redirect_to = redirect_to
        self.seen: list[tuple[str, str | None, str | None]] = []  # (range, authorization, x-sign-count)
        self.lock = threading.Lock()
        self.fail_first = 0
        # When set, only this Authorization is accepted; others get reject_status with reject_body.
        self.accepted_authorization: str | None = None
        self.reject_status = 401
        self.reject_body = b""

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_port}{path}"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Origin

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        srv = self.server
        with srv.lock:
            srv.seen.append((self.headers.get("Range"), self.headers.get("Authorization"), self.headers.get("X-Count")))
            fail = srv.fail_first > 0
            srv.fail_first -= 1
        accepted = srv.accepted_authorization
        if accepted is not None and self.headers.get("Authorization") != accepted:
            self.send_response(srv.reject_status)
            self.send_header("Content-Length", str(len(srv.reject_body)))
            self.end_headers()
            self.wfile.write(srv.reject_body)
            return
        if fail:
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if srv.redirect_to is not None:
            self.send_response(302)
            self.send_header("Location", srv.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = srv.body
        start, end = 0, len(body)
        rng = self.headers.get("Range")
        if rng:
            first, _, last = rng[len("bytes="):].partition("-")
            start, end = int(first), (int(last) + 1 if last else len(body))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(end - start))
        self.end_headers()
        self.wfile.write(body[start:end])


def _serve(server: _Origin) -> Iterator[_Origin]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class CountingSigner(modelagent.RequestSigner):
    """Signs with a counter so every request carries a distinct value."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def sign(self, method: str, url: str, body: str, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        with self.lock:
            self.calls.append((method, url))
            n = len(self.calls)
        return [*headers, ("Authorization", f"Test sig-{n}"), ("X-Count", str(n))]

    def describe(self) -> str:
        return "counting test signer"


BODY = bytes(range(256)) * 4096 * 3  # 3 MiB


@pytest.fixture()
def origin() -> Iterator[_Origin]:
    yield from _serve(_Origin(BODY))


def _plan(url: str, signer: modelagent.RequestSigner) -> list[_core.PlanEntry]:
    return [
        {
            "path": "weights.bin",
            "url": url,
            "size": len(BODY),
            "digest": {"kind": "sha256", "value": hashlib.sha256(BODY).hexdigest()},
            "signer": signer,
        }
    ]


def test_every_range_request_is_signed_separately(origin: _Origin, tmp_path: Path) -> None:
    signer = CountingSigner()
    options = modelagent.DownloadOptions(chunk_size=1 << 20, connections_per_file=3, max_connections=3)
    modelagent.run_download(_plan(origin.url("/w"), signer), tmp_path, options)
    assert (tmp_path / "weights.bin").read_bytes() == BODY
    assert len(origin.seen) == 3  # three 1 MiB ranges
    auths = sorted(a for _, a, _ in origin.seen)
    assert auths == ["Test sig-1", "Test sig-2", "Test sig-3"]
    assert all(call == ("GET", origin.url("/w")) for call in signer.calls)
    assert signer.describe() == "counting test signer"


def test_a_retried_request_is_signed_again(origin: _Origin, tmp_path: Path) -> None:
    origin.fail_first = 2
    signer = CountingSigner()
    options = modelagent.DownloadOptions(retry_base_seconds=0.01, retry_cap_seconds=0.02)
    modelagent.run_download(_plan(origin.url("/w"), signer), tmp_path, options)
    assert [a for _, a, _ in origin.seen] == ["Test sig-1", "Test sig-2", "Test sig-3"]


def test_a_redirect_to_another_origin_is_not_signed(tmp_path: Path) -> None:
    target_iter = _serve(_Origin(BODY))
    target = next(target_iter)
    front_iter = _serve(_Origin(b"", redirect_to=target.url("/blob")))
    front = next(front_iter)
    try:
        signer = CountingSigner()
        modelagent.run_download(_plan(front.url("/w"), signer), tmp_path, modelagent.DownloadOptions())
        assert front.seen and all(a is not None for _, a, _ in front.seen)
        assert target.seen and all(a is None and n is None for _, a, n in target.seen)
        assert (tmp_path / "weights.bin").read_bytes() == BODY
    finally:
        for it in (front_iter, target_iter):
            next(it, None)


def test_a_failing_signer_fails_the_download_with_its_message(origin: _Origin, tmp_path: Path) -> None:
    class Broken(modelagent.RequestSigner):
        def sign(self, method: str, url: str, body: str, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
            raise modelagent.CredentialsError("token file /nonexistent/token is missing")

    with pytest.raises(modelagent.DownloadError, match="/nonexistent/token"):
        modelagent.run_download(_plan(origin.url("/w"), Broken()), tmp_path, modelagent.DownloadOptions())
    assert not (tmp_path / "weights.bin").exists()


def test_signer_must_be_a_request_signer(origin: _Origin, tmp_path: Path) -> None:
    plan = _plan(origin.url("/w"), CountingSigner())
    plan[0]["signer"] = "not a signer"  # type: ignore[typeddict-item]
    with pytest.raises(TypeError, match=r"plan\[0\]\['signer'\]"):
        modelagent.run_download(plan, tmp_path, modelagent.DownloadOptions())


def test_python_signer_can_be_called_directly() -> None:
    signer = CountingSigner()
    assert signer.sign("GET", "http://127.0.0.1:1/x", "", [("A", "b")]) == [
        ("A", "b"), ("Authorization", "Test sig-1"), ("X-Count", "1"),
    ]


class RenewingSigner(modelagent.RequestSigner):
    """Signs with a session token it can renew; ``valid_renewals`` says how many renewals give a new token."""

    def __init__(self, valid_renewals: int = 1) -> None:
        super().__init__()
        self.generation = 1
        self.renewals = 0
        self.valid_renewals = valid_renewals
        self.rejected: list[str | None] = []
        self.lock = threading.Lock()

    def sign(self, method: str, url: str, body: str, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        with self.lock:
            return [*headers, ("Authorization", f"Bearer token-{self.generation}")]

    def renew_after_rejection(self, rejected: list[tuple[str, str]]) -> bool:
        with self.lock:
            self.rejected.append(dict(rejected).get("Authorization"))
            self.renewals += 1
            if self.renewals <= self.valid_renewals:
                self.generation = 2
        return True

    def describe(self) -> str:
        return "renewing test signer"


def _ranged_options() -> modelagent.DownloadOptions:
    return modelagent.DownloadOptions(chunk_size=512 * 1024, connections_per_file=4, retry_base_seconds=0.01,
                                      retry_cap_seconds=0.05)


@pytest.mark.parametrize("status, body", [
    (401, b'{"code": "NotAuthenticated"}'),
    (400, b"<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>"),
    (403, b"<Error><Code>TokenRefreshRequired</Code></Error>"),
])
def test_a_rejected_token_is_renewed_and_the_request_tried_again(origin: _Origin, tmp_path: Path, status: int,
                                                                   body: bytes) -> None:
    origin.accepted_authorization = "Bearer token-2"
    origin.reject_status, origin.reject_body = status, body
    signer = RenewingSigner()
    report = modelagent.run_download(_plan(origin.url("/w"), signer), tmp_path / "d", _ranged_options())
    assert report.files[0].verified and (tmp_path / "d" / "weights.bin").read_bytes() == BODY
    rejected = [auth for _, auth, _ in origin.seen if auth == "Bearer token-1"]
    assert rejected and 1 <= signer.renewals <= len(rejected)  # at most one renewal per rejected request
    assert set(signer.rejected) == {"Bearer token-1"}  # the signer is told what the rejected request carried


def test_a_renewal_that_does_not_help_is_not_repeated(origin: _Origin, tmp_path: Path) -> None:
    origin.accepted_authorization = "Bearer token-3"  # never reached
    signer = RenewingSigner()
    with pytest.raises(modelagent.HttpStatusError, match="HTTP 401"):
        modelagent.run_download(_plan(origin.url("/w"), signer), tmp_path / "d", _ranged_options())
    # Each request that came back 401 was renewed and tried once more, then the download failed.
    assert signer.renewals >= 1 and len(origin.seen) <= 2 * signer.renewals + 4
    assert not (tmp_path / "d" / "weights.bin").exists()


def test_other_client_errors_do_not_renew(origin: _Origin, tmp_path: Path) -> None:
    origin.accepted_authorization = "Bearer token-2"
    origin.reject_status, origin.reject_body = 403, b"<Error><Code>AccessDenied</Code></Error>"
    signer = RenewingSigner()
    with pytest.raises(modelagent.HttpStatusError, match="HTTP 403"):
        modelagent.run_download(_plan(origin.url("/w"), signer), tmp_path / "d", _ranged_options())
    assert signer.renewals == 0


def test_a_signer_that_cannot_renew_fails_on_the_first_401(origin: _Origin, tmp_path: Path) -> None:
    origin.accepted_authorization = "never"
    signer = CountingSigner()
    assert signer.renew_after_rejection() is False
    with pytest.raises(modelagent.HttpStatusError, match="HTTP 401"):
        modelagent.run_download(_plan(origin.url("/w"), signer), tmp_path / "d", _ranged_options())
    assert len(origin.seen) == len(signer.calls)  # no request was tried twice
