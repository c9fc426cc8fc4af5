"""Shared plumbing for the fake servers: a stoppable threaded HTTP/1.1 server, a thread-safe request
log, scripted faults and a body sender that serves files from disk with ``sendfile``.

Private to :mod:`modelagent.testing`; the public API is re-exported by the server modules.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import re
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = [
    "BodySource",
    "ConnectionCut",
    "Fault",
    "FaultSet",
    "RequestLog",
    "RequestRecord",
    "ServerThread",
    "parse_range",
]

MAX_FAULT_DELAY_S = 60.0
"""Upper bound for a scripted delay, so a mistaken test cannot hang a run."""

_SEND_CHUNK = 1 << 20


class ConnectionCut(Exception):
    """Raised inside a handler after it deliberately dropped the connection."""


# --------------------------------------------------------------------------------------------------
# Request log


@dataclasses.dataclass
class RequestRecord:
    """One request as the server saw it and answered it.

    ``headers`` holds every request header with a lower-cased name. ``status`` is the status line sent
    (0 if none was sent), ``bytes_sent`` counts body bytes only, ``cut`` tells that the server closed
    the connection mid-body on purpose and ``fault`` names the scripted fault that shaped the answer.
    """

    server: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    client: tuple[str, int]
    connection_id: int
    started: float
    status: int = 0
    bytes_sent: int = 0
    body_range: tuple[int, int] | None = None
    cut: bool = False
    fault: str | None = None
    duration: float = 0.0
    _done: threading.Event = dataclasses.field(default_factory=threading.Event, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """True once the server has completely handled the request (``duration`` is then final)."""
        return self._done.is_set()

    def wait(self, timeout: float = 30.0) -> bool:
        """Wait until the server has finished with this request; False on timeout."""
        return self._done.wait(timeout)

    @property
    def host(self) -> str:
        """The ``Host`` header the client sent (``host:port``)."""
        return self.headers.get("host", "")

    @property
    def authorization(self) -> str | None:
        """The ``Authorization`` header, or None when the client sent none."""
        return self.headers.get("authorization")

    @property
    def range(self) -> str | None:
        """The ``Range`` header, or None."""
        return self.headers.get("range")

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly dict (for the CLI's access log)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}
        data["headers"] = dict(self.headers)
        data["client"] = list(self.client)
        data["body_range"] = list(self.body_range) if self.body_range else None
        return data


class RequestLog:
    """Thread-safe, bounded log of :class:`RequestRecord` entries.

    A record is logged when its request arrives and filled in as the answer goes out, so a client
    that has read a response always finds the request in the log (``record.wait()`` waits for the
    server to finish it completely).
    """

    def __init__(self, limit: int = 100_000, sink: Callable[[RequestRecord], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._records: deque[RequestRecord] = deque(maxlen=limit)
        self._sink = sink

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def finish(self, record: RequestRecord) -> None:
        # The sink first: whoever waits for the record (``wait_all`` before the CLI closes its access log)
        # must find it written.
        try:
            if self._sink is not None:
                self._sink(record)
        finally:
            record._done.set()

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def wait_all(self, timeout: float) -> bool:
        """Wait until every logged request is finished, at most ``timeout`` seconds in all; True if they are."""
        deadline = time.monotonic() + timeout
        return all(record.wait(max(0.0, deadline - time.monotonic())) for record in self.snapshot())

    def find(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        server: str | None = None,
        status: int | None = None,
    ) -> list[RequestRecord]:
        """Records matching every given criterion; ``path`` is a regular expression searched in the path."""
        pattern = re.compile(path) if path is not None else None
        return [
            r
            for r in self.snapshot()
            if (method is None or r.method == method.upper())
            and (server is None or r.server == server)
            and (status is None or r.status == status)
            and (pattern is None or pattern.search(r.path))
        ]


# --------------------------------------------------------------------------------------------------
# Faults


@dataclasses.dataclass
class Fault:
    """A scripted misbehaviour, applied to at most ``count`` matching requests.

    kind:
      * ``"status"``  - answer ``status`` with ``headers`` and a JSON error body instead of the real answer;
      * ``"delay"``   - wait ``delay`` seconds before answering (then answer normally);
      * ``"cut"``     - send ``after_bytes`` bytes of a file body, then close the connection;
      * ``"corrupt"`` - flip the byte at file offset ``offset`` (or the first byte served) of a file body;
      * ``"callback"``- call ``callback(record)`` before the request is handled.

    Matching: ``server`` (``"hub"``, ``"cdn"`` or None for both), ``methods`` (None for all) and ``path``,
    a regular expression searched in the decoded request path (None matches everything).
    ``fired`` counts how many times the fault took effect.
    """

    kind: str
    count: int = 1
    path: str | None = None
    methods: frozenset[str] | None = None
    server: str | None = None
    status: int = 0
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    message: str = ""
    delay: float = 0.0
    after_bytes: int = 0
    offset: int | None = None
    callback: Callable[[RequestRecord], None] | None = None
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("status", "delay", "cut", "corrupt", "callback"):
            raise ValueError(f"Fault.kind: unknown kind {self.kind!r}")
        if self.count < 1:
            raise ValueError(f"Fault.count must be >= 1 (a bounded number of requests), got {self.count}")
        if self.server not in (None, "hub", "cdn"):
            raise ValueError(f"Fault.server must be 'hub', 'cdn' or None, got {self.server!r}")
        if self.kind == "delay" and not 0 <= self.delay <= MAX_FAULT_DELAY_S:
            raise ValueError(f"Fault.delay must be within [0, {MAX_FAULT_DELAY_S}] s, got {self.delay}")
        if self.kind == "cut" and self.after_bytes < 0:
            raise ValueError(f"Fault.after_bytes must be >= 0, got {self.after_bytes}")
        if self.kind == "status" and not 100 <= self.status <= 599:
            raise ValueError(f"Fault.status must be an HTTP status code, got {self.status}")
        if self.kind == "callback" and self.callback is None:
            raise ValueError("Fault.callback is required for kind 'callback'")
        if self.methods is not None:
            self.methods = frozenset(m.upper() for m in self.methods)
        self._regex = re.compile(self.path) if self.path is not None else None

    @property
    def remaining(self) -> int:
        """How many more requests this fault will affect."""
        return self.count - self.fired

    def matches(self, server: str, method: str, path: str) -> bool:
        return (
            self.fired < self.count
            and (self.server is None or self.server == server)
            and (self.methods is None or method in self.methods)
            and (self._regex is None or self._regex.search(path) is not None)
        )

    def describe(self) -> str:
        detail = {
            "status": f"status {self.status}",
            "delay": f"delay {self.delay}s",
            "cut": f"cut after {self.after_bytes} bytes",
            "corrupt": f"corrupt byte at {self.offset if self.offset is not None else 'first'}",
            "callback": "callback",
        }[self.kind]
        return detail


class FaultSet:
    """The scripted faults of one fake service (shared by its servers), plus the per-connection throttle."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._throttles: list[tuple[int, str | None, re.Pattern[str] | None]] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._throttles.clear()

    def pending(self) -> list[Fault]:
        """Faults that can still fire."""
        with self._lock:
            return [f for f in self._faults if f.remaining > 0]

    def take(
        self, kinds: Iterable[str], server: str, method: str, path: str, exclude: Iterable[Fault] = ()
    ) -> Fault | None:
        """Consume one firing of the first matching fault of the given kinds (skipping those in ``exclude``)."""
        kinds = tuple(kinds)
        skip = {id(f) for f in exclude}
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds and id(fault) not in skip and fault.matches(server, method, path):
                    fault.fired += 1
                    return fault
        return None

    def peek(self, kind: str, server: str, method: str, path: str) -> Fault | None:
        """The first matching fault of ``kind`` without consuming it (see :meth:`consume`)."""
        with self._lock:
            for fault in self._faults:
                if fault.kind == kind and fault.matches(server, method, path):
                    return fault
        return None

    def consume(self, fault: Fault) -> bool:
        """Consume one firing of a fault found by :meth:`peek`; False if it ran out meanwhile."""
        with self._lock:
            if fault.fired >= fault.count:
                return False
            fault.fired += 1
            return True

    def set_throttle(self, bytes_per_second: int | None, server: str | None = None, path: str | None = None) -> None:
        """Limit every connection to ``bytes_per_second`` of file body (None removes all throttles)."""
        with self._lock:
            if bytes_per_second is None:
                self._throttles.clear()
                return
            if bytes_per_second <= 0:
                raise ValueError(f"throttle: bytes_per_second must be > 0, got {bytes_per_second}")
            self._throttles.append((int(bytes_per_second), server, re.compile(path) if path else None))

    def throttle_for(self, server: str, path: str) -> int | None:
        with self._lock:
            for rate, srv, regex in reversed(self._throttles):
                if (srv is None or srv == server) and (regex is None or regex.search(path)):
                    return rate
        return None


# --------------------------------------------------------------------------------------------------
# Bodies and ranges


@dataclasses.dataclass(frozen=True)
class BodySource:
    """File content, either in memory (``data``) or on disk (``path``, streamed with sendfile)."""

    size: int
    data: bytes | None = None
    path: Path | None = None

    def read(self, offset: int, length: int) -> bytes:
        if self.data is not None:
            return self.data[offset : offset + length]
        assert self.path is not None
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read(length)


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """Interpret a ``Range`` header against a representation of ``size`` bytes.

    Returns None when the header is absent or ignorable (syntax we do not serve, e.g. several
    ranges: RFC 9110 lets a server answer those with the whole representation), ``"unsatisfiable"``
    for a valid range that selects nothing (416), else the inclusive ``(first, last)`` pair.
    """
    if header is None:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if m is None:
        return None
    first_s, last_s = m.groups()
    if first_s == "" and last_s == "":
        return None
    if first_s == "":
        suffix = int(last_s)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return (max(0, size - suffix), size - 1)
    first = int(first_s)
    if last_s != "" and int(last_s) < first:
        return None
    if first >= size:
        return "unsatisfiable"
    last = size - 1 if last_s == "" else min(int(last_s), size - 1)
    return (first, last)


# --------------------------------------------------------------------------------------------------
# Server


class _TrackingServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], context: Any) -> None:
        self.context = context
        self.name = getattr(context, "server_name", "server")
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._next_id = 0
        self.stopping = threading.Event()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def next_connection_id(self) -> int:
        with self._conn_lock:
            self._next_id += 1
            return self._next_id

    def drop_connections(self) -> None:
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients dropping connections are routine here; anything else is a bug worth seeing.
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ConnectionCut)) or self.stopping.is_set():
            return
        super().handle_error(request, client_address)


class ServerThread:
    """Runs one handler class on ``host:port`` in a background thread until :meth:`stop`."""

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler], context: Any) -> None:
        try:
            self.server = _TrackingServer((host, port), handler, context)
        except OSError as exc:
            raise OSError(f"cannot bind fake server to {host}:{port}: {exc}") from exc
        self.host = host
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"fake-{host}:{self.port}", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.server.stopping.set()
        if self._thread.is_alive():
            self.server.shutdown()
            self._thread.join(timeout)
        self.server.drop_connections()
        self.server.server_close()


class BaseHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler that records each request and sends bodies with faults applied.

    Subclasses implement :meth:`route` and use the ``send_*`` helpers, which always send a
    ``Content-Length`` so connections stay reusable.
    """

    protocol_version = "HTTP/1.1"
    server_version = "modelagent-fake"
    sys_version = ""
    timeout = 120
    server: _TrackingServer

    # Set per request by handle_one_request.
    record: RequestRecord
    req_path: str
    req_query: str

    def setup(self) -> None:
        super().setup()
        self.connection_id = self.server.next_connection_id()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self) -> str:
        return self.server_version

    @property
    def context(self) -> Any:
        return self.server.context

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from the base class
        if getattr(self.context, "verbose", False):
            super().log_message(format, *args)

    # -- request lifecycle ------------------------------------------------------------------------

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except ConnectionCut:
            self.close_connection = True
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        self.raw_path = split.path
        self.req_path = unquote(split.path)
        self.req_query = split.query
        self.record = RequestRecord(
            server=self.server.name,
            method=self.command,
            path=self.req_path,
            query=split.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            client=tuple(self.client_address[:2]),  # type: ignore[arg-type]
            connection_id=self.connection_id,
            started=time.time(),
        )
        self.context.log.append(self.record)
        faults: FaultSet = self.context.faults
        try:
            # Every matching callback fault fires once for this request (one with count > 1 is kept for the
            # next matching requests, not spent on this one).
            called: list[Fault] = []
            while (cb := faults.take(("callback",), self.server.name, self.command, self.req_path, called)) is not None:
                called.append(cb)
                assert cb.callback is not None
                cb.callback(self.record)
            delay = faults.take(("delay",), self.server.name, self.command, self.req_path)
            if delay is not None:
                self.record.fault = delay.describe()
                self.server.stopping.wait(delay.delay)
            status = faults.take(("status",), self.server.name, self.command, self.req_path)
            if status is not None:
                self.record.fault = status.describe()
                body = {"error": status.message or f"scripted fault: HTTP {status.status}"}
                self.send_json(status.status, body, headers=status.headers)
                return
            self.route()
        except (ConnectionCut, ConnectionError, TimeoutError):
            raise
        except Exception as exc:
            # A bug in the fake (or in a test callback): make it loud, never a silent hang or a retryable 5xx.
            self.context.internal_errors.append(
                f"{self.command} {self.req_path}: " + "".join(traceback.format_exception(exc))
            )
            self.close_connection = True
            if self.record.status == 0:
                self.send_json(
                    500, {"error": f"fake server bug: {exc!r}"}, {"X-Error-Message": f"fake server bug: {exc!r}"}
                )
        finally:
            self.record.duration = time.time() - self.record.started
            self.context.log.finish(self.record)

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._dispatch()

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._drain_body()
        self._dispatch()

    def do_PUT(self) -> None:  # noqa: N802
        self._drain_body()
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def _drain_body(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        remaining = min(length, 16 << 20)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 16))
            if not chunk:
                break
            remaining -= len(chunk)

    def route(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- response helpers -------------------------------------------------------------------------

    def send_response(self, code: int, message: str | None = None) -> None:
        self.record.status = code
        super().send_response(code, message)

    def _send_headers(self, status: int, headers: Mapping[str, str], length: int) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def send_bytes(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        """Send a small in-memory body (omitted for HEAD, Content-Length kept)."""
        self._send_headers(status, headers or {}, len(body))
        if self.command != "HEAD" and body:
            self._write(body)

    def send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        merged = {"Content-Type": "application/json; charset=utf-8"}
        merged.update(headers or {})
        self.send_bytes(status, body, merged)

    def send_file(self, source: BodySource, headers: Mapping[str, str], *, ranged: bool = True) -> None:
        """Send a file body honouring ``Range`` (206/416) and the cut/corrupt/throttle faults."""
        size = source.size
        rng = parse_range(self.headers.get("Range"), size) if ranged else None
        hdrs = dict(headers)
        hdrs.setdefault("Accept-Ranges", "bytes")
        if rng == "unsatisfiable":
            hdrs["Content-Range"] = f"bytes */{size}"
            self.send_json(416, {"error": f"Requested range not satisfiable: {self.headers.get('Range')}"}, hdrs)
            return
        if rng is None:
            start, length, status = 0, size, 200
        else:
            assert isinstance(rng, tuple)
            start, length, status = rng[0], rng[1] - rng[0] + 1, 206
            hdrs["Content-Range"] = f"bytes {rng[0]}-{rng[1]}/{size}"
        self._send_headers(status, hdrs, length)
        if self.command == "HEAD" or length == 0:
            return
        self.record.body_range = (start, start + length - 1)
        self._stream(source, start, length)

    def _stream(self, source: BodySource, start: int, length: int) -> None:
        faults: FaultSet = self.context.faults
        name, method, path = self.server.name, self.command, self.req_path
        end = start + length
        limit = end
        cut = faults.peek("cut", name, method, path)
        if cut is not None and cut.after_bytes < length and faults.consume(cut):
            limit = start + cut.after_bytes
            self.record.fault = cut.describe()
            self.record.cut = True
        flip_at: int | None = None
        corrupt = faults.peek("corrupt", name, method, path)
        if corrupt is not None:
            target = start if corrupt.offset is None else corrupt.offset
            if start <= target < limit and faults.consume(corrupt):
                flip_at = target
                self.record.fault = corrupt.describe()
        rate = faults.throttle_for(name, path)
        chunk = _SEND_CHUNK if rate is None else max(1024, min(_SEND_CHUNK, rate // 20))

        fileobj = open(source.path, "rb") if source.path is not None else None  # noqa: SIM115 - closed below
        t0 = time.monotonic()
        pos = start
        try:
            while pos < limit:
                if flip_at == pos:
                    byte = source.read(pos, 1)
                    self._write(bytes([byte[0] ^ 0xFF]))
                    pos += 1
                    continue
                stop = min(limit, pos + chunk)
                if flip_at is not None and pos < flip_at < stop:
                    stop = flip_at
                if fileobj is not None:
                    # Counted before sending so the log is never behind what the client has received.
                    self.record.bytes_sent += stop - pos
                    sent = 0
                    try:
                        sent = self.connection.sendfile(fileobj, pos, stop - pos)
                    finally:
                        self.record.bytes_sent -= stop - pos - sent
                    if sent == 0:
                        raise ConnectionResetError("client closed the connection")
                    pos += sent
                else:
                    assert source.data is not None
                    self._write(memoryview(source.data)[pos:stop])
                    pos = stop
                if rate is not None:
                    ahead = (pos - start) / rate - (time.monotonic() - t0)
                    if ahead > 0 and self.server.stopping.wait(ahead):
                        raise ConnectionResetError("server stopping")
        finally:
            if fileobj is not None:
                fileobj.close()
        if limit < end:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            raise ConnectionCut()

    def _write(self, data: bytes | memoryview) -> None:
        self.record.bytes_sent += len(data)
        try:
            self.wfile.write(data)
        except OSError:
            self.record.bytes_sent -= len(data)
            raise


def glob_match(pattern: str, path: str) -> bool:
    """fnmatch-style match where ``*`` also crosses ``/`` (gitattributes-like, for LFS patterns)."""
    return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(os.path.basename(path), pattern)
