"""The agent's HTTP endpoints on one port: ``/metrics``, ``/healthz``, ``/livez``, ``/readyz``.

Responses follow the Kubernetes API server's health endpoints: ``200 ok`` when every check passes, otherwise
``500`` listing each check as ``[+]name ok`` or ``[-]name failed: reason`` (the reason is shown, not
withheld). ``?verbose`` lists the checks on success too; ``/<endpoint>/<check>`` runs one check.

- ``/healthz``: ``model-agent-health`` (the models root exists, is a directory, is writable).
- ``/livez``: ``ping`` (always ok) and, when a ``liveness`` callback is given, ``loop``.
- ``/readyz``: ``ping``, ``model-agent-health`` and, when a ``readiness`` callback is given,
  ``informer-sync``.
- ``/metrics``: the Prometheus exposition (gzip-compressed when the client accepts it).

GET and HEAD are served; other methods get 405, other paths 404.
"""

from __future__ import annotations

import gzip
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from modelagent.health import CallbackCheck, CheckCallback, HealthCheck
from modelagent.metrics import CONTENT_TYPE

__all__ = ["AgentServer", "MetricsSource"]

_log = logging.getLogger(__name__)

_TEXT = "text/plain; charset=utf-8"


class MetricsSource(Protocol):
    """Anything that renders the Prometheus text format, such as :class:`modelagent.metrics.Metrics`."""

    def exposition(self) -> str:
        """The current exposition."""
        ...


class _Ping:
    name = "ping"

    def check(self) -> str | None:
        return None


@dataclass(frozen=True)
class _Endpoint:
    path: str
    checks: tuple[HealthCheck, ...]


@dataclass(frozen=True)
class _Response:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class AgentServer:
    """One HTTP server (stdlib ``ThreadingHTTPServer``) in a daemon thread serving metrics and health.

    ``health_check`` is the ``model-agent-health`` check (usually a
    :class:`~modelagent.health.ModelAgentHealthCheck`); ``liveness`` says whether the control loop is
    wedged and ``readiness`` whether its caches are synced (see :data:`~modelagent.health.CheckCallback`).
    ``port=0`` picks a free port; :attr:`port` tells which once started.
    """

    def __init__(
        self,
        metrics: MetricsSource,
        health_check: HealthCheck,
        *,
        liveness: CheckCallback | None = None,
        readiness: CheckCallback | None = None,
        host: str = "0.0.0.0",
        port: int = 8080,
        request_timeout: float = 10.0,
    ) -> None:
        """Configure the server; nothing listens until :meth:`start`."""
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port}")
        if not request_timeout > 0:
            raise ValueError(f"request_timeout must be positive seconds, got {request_timeout!r}")
        self._metrics = metrics
        ping = _Ping()
        live: list[HealthCheck] = [ping]
        if liveness is not None:
            live.append(CallbackCheck("loop", liveness))
        ready: list[HealthCheck] = [ping, health_check]
        if readiness is not None:
            ready.append(CallbackCheck("informer-sync", readiness))
        self._endpoints = {
            e.path: e
            for e in (
                _Endpoint("/healthz", (health_check,)),
                _Endpoint("/livez", tuple(live)),
                _Endpoint("/readyz", tuple(ready)),
            )
        }
        self._host = host
        self._port = port
        self._request_timeout = request_timeout
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._responses_in_flight = 0
        self._responses_done = threading.Condition()

    @property
    def host(self) -> str:
        """The address listened on."""
        return self._host

    @property
    def port(self) -> int:
        """The port listened on (the chosen one when constructed with ``port=0`` and started)."""
        with self._lock:
            if self._httpd is not None:
                return int(self._httpd.server_address[1])
        return self._port

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. ``http://127.0.0.1:8080``."""
        host = self._host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def start(self) -> AgentServer:
        """Listen and serve in a daemon thread; raises ``OSError`` naming the address if it cannot listen."""
        with self._lock:
            if self._httpd is not None:
                raise RuntimeError("AgentServer is already running")
            handler = _make_handler(self, self._request_timeout)
            server_class = _IPv6Server if ":" in self._host else _IPv4Server
            try:
                httpd = server_class((self._host, self._port), handler)
            except OSError as e:
                raise OSError(e.errno, f"cannot listen on {self._host}:{self._port}: {e.strerror or e}") from e
            self._httpd = httpd
            self._thread = threading.Thread(
                target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="modelagent-http", daemon=True
            )
            self._thread.start()
        _log.info("serving /metrics, /healthz, /livez, /readyz on %s", self.url)
        return self

    def stop(self, drain_timeout: float = 2.0) -> None:
        """Stop listening, then wait up to ``drain_timeout`` seconds for responses being written to finish.

        A client that asked just before the agent stopped gets its whole answer rather than a cut body;
        connections that are open but have not sent a request are not waited for.
        """
        with self._lock:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=1.0)
        with self._responses_done:
            self._responses_done.wait_for(lambda: self._responses_in_flight == 0, timeout=drain_timeout)

    @property
    def responses_in_flight(self) -> int:
        """How many requests are being answered right now."""
        with self._responses_done:
            return self._responses_in_flight

    @contextmanager
    def _answering(self) -> Iterator[None]:
        with self._responses_done:
            self._responses_in_flight += 1
        try:
            yield
        finally:
            with self._responses_done:
                self._responses_in_flight -= 1
                self._responses_done.notify_all()

    def __enter__(self) -> AgentServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- request handling (called from handler threads) ----

    def _respond(self, path: str, query: str, accept_encoding: str) -> _Response:
        if path == "/metrics":
            return self._metrics_response(accept_encoding)
        endpoint = self._endpoints.get(path)
        if endpoint is not None:
            verbose = "verbose" in parse_qs(query, keep_blank_values=True)
            return _run_checks(endpoint, verbose)
        parent, _, check_name = path.rpartition("/")
        endpoint = self._endpoints.get(parent)
        if endpoint is not None:
            for check in endpoint.checks:
                if check.name == check_name:
                    reason = _run_one(check)
                    if reason is None:
                        return _Response(200, _TEXT, b"ok")
                    return _Response(500, _TEXT, f"internal server error: {reason}\n".encode())
        return _Response(404, _TEXT, b"404 page not found\n")

    def _metrics_response(self, accept_encoding: str) -> _Response:
        try:
            body = self._metrics.exposition().encode()
        except Exception as e:  # noqa: BLE001 - report, never drop the connection
            _log.exception("metrics exposition failed")
            return _Response(500, _TEXT, f"metrics exposition failed: {type(e).__name__}: {e}\n".encode())
        if _accepts_gzip(accept_encoding):
            compressed = gzip.compress(body, compresslevel=5)
            return _Response(200, CONTENT_TYPE, compressed, (("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")))
        return _Response(200, CONTENT_TYPE, body)


class _IPv4Server(ThreadingHTTPServer):
    daemon_threads = True
    address_family = socket.AF_INET


class _IPv6Server(ThreadingHTTPServer):
    daemon_threads = True
    address_family = socket.AF_INET6


def _run_one(check: HealthCheck) -> str | None:
    try:
        return check.check()
    except Exception as e:  # noqa: BLE001 - a raising check is a failing check
        return f"{type(e).__name__}: {e}"


def _run_checks(endpoint: _Endpoint, verbose: bool) -> _Response:
    lines: list[str] = []
    failed = False
    for check in endpoint.checks:
        reason = _run_one(check)
        if reason is None:
            lines.append(f"[+]{check.name} ok")
        else:
            failed = True
            lines.append(f"[-]{check.name} failed: {reason}")
            _log.warning("%s check %s failed: %s", endpoint.path, check.name, reason)
    name = endpoint.path.lstrip("/")
    if failed:
        lines.append(f"{name} check failed")
        return _Response(500, _TEXT, ("\n".join(lines) + "\n").encode())
    if verbose:
        lines.append(f"{name} check passed")
        return _Response(200, _TEXT, ("\n".join(lines) + "\n").encode())
    return _Response(200, _TEXT, b"ok")


def _accepts_gzip(accept_encoding: str) -> bool:
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() != "gzip":
            continue
        q = params.strip().replace(" ", "")
        return not (q.startswith("q=") and _is_zero(q[2:]))
    return False


def _is_zero(value: str) -> bool:
    try:
        return float(value) == 0
    except ValueError:
        return False


_ALLOWED = "GET, HEAD"


def _make_handler(server: AgentServer, timeout: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "modelagent"
        sys_version = ""

        def setup(self) -> None:
            self.timeout = timeout
            super().setup()

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            self._serve(send_body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(send_body=False)

        def _not_allowed(self) -> None:
            with server._answering():
                self._send_not_allowed()

        def _send_not_allowed(self) -> None:
            body = b"405 method not allowed\n"
            self.send_response(405)
            self.send_header("Allow", _ALLOWED)
            self.send_header("Content-Type", _TEXT)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed  # noqa: N815

        def _serve(self, send_body: bool) -> None:
            with server._answering():
                self._send_response(send_body)

        def _send_response(self, send_body: bool) -> None:
            parts = urlsplit(self.path)
            response = server._respond(parts.path, parts.query, self.headers.get("Accept-Encoding", ""))
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("X-Content-Type-Options", "nosniff")
            for key, value in response.headers:
                self.send_header(key, value)
            self.end_headers()
            if send_body:
                self.wfile.write(response.body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature of the base
            _log.debug("%s %s", self.address_string(), format % args)

    return Handler
