"""A fake Kubernetes API server for integration tests (pure stdlib, HTTP/1.1 on 127.0.0.1).

It serves what the model agent uses, the way the real API server answers it, so the official
``kubernetes`` client talks to it unchanged:

* core/v1 Nodes, Namespaces (cluster scope), ConfigMaps and Secrets (namespaced), and the
  ``ome.io/v1beta1`` custom resources BaseModel (namespaced) and ClusterBaseModel (cluster),
  with a ``/status`` subresource for Nodes, Namespaces and the custom resources;
* discovery (``/api``, ``/api/v1``, ``/apis``, ``/apis/ome.io``, ``/apis/ome.io/v1beta1``,
  ``/version``) so ``kubernetes.dynamic.DynamicClient`` works;
* list / get / create / update / patch / delete / deletecollection / watch, label and field
  selectors, one global monotonically increasing ``resourceVersion``, 409 conflicts, finalizers,
  JSON patch, merge patch and strategic merge patch (415 for custom resources), validation of
  names, labels, annotations and ConfigMap/Secret data with the real messages;
* watch streams (chunked JSON lines) with resume from a resourceVersion, ``410 Expired`` when
  it is older than the kept history, bookmarks and ``timeoutSeconds``;
* scripted faults (fail the next requests, delay them, drop or silence watches), optional
  bearer-token authentication and a request log for assertions.

Use it as a context manager::

    with FakeKubeAPI() as kube:
        api = kubernetes.client.CoreV1Api(kube.api_client())
        ...

or from a shell: ``python -m modelagent.testing.kube_api --port 0 --kubeconfig /tmp/kubeconfig``.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl, unquote, urlsplit

from modelagent.testing._kube_rbac import RBACAuthorizer, forbidden
from modelagent.testing._kube_store import (
    OME_GROUP,
    OME_VERSION,
    RESOURCE_TYPES,
    MODIFIED_CONFLICT,
    ApiError,
    ResourceType,
    Store,
    Watcher,
    bad_request,
    conflict,
    internal_error,
)

__all__ = ["FakeKubeAPI", "FaultRule", "DelayRule", "RequestRecord", "ApiError", "main"]

SERVER_VERSION = {
    "major": "1",
    "minor": "30",
    "gitVersion": "v1.30.0-modelagent-fake",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-04-17T00:00:00Z",
    "goVersion": "go1.22.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_REASONS = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "forbidden: injected fault"),
    404: ("NotFound", "the server could not find the requested resource"),
    405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
    409: ("Conflict", MODIFIED_CONFLICT),
    410: ("Expired", "the requested resource version has expired"),
    422: ("Invalid", "the server rejected our request due to an error in our request"),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: injected fault"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: ("Timeout", "the server was unable to return a response in the time allotted"),
}


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("true", "1")


def _compile(path: str | re.Pattern[str] | None) -> re.Pattern[str] | None:
    if path is None or isinstance(path, re.Pattern):
        return path
    return re.compile(path)


@dataclass
class RequestRecord:
    """One request as the fake server saw it (``status`` is filled in when the answer is sent)."""

    method: str
    path: str
    query: dict[str, str]
    verb: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str | None = None
    name: str | None = None
    content_type: str = ""
    body: Any = None
    user: str | None = None
    status: int | None = None
    time: float = field(default_factory=time.time)

    @property
    def watch(self) -> bool:
        return self.verb == "watch"


@dataclass
class FaultRule:
    """Answer the next ``remaining`` matching requests with ``status`` instead of serving them."""

    status: int
    remaining: int
    verb: str | None = None
    path: re.Pattern[str] | None = None
    retry_after: int | None = None
    message: str | None = None
    hits: int = 0

    def matches(self, record: RequestRecord) -> bool:
        if self.remaining <= 0:
            return False
        if self.verb is not None and self.verb not in (record.verb, record.method):
            return False
        return self.path is None or self.path.search(record.path) is not None


@dataclass
class DelayRule:
    """Hold matching requests for ``seconds`` before serving them (``remaining`` None = forever)."""

    seconds: float
    remaining: int | None = None
    verb: str | None = None
    path: re.Pattern[str] | None = None
    hits: int = 0

    def matches(self, record: RequestRecord) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.verb is not None and self.verb not in (record.verb, record.method):
            return False
        return self.path is None or self.path.search(record.path) is not None


@dataclass
class _Route:
    rt: ResourceType | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str = ""
    watch_prefix: bool = False
    discovery: Any = None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], api: "FakeKubeAPI") -> None:
        self.api = api
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client closing or resetting a keep-alive connection is routine; anything else is a bug to see.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle + delayed ACK add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(self.connection)

    def _dispatch(self) -> None:
        self.server.api._handle(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        return


class FakeKubeAPI:
    """The fake API server. Start it with ``start()`` or ``with FakeKubeAPI() as kube:``.

    Args:
        host: address to bind (keep it on loopback in tests).
        port: TCP port, 0 for a free one (see ``port`` / ``url`` after start).
        history_size: how many events are kept for watch resumption; a watch from an older
            resourceVersion gets an ERROR event with a 410 Expired Status.
        bookmark_interval: seconds between BOOKMARK events on watches that allow them.
        default_watch_timeout: seconds a watch without ``timeoutSeconds`` stays open.
        tokens: bearer token -> user name; when given, every API request needs a valid token
            (401 otherwise). ``/version`` and the health endpoints stay open. More tokens can be added
            with :meth:`add_token`. Users named ``system:serviceaccount:<ns>:<name>`` are authorised by
            the RBAC objects given to :meth:`load_rbac` (403 Forbidden otherwise, with the real message).
        namespaces: namespaces that exist from the start.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        history_size: int = 1000,
        bookmark_interval: float = 60.0,
        default_watch_timeout: float = 1800.0,
        tokens: dict[str, str] | None = None,
        namespaces: Iterable[str] = ("default", "kube-system", "kube-public", "kube-node-lease"),
    ) -> None:
        if bookmark_interval <= 0:
            raise ValueError(f"bookmark_interval must be positive, got {bookmark_interval}")
        if default_watch_timeout <= 0:
            raise ValueError(f"default_watch_timeout must be positive, got {default_watch_timeout}")
        self.host = host
        self._requested_port = port
        self.bookmark_interval = bookmark_interval
        self.default_watch_timeout = default_watch_timeout
        self.tokens = dict(tokens or {})
        self.rbac = RBACAuthorizer()
        self.store = Store(history_size)
        self._types = {rt.plural: rt for rt in RESOURCE_TYPES}
        self._kinds = {rt.kind: rt for rt in RESOURCE_TYPES}
        self._lock = threading.Condition()
        self._requests: list[RequestRecord] = []
        self._faults: list[FaultRule] = []
        self._delays: list[DelayRule] = []
        self._silent_future: list[list[Any]] = []
        self._open_watches = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        for ns in namespaces:
            self.create("namespaces", {"metadata": {"name": ns}})

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "FakeKubeAPI":
        """Bind and serve in a background thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError("FakeKubeAPI is already running")
        self._httpd = _HTTPServer((self.host, self._requested_port), self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"fake-kube-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """End every watch, close every connection and stop serving."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self.store.signal_watchers(("stop", None))
        # Let each watch write its final chunk before the sockets are cut under it.
        try:
            self.wait_for_watches(0, timeout=30.0)  # returns as soon as they have
        except TimeoutError:
            pass
        httpd.shutdown()
        with httpd.connections_lock:
            conns = list(httpd.connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> "FakeKubeAPI":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeKubeAPI is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123``."""
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------ client helpers

    def configuration(self, token: str | None = None) -> Any:
        """A ``kubernetes.client.Configuration`` pointing at this server (with a bearer token if given)."""
        from kubernetes import client

        config = client.Configuration()
        config.host = self.url
        token = token if token is not None else self._default_token()
        if token:
            config.api_key = {"authorization": f"Bearer {token}"}
        return config

    def api_client(self, token: str | None = None) -> Any:
        """A ``kubernetes.client.ApiClient`` for this server; close it when done."""
        from kubernetes import client

        return client.ApiClient(self.configuration(token))

    def write_kubeconfig(self, path: str | os.PathLike[str], *, token: str | None = None,
                         namespace: str = "default", context: str = "fake-kube") -> Path:
        """Write a kubeconfig (JSON, which is valid YAML) for this server; returns its path."""
        token = token if token is not None else self._default_token()
        user: dict[str, Any] = {"token": token} if token else {}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": user}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context, "namespace": namespace}}],
            "current-context": context,
            "preferences": {},
        }
        out = Path(path)
        out.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return out

    def _default_token(self) -> str | None:
        return next(iter(self.tokens), None)

    # ------------------------------------------------------------------ direct object access

    def resource_type(self, plural_or_kind: str) -> ResourceType:
        """Look a served resource up by plural (``configmaps``) or kind (``ConfigMap``)."""
        rt = self._types.get(plural_or_kind) or self._kinds.get(plural_or_kind)
        if rt is None:
            known = ", ".join(sorted(self._types))
            raise KeyError(f"unknown resource {plural_or_kind!r}; served: {known}")
        return rt

    def create(self, resource: str, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Create an object without HTTP (as a POST would; emits ADDED)."""
        rt = self.resource_type(resource)
        body = dict(obj)
        body.setdefault("apiVersion", rt.api_version)
        body.setdefault("kind", rt.kind)
        ns = namespace or (obj.get("metadata") or {}).get("namespace") or ("default" if rt.namespaced else None)
        return self.store.create(rt, ns, body)

    def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        """Fetch an object (raises ``ApiError`` 404 when absent)."""
        rt = self.resource_type(resource)
        return self.store.get(rt, self._ns(rt, namespace), name)

    def exists(self, resource: str, name: str, namespace: str | None = None) -> bool:
        """Whether the object exists (a terminating object still does)."""
        try:
            self.get(resource, name, namespace)
        except ApiError as exc:
            if exc.code == 404:
                return False
            raise
        return True

    def list_objects(self, resource: str, namespace: str | None = None,
                     label_selector: str | None = None) -> list[dict[str, Any]]:
        """All objects of a resource (optionally in one namespace / matching a label selector)."""
        rt = self.resource_type(resource)
        return self.store.list(rt, namespace, label_selector)["items"]

    def update(self, resource: str, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Replace an object (PUT semantics, conflicts on a stale resourceVersion)."""
        rt = self.resource_type(resource)
        meta = obj.get("metadata") or {}
        return self.store.update(rt, self._ns(rt, namespace or meta.get("namespace")), meta.get("name", ""), obj)

    def update_status(self, resource: str, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Replace the status of an object (PUT on the /status subresource)."""
        rt = self.resource_type(resource)
        meta = obj.get("metadata") or {}
        return self.store.update(rt, self._ns(rt, namespace or meta.get("namespace")), meta.get("name", ""), obj,
                                 subresource="status")

    def patch(self, resource: str, name: str, patch: Any, namespace: str | None = None,
              content_type: str = "application/merge-patch+json") -> dict[str, Any]:
        """Patch an object (default: JSON merge patch)."""
        rt = self.resource_type(resource)
        return self.store.patch(rt, self._ns(rt, namespace), name, content_type, json.dumps(patch).encode())

    def delete(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        """Delete an object (sets deletionTimestamp instead while it has finalizers)."""
        rt = self.resource_type(resource)
        return self.store.delete(rt, self._ns(rt, namespace), name)[0]

    def add_node(self, name: str, labels: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
        """Create a Node with the given labels (extra top-level fields such as ``status`` allowed)."""
        return self.create("nodes", {"metadata": {"name": name, "labels": dict(labels or {})}, **fields})

    def add_token(self, token: str, user: str) -> None:
        """Accept bearer ``token`` as ``user`` from now on (turns authentication on if it was off)."""
        if not token or not user:
            raise ValueError("add_token needs a non-empty token and user")
        self.tokens[token] = user

    def load_rbac(self, objects: Iterable[dict[str, Any]]) -> int:
        """Authorise service-account users by these ClusterRoles, Roles and bindings (other kinds are
        ignored); returns how many RBAC objects were taken. See :mod:`modelagent.testing._kube_rbac`."""
        return self.rbac.load(objects)

    def add_namespace(self, name: str) -> dict[str, Any]:
        """Create a Namespace."""
        return self.create("namespaces", {"metadata": {"name": name}})

    @property
    def resource_version(self) -> str:
        """The current global resourceVersion."""
        with self.store.lock:
            return str(self.store.rv)

    def compact(self) -> str:
        """Drop the whole event history; watches from any earlier resourceVersion get 410."""
        return str(self.store.compact())

    @staticmethod
    def _ns(rt: ResourceType, namespace: str | None) -> str | None:
        return (namespace or "default") if rt.namespaced else None

    # ------------------------------------------------------------------ faults

    def fail_next(self, count: int = 1, status: int = 500, *, verb: str | None = None,
                  path: str | re.Pattern[str] | None = None, retry_after: int | None = None,
                  message: str | None = None) -> FaultRule:
        """Answer the next ``count`` requests matching ``verb`` and ``path`` with an error ``status``.

        ``verb`` is a Kubernetes verb (get, list, watch, create, update, patch, delete,
        deletecollection) or an HTTP method; ``path`` a regular expression searched in the URL
        path. 429 answers carry ``Retry-After`` (``retry_after``, default 1 second).
        """
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        if status not in _REASONS:
            raise ValueError(f"unsupported fault status {status}; use one of {sorted(_REASONS)}")
        if status == 429 and retry_after is None:
            retry_after = 1
        rule = FaultRule(status, count, verb, _compile(path), retry_after, message)
        with self._lock:
            self._faults.append(rule)
        return rule

    def delay(self, seconds: float, *, count: int | None = None, verb: str | None = None,
              path: str | re.Pattern[str] | None = None) -> DelayRule:
        """Hold the next ``count`` (default: all) matching requests for ``seconds`` before answering."""
        if seconds < 0:
            raise ValueError(f"seconds must not be negative, got {seconds}")
        rule = DelayRule(seconds, count, verb, _compile(path))
        with self._lock:
            self._delays.append(rule)
        return rule

    def drop_watches(self, *, graceful: bool = False, path: str | re.Pattern[str] | None = None) -> int:
        """End the open watches (matching ``path``) now; returns how many.

        ``graceful=False`` cuts the connection mid-stream (the client sees a protocol error);
        ``graceful=True`` ends the chunked stream cleanly, as the real server does at a
        timeout, so the client's watch loop reconnects from its last resourceVersion.
        """
        return self.store.signal_watchers(("drop", graceful), _compile(path))

    def silence_watches(self, *, path: str | re.Pattern[str] | None = None, future: int = 0) -> int:
        """Make open watches (matching ``path``) go silent: the connection stays open, nothing
        more is sent (no events, no bookmarks, no end at timeoutSeconds). ``future`` also makes
        the next N matching watches silent from their start. Returns how many open ones changed.
        """
        regex = _compile(path)
        if future:
            with self._lock:
                self._silent_future.append([regex, future])
        return self.store.signal_watchers(("silence", None), regex)

    def clear_faults(self) -> None:
        """Forget every pending fault, delay and future silence."""
        with self._lock:
            self._faults.clear()
            self._delays.clear()
            self._silent_future.clear()

    # ------------------------------------------------------------------ request log

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def find_requests(self, *, verb: str | None = None, resource: str | None = None,
                      name: str | None = None, method: str | None = None) -> list[RequestRecord]:
        """Requests matching every given attribute."""
        return [r for r in self.requests
                if (verb is None or r.verb == verb) and (resource is None or r.resource == resource)
                and (name is None or r.name == name) and (method is None or r.method == method)]

    def wait_for_request(self, predicate: Callable[[RequestRecord], bool], timeout: float = 10.0,
                         start: int = 0) -> RequestRecord:
        """Block until a logged request (from index ``start``) satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for record in self._requests[start:]:
                    if predicate(record):
                        return record
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching request within {timeout} s")
                self._lock.wait(remaining)

    @property
    def open_watches(self) -> int:
        """How many watch streams are open right now."""
        with self._lock:
            return self._open_watches

    def wait_for_watches(self, count: int, timeout: float = 10.0) -> None:
        """Block until exactly ``count`` watch streams are open."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._open_watches != count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self._open_watches} watches open, wanted {count} within {timeout} s")
                self._lock.wait(remaining)

    # ------------------------------------------------------------------ HTTP handling

    def _handle(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        record = RequestRecord(h.command, split.path, query,
                               content_type=(h.headers.get("Content-Type") or "").split(";")[0].strip().lower())
        try:
            raw = self._read_body(h)
        except ValueError as exc:
            h.close_connection = True
            self._log(record)
            self._send_error(h, record, bad_request(str(exc)))
            return
        if raw:
            try:
                record.body = json.loads(raw)
            except ValueError:
                record.body = raw
        try:
            route = self._route(split.path)
            record.verb = self._verb(h.command, route, query)
            if route.rt is not None:
                record.resource = route.rt.plural
                record.subresource = route.subresource
                record.namespace = route.namespace
                record.name = route.name
        except ApiError as exc:
            # A real server authenticates and authorises before it looks for the resource: a service
            # account asking for something it may not touch gets 403, not 404, even for kinds not served here.
            if exc.code == 404:
                try:
                    record.user = self._authenticate(h, split.path)
                    self._authorize_unserved(record, h.command, split.path, query)
                except ApiError as denied:
                    exc = denied
            self._log(record)
            self._send_error(h, record, exc)
            return
        auth_error: ApiError | None = None
        try:
            record.user = self._authenticate(h, split.path)
        except ApiError as exc:
            auth_error = exc
        self._log(record)
        try:
            if auth_error is not None:
                raise auth_error
            if route.rt is not None and record.user is not None and not self.rbac.allowed(
                    record.user, record.verb, route.rt.group, route.rt.plural + (
                        f"/{route.subresource}" if route.subresource else ""), route.namespace, route.name):
                raise forbidden(record.user, record.verb, route.rt.group, route.rt.plural, route.subresource or "",
                                route.namespace, route.name)
            self._apply_faults(record, route)
            if route.discovery is not None:
                if h.command != "GET":
                    raise ApiError(405, "MethodNotAllowed", _REASONS[405][1])
                self._send_json(h, record, 200, route.discovery)
                return
            self._serve(h, record, route, query, raw)
        except ApiError as exc:
            self._send_error(h, record, exc)
        except OSError:
            h.close_connection = True
        except Exception as exc:  # a bug in the fake: answer it instead of dropping the connection
            h.close_connection = True
            if record.status is None:
                self._send_error(h, record, internal_error(f"fake API server failed: {exc!r}"))

    def _log(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)
            self._lock.notify_all()

    def _set_status(self, record: RequestRecord, status: int) -> None:
        with self._lock:
            record.status = status
            self._lock.notify_all()

    @staticmethod
    def _read_body(h: _Handler) -> bytes:
        if "chunked" in (h.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                line = h.rfile.readline(65537)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise ValueError(f"malformed chunk size line {line!r} in request body") from None
                if size == 0:
                    while h.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(h.rfile.read(size))
                h.rfile.readline(65537)
        length = h.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise ValueError(f"invalid Content-Length header {length!r}") from None
        return h.rfile.read(n) if n > 0 else b""

    def _authenticate(self, h: _Handler, path: str) -> str | None:
        header = h.headers.get("Authorization") or ""
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        user = self.tokens.get(token) if token else None
        if not self.tokens or path.rstrip("/") in ("/version", "/healthz", "/livez", "/readyz"):
            return user
        if user is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return user

    def _apply_faults(self, record: RequestRecord, route: _Route) -> None:
        with self._lock:
            delay = next((d for d in self._delays if d.matches(record)), None)
            if delay is not None:
                delay.hits += 1
                if delay.remaining is not None:
                    delay.remaining -= 1
            fault = next((f for f in self._faults if f.matches(record)), None)
            if fault is not None:
                fault.remaining -= 1
                fault.hits += 1
        if delay is not None and delay.seconds:
            time.sleep(delay.seconds)
        if fault is None:
            return
        reason, default = _REASONS[fault.status]
        headers = {}
        details: dict[str, Any] | None = None
        if fault.status == 409 and route.rt is not None and fault.message is None:
            raise conflict(route.rt, route.name or "", MODIFIED_CONFLICT)
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
            details = {"retryAfterSeconds": fault.retry_after}
        raise ApiError(fault.status, reason, fault.message or default, details, headers)

    def _route(self, path: str) -> _Route:
        segments = [unquote(s) for s in path.split("/") if s]
        not_found = ApiError(404, "NotFound", _REASONS[404][1], {})
        if path.rstrip("/") in ("/healthz", "/livez", "/readyz"):
            return _Route(discovery="ok")
        if segments == ["version"]:
            return _Route(discovery=SERVER_VERSION)
        if segments == ["api"]:
            return _Route(discovery={
                "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}],
            })
        if segments == ["apis"]:
            return _Route(discovery={"kind": "APIGroupList", "apiVersion": "v1", "groups": [self._group_info()]})
        if segments == ["apis", OME_GROUP]:
            return _Route(discovery={"kind": "APIGroup", "apiVersion": "v1", **self._group_info()})
        if segments[:2] == ["api", "v1"]:
            group, rest = "", segments[2:]
        elif segments[:3] == ["apis", OME_GROUP, OME_VERSION]:
            group, rest = OME_GROUP, segments[3:]
        else:
            raise not_found
        if not rest:
            return _Route(discovery=self._resource_list(group))
        route = _Route()
        if rest[0] == "watch":
            route.watch_prefix = True
            rest = rest[1:]
        if len(rest) >= 3 and rest[0] == "namespaces" and self._served(group, rest[2], True):
            route.namespace, rest = rest[1], rest[2:]
        plural = rest[0] if rest else ""
        rt = self._types.get(plural)
        if rt is None or rt.group != group or (rt.namespaced and route.namespace is None and len(rest) > 1) \
                or (not rt.namespaced and route.namespace is not None) or len(rest) > 3:
            raise not_found
        route.rt = rt
        if len(rest) >= 2:
            route.name = rest[1]
        if len(rest) == 3:
            if rest[2] != "status" or not rt.status_subresource:
                raise not_found
            route.subresource = "status"
        return route

    def _served(self, group: str, plural: str, namespaced: bool) -> bool:
        rt = self._types.get(plural)
        return rt is not None and rt.group == group and rt.namespaced == namespaced

    def _authorize_unserved(self, record: RequestRecord, method: str, path: str, query: dict[str, str]) -> None:
        """RBAC check of a resource request for a kind this fake does not serve (403 when denied)."""
        if record.user is None:
            return
        segments = [unquote(s) for s in path.split("/") if s]
        if segments[:2] == ["api", "v1"]:
            group, rest = "", segments[2:]
        elif len(segments) >= 3 and segments[0] == "apis":
            group, rest = segments[1], segments[3:]
        else:
            return
        watch_prefix = bool(rest) and rest[0] == "watch"
        rest = rest[1:] if watch_prefix else rest
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest:
            return
        plural, name = rest[0], rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else ""
        verb = self._verb(method, _Route(name=name, watch_prefix=watch_prefix), query)
        resource = f"{plural}/{subresource}" if subresource else plural
        if not self.rbac.allowed(record.user, verb, group, resource, namespace, name):
            raise forbidden(record.user, verb, group, plural, subresource, namespace, name)

    @staticmethod
    def _verb(method: str, route: _Route, query: dict[str, str]) -> str:
        if route.discovery is not None:
            return "get"
        if method == "GET":
            if route.name is None or route.watch_prefix:
                return "watch" if route.watch_prefix or _truthy(query.get("watch")) else "list"
            return "get"
        if method == "DELETE":
            return "delete" if route.name else "deletecollection"
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())
        if (verb == "create") != (route.name is None):
            raise ApiError(405, "MethodNotAllowed", _REASONS[405][1])
        return verb

    def _group_info(self) -> dict[str, Any]:
        gv = {"groupVersion": f"{OME_GROUP}/{OME_VERSION}", "version": OME_VERSION}
        return {"name": OME_GROUP, "versions": [gv], "preferredVersion": gv}

    def _resource_list(self, group: str) -> dict[str, Any]:
        resources = []
        for rt in RESOURCE_TYPES:
            if rt.group != group:
                continue
            entry: dict[str, Any] = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                                     "kind": rt.kind, "verbs": rt.verbs + ["deletecollection"]}
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            resources.append(entry)
            if rt.status_subresource:
                resources.append({"name": f"{rt.plural}/status", "singularName": "", "namespaced": rt.namespaced,
                                  "kind": rt.kind, "verbs": ["get", "patch", "update"]})
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{OME_VERSION}" if group else "v1", "resources": resources}

    def _serve(self, h: _Handler, record: RequestRecord, route: _Route, query: dict[str, str], raw: bytes) -> None:
        rt = route.rt
        assert rt is not None
        dry_run = query.get("dryRun") == "All"
        store = self.store
        verb = record.verb
        if route.subresource == "status" and verb not in ("get", "update", "patch"):
            raise ApiError(405, "MethodNotAllowed", _REASONS[405][1])
        if verb == "watch":
            name_selector = f"metadata.name={route.name}" if route.name else None
            fields = ",".join(s for s in (query.get("fieldSelector"), name_selector) if s)
            self._serve_watch(h, record, rt, route.namespace, query, fields or None)
            return
        if verb == "list":
            limit = self._int_param(query, "limit")
            body = store.list(rt, route.namespace, query.get("labelSelector"), query.get("fieldSelector"),
                              limit, query.get("continue"))
            self._send_json(h, record, 200, body)
            return
        assert route.name is not None or verb in ("create", "deletecollection")
        if verb == "get":
            self._send_json(h, record, 200, store.get(rt, route.namespace, route.name or ""))
        elif verb == "create":
            obj = store.create(rt, route.namespace, self._json_body(record, rt), dry_run)
            self._send_json(h, record, 201, obj)
        elif verb == "update":
            obj = store.update(rt, route.namespace, route.name or "", self._json_body(record, rt),
                               route.subresource or None, dry_run)
            self._send_json(h, record, 200, obj)
        elif verb == "patch":
            obj = store.patch(rt, route.namespace, route.name or "", record.content_type, raw,
                              route.subresource or None, dry_run)
            self._send_json(h, record, 200, obj)
        elif verb == "delete":
            options = record.body if isinstance(record.body, dict) else {}
            obj, deleted = store.delete(rt, route.namespace, route.name or "", options, dry_run)
            if deleted:
                details: dict[str, Any] = {"name": route.name, "kind": rt.plural, "uid": obj["metadata"]["uid"]}
                if rt.group:
                    details["group"] = rt.group
                self._send_json(h, record, 200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                                 "status": "Success", "details": details})
            else:
                self._send_json(h, record, 200, obj)
        elif verb == "deletecollection":
            items = store.list(rt, route.namespace, query.get("labelSelector"), query.get("fieldSelector"))["items"]
            for item in items:
                try:
                    store.delete(rt, item["metadata"].get("namespace"), item["metadata"]["name"], None, dry_run)
                except ApiError as exc:
                    if exc.code != 404:
                        raise
            self._send_json(h, record, 200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                             "status": "Success"})
        else:
            raise ApiError(405, "MethodNotAllowed", _REASONS[405][1])

    @staticmethod
    def _json_body(record: RequestRecord, rt: ResourceType) -> Any:
        if isinstance(record.body, (bytes, bytearray)):
            raise bad_request(f"couldn't get version/kind; json parse error: the request body for "
                              f"{rt.group_resource} is not valid JSON")
        if record.body is None:
            raise bad_request(f"the request body for {rt.group_resource} is empty")
        return record.body

    @staticmethod
    def _int_param(query: dict[str, str], name: str) -> int | None:
        value = query.get(name)
        if value in (None, ""):
            return None
        try:
            return int(value)
        except ValueError:
            raise bad_request(f'invalid value for query parameter {name}: "{value}" is not an integer') from None

    # ------------------------------------------------------------------ responses

    def _send_json(self, h: _Handler, record: RequestRecord, code: int, obj: Any,
                   headers: dict[str, str] | None = None) -> None:
        data = (obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))).encode()
        self._set_status(record, code)
        h.send_response(code)
        h.send_header("Content-Type", "text/plain; charset=utf-8" if isinstance(obj, str) else "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Cache-Control", "no-cache, private")
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(data)

    def _send_error(self, h: _Handler, record: RequestRecord, exc: ApiError) -> None:
        try:
            self._send_json(h, record, exc.code, exc.status(), exc.headers)
        except OSError:
            h.close_connection = True

    # ------------------------------------------------------------------ watch streams

    def _serve_watch(self, h: _Handler, record: RequestRecord, rt: ResourceType, namespace: str | None,
                     query: dict[str, str], field_selector: str | None) -> None:
        timeout = query.get("timeoutSeconds")
        try:
            duration = float(timeout) if timeout not in (None, "") else self.default_watch_timeout
        except ValueError:
            raise bad_request(f'invalid value for query parameter timeoutSeconds: "{timeout}"') from None
        bookmarks = _truthy(query.get("allowWatchBookmarks"))
        initial_end = bookmarks and _truthy(query.get("sendInitialEvents"))
        silent = self._take_future_silence(record.path)
        watcher = self.store.open_watch(rt, namespace, query.get("labelSelector"), field_selector,
                                        query.get("resourceVersion"), record.path, silent)
        with self._lock:
            self._open_watches += 1
            self._lock.notify_all()
        h.close_connection = True
        try:
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Transfer-Encoding", "chunked")
            h.send_header("Cache-Control", "no-cache, private")
            h.end_headers()
            self._set_status(record, 200)
            self._pump_watch(h, watcher, time.monotonic() + max(duration, 0.0), bookmarks, initial_end)
        except OSError:
            h.close_connection = True
        finally:
            self.store.close_watch(watcher)
            with self._lock:
                self._open_watches -= 1
                self._lock.notify_all()

    def _take_future_silence(self, path: str) -> bool:
        with self._lock:
            for entry in self._silent_future:
                regex, remaining = entry
                if remaining > 0 and (regex is None or regex.search(path)):
                    entry[1] -= 1
                    return True
        return False

    def _pump_watch(self, h: _Handler, watcher: Watcher, deadline: float, bookmarks: bool,
                    initial_end: bool) -> None:
        rt = watcher.rt
        next_bookmark = time.monotonic() + self.bookmark_interval
        while True:
            now = time.monotonic()
            if not watcher.silent and now >= deadline:
                # Past the deadline: what was already queued is still sent (a watch thread that was slow to
                # be scheduled must not lose events that happened in time), then the stream ends.
                try:
                    kind, payload = watcher.queue.get_nowait()
                except queue.Empty:
                    self._end_stream(h)
                    return
            else:
                if not watcher.silent and bookmarks and now >= next_bookmark:
                    rv = self.store.bookmark_rv(watcher)
                    if rv is not None:
                        self._write_event(h, "BOOKMARK", self._bookmark(rt, rv))
                    next_bookmark = now + self.bookmark_interval
                waits = [0.25]
                if not watcher.silent:
                    waits.append(deadline - now)
                    if bookmarks:
                        waits.append(next_bookmark - now)
                try:
                    kind, payload = watcher.queue.get(timeout=max(min(waits), 0.0))
                except queue.Empty:
                    if self._client_gone(h):
                        return
                    continue
            if kind == "event":
                if not watcher.silent:
                    etype, obj = payload
                    self._write_event(h, etype, obj)
            elif kind == "initial-done":
                if initial_end and not watcher.silent:
                    rv = self.store.bookmark_rv(watcher) or self.resource_version
                    mark = self._bookmark(rt, rv)
                    mark["metadata"]["annotations"] = {"k8s.io/initial-events-end": "true"}
                    self._write_event(h, "BOOKMARK", mark)
            elif kind == "error":
                self._write_event(h, "ERROR", payload)
                self._end_stream(h)
                return
            elif kind == "silence":
                watcher.silent = True
            elif kind == "drop":
                if payload:
                    self._end_stream(h)
                else:
                    try:
                        h.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            elif kind == "stop":
                if not watcher.silent:
                    self._end_stream(h)
                return

    @staticmethod
    def _bookmark(rt: ResourceType, rv: str) -> dict[str, Any]:
        return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": {"resourceVersion": rv}}

    @staticmethod
    def _write_event(h: _Handler, etype: str, obj: dict[str, Any]) -> None:
        line = json.dumps({"type": etype, "object": obj}, separators=(",", ":")).encode() + b"\n"
        h.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))

    @staticmethod
    def _end_stream(h: _Handler) -> None:
        h.wfile.write(b"0\r\n\r\n")

    @staticmethod
    def _client_gone(h: _Handler) -> bool:
        try:
            readable, _, _ = select.select([h.connection], [], [], 0)
            if not readable:
                return False
            return h.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True


# ---------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """``python -m modelagent.testing.kube_api``: serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m modelagent.testing.kube_api",
                                     description="Run the fake Kubernetes API server.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port, 0 for a free one (default 0)")
    parser.add_argument("--kubeconfig", help="write a kubeconfig for the server to this file")
    parser.add_argument("--port-file", help="write the bound port to this file once listening")
    parser.add_argument("--token", action="append", default=[], metavar="TOKEN=USER",
                        help="require bearer tokens; may be repeated")
    parser.add_argument("--namespace", action="append", default=[], metavar="NAME",
                        help="extra namespace to create at start; may be repeated")
    parser.add_argument("--history-size", type=int, default=1000, help="watch history kept (default 1000)")
    parser.add_argument("--bookmark-interval", type=float, default=60.0, help="seconds between bookmarks")
    args = parser.parse_args(argv)
    tokens = {}
    for item in args.token:
        token, sep, user = item.partition("=")
        if not sep or not token or not user:
            parser.error(f"--token expects TOKEN=USER, got {item!r}")
        tokens[token] = user
    try:
        server = FakeKubeAPI(args.host, args.port, history_size=args.history_size,
                             bookmark_interval=args.bookmark_interval, tokens=tokens)
    except ValueError as exc:
        parser.error(str(exc))
    for ns in args.namespace:
        if not server.exists("namespaces", ns):
            server.add_namespace(ns)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with server:
        if args.kubeconfig:
            server.write_kubeconfig(args.kubeconfig)
        if args.port_file:
            Path(args.port_file).write_text(f"{server.port}\n", encoding="utf-8")
        print(f"fake Kubernetes API server listening on {server.url}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
