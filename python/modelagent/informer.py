"""A list+watch informer on the official ``kubernetes`` client that survives what real clusters do.

One :class:`Informer` follows one collection (all BaseModels, all ClusterBaseModels, or this agent's
Node): it lists it, then watches from the list's ``resourceVersion``, keeps a cache keyed by
``(namespace, name)`` and calls ``on_add(obj)``, ``on_update(old, new)`` and ``on_delete(obj)``.

What it survives, and how:

* ``410 Gone`` / ``Expired`` -- as an ``ERROR`` event inside a 200 stream or as an HTTP 410 at watch
  start -- re-lists and diffs the result against the cache, synthesising adds, updates and deletes for
  whatever changed while it was not watching;
* a stream the server ends (``timeoutSeconds``) re-watches at once from the last resourceVersion; a
  connection cut mid-stream re-watches after a short backoff;
* a silent connection ends at the client read timeout (``_request_timeout=(connect, read)``), then the
  informer re-watches;
* BOOKMARK events advance the resourceVersion (the informer reads them itself: client versions differ);
* 429 / 5xx / 401 / 403 / connection errors at list or watch start are reported to ``on_error`` and
  retried with exponential backoff and jitter, never sooner than the server's ``Retry-After``.

Handlers run on the informer's own thread, one event at a time and in order; they must return quickly
(hand work to a queue). An exception in a handler is logged and does not stop the informer.

Objects are kept as compact JSON bytes, not dicts (about a fifth of the memory), with
``metadata.managedFields`` and the ``kubectl.kubernetes.io/last-applied-configuration`` annotation
removed. Every object handed out -- to handlers or by :meth:`Informer.get` -- is a fresh dict that
the receiver owns and may modify without affecting the cache or other receivers.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

__all__ = [
    "Informer",
    "InformerConfig",
    "InformerError",
    "ObjectKey",
    "strip_server_fields",
]

logger = logging.getLogger("modelagent.informer")

ObjectKey = tuple[str, str]
"""``(namespace, name)``; the namespace is ``""`` for cluster-scoped objects."""

AddHandler = Callable[[dict[str, Any]], None]
UpdateHandler = Callable[[dict[str, Any], dict[str, Any]], None]
DeleteHandler = Callable[[dict[str, Any]], None]
ErrorHandler = Callable[["InformerError"], None]
Transform = Callable[[dict[str, Any]], dict[str, Any]]

OME_GROUP = "ome.io"
OME_VERSION = "v1beta1"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@dataclass(frozen=True)
class InformerConfig:
    """Timeouts, paging and backoff of an :class:`Informer` (seconds unless noted).

    Attributes:
        watch_timeout_seconds: server-side ``timeoutSeconds`` of each watch (jittered up by to 10 %
            so that many agents do not reconnect in step); the server ends the stream cleanly then.
        read_timeout: client socket read timeout of watches: a connection silent for this long is
            abandoned and re-watched. Real API servers send a BOOKMARK about every minute to watches
            that ask for them, so keep it above 60.
        connect_timeout: TCP connect timeout of every request.
        list_read_timeout: socket read timeout of list requests.
        page_size: ``limit`` of each list page (0 lists in one response).
        backoff_initial: first retry delay after a failure; doubles per consecutive failure.
        backoff_max: upper bound of the retry delay (a ``Retry-After`` may exceed it).
        stop_timeout: how long :meth:`Informer.stop` waits for the thread by default.
        bookmarks: ask for BOOKMARK events (``allowWatchBookmarks``).
    """

    watch_timeout_seconds: int = 300
    read_timeout: float = 150.0
    connect_timeout: float = 10.0
    list_read_timeout: float = 60.0
    page_size: int = 500
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    stop_timeout: float = 1.0
    bookmarks: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.watch_timeout_seconds, int) or self.watch_timeout_seconds < 1:
            raise ValueError(f"InformerConfig.watch_timeout_seconds must be a positive integer, "
                             f"got {self.watch_timeout_seconds!r}")
        if not isinstance(self.page_size, int) or self.page_size < 0:
            raise ValueError(f"InformerConfig.page_size must be a non-negative integer, got {self.page_size!r}")
        for name in ("read_timeout", "connect_timeout", "list_read_timeout", "backoff_initial", "backoff_max",
                     "stop_timeout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"InformerConfig.{name} must be a positive number, got {value!r}")
        if self.backoff_max < self.backoff_initial:
            raise ValueError(f"InformerConfig.backoff_max ({self.backoff_max}) must not be below "
                             f"backoff_initial ({self.backoff_initial})")


@dataclass(frozen=True)
class InformerError:
    """A failure the informer recovers from by retrying; passed to ``on_error``.

    Attributes:
        informer: the informer's name (e.g. ``"basemodels"``).
        phase: ``"list"`` or ``"watch"``.
        message: what went wrong, naming the request.
        status: the HTTP status (or the ``code`` of an ERROR event's Status); None for network errors.
        retry_in: seconds until the next attempt.
        exception: the underlying exception, if any.
    """

    informer: str
    phase: str
    message: str
    status: int | None
    retry_in: float
    exception: BaseException | None = None


def strip_server_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """The default transform: drop ``metadata.managedFields`` and the kubectl last-applied annotation.

    Neither is read by the agent and together they often outweigh the rest of the object.
    """
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
        annotations = metadata.get("annotations")
        if isinstance(annotations, dict) and LAST_APPLIED in annotations:
            del annotations[LAST_APPLIED]
            if not annotations:
                del metadata["annotations"]
    return obj


@dataclass(frozen=True)
class _Entry:
    uid: str
    resource_version: str
    raw: bytes

    def load(self) -> dict[str, Any]:
        return json.loads(self.raw)


@dataclass
class _Handlers:
    on_add: AddHandler | None
    on_update: UpdateHandler | None
    on_delete: DeleteHandler | None


class _Stopped(Exception):
    """The informer was stopped while a request was in progress."""


class _Relist(Exception):
    """The watch's resourceVersion expired (410); the collection must be listed again."""


class _Backoff:
    """Exponential backoff with jitter: each delay is drawn from [d/2, d], d doubling up to the cap."""

    def __init__(self, initial: float, maximum: float, rng: random.Random) -> None:
        self._initial = initial
        self._maximum = maximum
        self._rng = rng
        self._failures = 0

    def next(self, retry_after: float | None = None) -> float:
        ceiling = min(self._maximum, self._initial * (2 ** min(self._failures, 32)))
        self._failures += 1
        delay = self._rng.uniform(ceiling / 2, ceiling)
        if retry_after is not None and retry_after > delay:
            delay = retry_after
        return delay

    def reset(self) -> None:
        self._failures = 0


def _retry_after(exc: BaseException) -> float | None:
    headers = getattr(exc, "headers", None)
    if not headers:
        return None
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        # An HTTP-date: rare from Kubernetes; treat it as "soon" rather than guessing a clock offset.
        return None
    return max(seconds, 0.0)


def _object_key(obj: Mapping[str, Any]) -> ObjectKey:
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        raise ValueError("object has no metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("object has no metadata.name")
    namespace = metadata.get("namespace") or ""
    if not isinstance(namespace, str):
        raise ValueError(f"object {name!r} has a metadata.namespace that is not a string")
    return namespace, name


def _key_text(key: ObjectKey) -> str:
    return f"{key[0]}/{key[1]}" if key[0] else key[1]


def _metadata_str(obj: Mapping[str, Any], field: str) -> str:
    metadata = obj.get("metadata")
    value = metadata.get(field) if isinstance(metadata, Mapping) else None
    return value if isinstance(value, str) else ""


def _iter_lines(response: Any) -> Iterator[bytes]:
    """Complete lines of a streaming response, split on bytes so multi-byte characters stay whole."""
    buffer = bytearray()
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        start = 0
        while True:
            newline = buffer.find(b"\n", start)
            if newline < 0:
                break
            if newline > start:
                yield bytes(buffer[start:newline])
            start = newline + 1
        del buffer[:start]
    if buffer.strip():
        yield bytes(buffer)


def _abort_response(response: Any) -> None:
    """Unblock a thread reading ``response``: shut the socket down (a plain close does not wake recv)."""
    shutdown = getattr(response, "shutdown", None)  # urllib3 >= 2.3
    if callable(shutdown):
        try:
            shutdown()
            return
        except Exception as exc:  # best effort: fall back to the socket below
            logger.debug("response.shutdown() failed: %s", exc)
    connection = getattr(response, "connection", None) or getattr(response, "_connection", None)
    sock = getattr(connection, "sock", None)
    try:
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
        response.close()
    except Exception as exc:  # the reader thread sees the failure and ends either way
        logger.debug("aborting a watch response failed: %s", exc)


class Informer:
    """List+watch one Kubernetes collection into a cache and report changes to handlers.

    Build one with :meth:`for_base_models`, :meth:`for_cluster_base_models` or :meth:`for_node`, all
    on one shared ``kubernetes.client.ApiClient`` (never one per informer), then :meth:`start` it.

    Args:
        name: a short name for logs, errors and the thread (``"basemodels"``).
        list_func: the client's list method for the collection, e.g.
            ``CustomObjectsApi(api).list_cluster_custom_object``; it is called with ``list_args``
            followed by keyword arguments (``watch``, ``resource_version``, ``limit``...).
        list_args: positional arguments of ``list_func`` (group, version, plural for custom objects).
        field_selector, label_selector: restrict the collection (both list and watch).
        config: timeouts, paging and backoff.
        transform: applied to each object before it is cached and delivered (may modify and return
            it); the default drops managed fields and the last-applied annotation. None keeps objects
            unchanged.
        on_add, on_update, on_delete: event handlers (more with :meth:`add_handlers`).
        on_error: called with an :class:`InformerError` for every failure the informer retries.
        rng: randomness for jitter (tests pass a seeded one).
    """

    def __init__(
        self,
        name: str,
        list_func: Callable[..., Any],
        *,
        list_args: tuple[Any, ...] = (),
        field_selector: str | None = None,
        label_selector: str | None = None,
        config: InformerConfig | None = None,
        transform: Transform | None = strip_server_fields,
        on_add: AddHandler | None = None,
        on_update: UpdateHandler | None = None,
        on_delete: DeleteHandler | None = None,
        on_error: ErrorHandler | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not callable(list_func):
            raise TypeError(f"list_func must be callable, got {type(list_func).__name__}")
        self.name = name
        self.config = config or InformerConfig()
        self._list_func = list_func
        self._list_args = tuple(list_args)
        self._selectors: dict[str, str] = {}
        if field_selector:
            self._selectors["field_selector"] = field_selector
        if label_selector:
            self._selectors["label_selector"] = label_selector
        self._transform = transform
        self._handlers: list[_Handlers] = []
        self._error_handlers: list[ErrorHandler] = []
        self._thread: threading.Thread | None = None
        if on_add or on_update or on_delete:
            self.add_handlers(on_add=on_add, on_update=on_update, on_delete=on_delete)
        if on_error is not None:
            self._error_handlers.append(on_error)
        self._rng = rng or random.Random()
        self._backoff = _Backoff(self.config.backoff_initial, self.config.backoff_max, self._rng)

        self._lock = threading.Lock()
        self._cache: dict[ObjectKey, _Entry] = {}
        self._resource_version = ""
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._response_lock = threading.Lock()
        self._response: Any = None
        self._last_error: InformerError | None = None
        self._lists = 0
        self._watches = 0
        self._events = 0
        self._events_at_list = -1

    # ------------------------------------------------------------------ constructors

    @classmethod
    def for_base_models(cls, api_client: Any, **options: Any) -> Informer:
        """BaseModels in every namespace (``/apis/ome.io/v1beta1/basemodels``)."""
        from kubernetes import client

        api = client.CustomObjectsApi(api_client)
        return cls("basemodels", api.list_cluster_custom_object,
                   list_args=(OME_GROUP, OME_VERSION, "basemodels"), **options)

    @classmethod
    def for_cluster_base_models(cls, api_client: Any, **options: Any) -> Informer:
        """ClusterBaseModels (``/apis/ome.io/v1beta1/clusterbasemodels``)."""
        from kubernetes import client

        api = client.CustomObjectsApi(api_client)
        return cls("clusterbasemodels", api.list_cluster_custom_object,
                   list_args=(OME_GROUP, OME_VERSION, "clusterbasemodels"), **options)

    @classmethod
    def for_node(cls, api_client: Any, node_name: str, **options: Any) -> Informer:
        """The single Node ``node_name`` (field selector ``metadata.name=<node>``), as a dict."""
        from kubernetes import client

        if not isinstance(node_name, str) or not node_name:
            raise ValueError(f"node_name must be a non-empty string, got {node_name!r}")
        api = client.CoreV1Api(api_client)
        return cls(f"node/{node_name}", api.list_node, field_selector=f"metadata.name={node_name}", **options)

    # ------------------------------------------------------------------ registration and lifecycle

    def add_handlers(self, *, on_add: AddHandler | None = None, on_update: UpdateHandler | None = None,
                     on_delete: DeleteHandler | None = None) -> None:
        """Register another set of handlers; only before :meth:`start`."""
        self._require_not_started("add_handlers")
        self._handlers.append(_Handlers(on_add, on_update, on_delete))

    def add_error_handler(self, on_error: ErrorHandler) -> None:
        """Register another error callback; only before :meth:`start`."""
        self._require_not_started("add_error_handler")
        self._error_handlers.append(on_error)

    def _require_not_started(self, what: str) -> None:
        if self._thread is not None:
            raise RuntimeError(f"informer {self.name}: {what} must be called before start()")

    def start(self) -> Informer:
        """Start the background thread (list, then watch); returns self."""
        if self._thread is not None:
            raise RuntimeError(f"informer {self.name} was already started")
        self._thread = threading.Thread(target=self._run, name=f"informer-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """Stop watching and wait for the thread (``config.stop_timeout`` by default).

        Open watch connections are shut down at once. Returns True when the thread has ended; False
        when it is still inside a list or watch request that had not answered yet -- it then ends on
        its own when that request returns or times out, and calls no handler after this method.
        Safe to call from a handler and more than once.
        """
        self._stop.set()
        with self._response_lock:
            response = self._response
        if response is not None:
            _abort_response(response)
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return thread is None
        thread.join(self.config.stop_timeout if timeout is None else timeout)
        return not thread.is_alive()

    def __enter__(self) -> Informer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ cache

    def has_synced(self) -> bool:
        """True once the first list has been stored and its adds delivered to the handlers."""
        return self._synced.is_set()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        """Block until :meth:`has_synced` (or ``timeout`` seconds); returns whether it synced."""
        return self._synced.wait(timeout)

    def get(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        """A fresh copy of the cached object, or None. Use ``""`` or None for cluster-scoped objects."""
        with self._lock:
            entry = self._cache.get((namespace or "", name))
        return entry.load() if entry is not None else None

    def keys(self) -> list[ObjectKey]:
        """The cached keys, sorted."""
        with self._lock:
            return sorted(self._cache)

    def list(self) -> list[dict[str, Any]]:
        """Fresh copies of every cached object, sorted by key."""
        with self._lock:
            entries = [self._cache[key] for key in sorted(self._cache)]
        return [entry.load() for entry in entries]

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._cache

    @property
    def resource_version(self) -> str:
        """The last resourceVersion seen (list, event or bookmark); "" before the first list."""
        with self._lock:
            return self._resource_version

    @property
    def last_error(self) -> InformerError | None:
        """The most recent failure, or None; cleared by the next successful list or watch."""
        return self._last_error

    @property
    def list_count(self) -> int:
        """How many full lists succeeded (1 after the initial sync; more after 410s)."""
        return self._lists

    @property
    def watch_count(self) -> int:
        """How many watch requests were answered with a stream."""
        return self._watches

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    self._list_and_replace()
                    need_list = False
                self._watch()
            except _Stopped:
                break
            except _Relist as exc:
                logger.info("informer %s: %s; listing again", self.name, exc)
                need_list = True
                if self._lists > 1 and self._events_at_list == self._events:
                    # Expired again without a single event since the previous re-list: do not loop.
                    delay = self._backoff.next()
                    self._report("watch", f"{exc} again right after listing", 410, delay, None)
                    try:
                        self._sleep(delay)
                    except _Stopped:
                        break
            except Exception as exc:  # noqa: BLE001 - the loop must survive anything and retry
                try:
                    self._fail("list" if need_list else "watch", exc)
                except _Stopped:
                    break
        logger.debug("informer %s: stopped", self.name)

    def _call(self, read_timeout: float, **kwargs: Any) -> Any:
        if self._stop.is_set():
            raise _Stopped()
        return self._list_func(*self._list_args, **self._selectors, **kwargs,
                               _preload_content=False,
                               _request_timeout=(self.config.connect_timeout, read_timeout))

    def _list_and_replace(self) -> None:
        entries: dict[ObjectKey, _Entry] = {}
        resource_version = ""
        token: str | None = None
        position = -1
        paged = self.config.page_size > 0
        while True:
            kwargs: dict[str, Any] = {}
            if paged:
                kwargs["limit"] = self.config.page_size
            if token:
                kwargs["_continue"] = token
            try:
                response = self._call(self.config.list_read_timeout, **kwargs)
            except ApiException as exc:
                if exc.status == 410 and token:
                    # The continue token expired: list everything again in one response.
                    logger.info("informer %s: list continue token expired; listing without pages", self.name)
                    entries.clear()
                    resource_version, token, paged, position = "", None, False, -1
                    continue
                raise
            try:
                body = response.data
            finally:
                response.release_conn()
            page = self._parse_list(body)
            metadata = page.get("metadata") or {}
            if not resource_version:
                resource_version = metadata.get("resourceVersion") or ""
                if not isinstance(resource_version, str) or not resource_version:
                    raise ValueError(f"list of {self.name} has no metadata.resourceVersion")
            for item in page["items"]:
                position += 1
                made = self._make_entry(item, f"item {position} of the list of {self.name}", "list")
                if made is not None:
                    entries[made[1]] = made[0]
            del page
            token = metadata.get("continue") or None
            if not token:
                break
            if self._stop.is_set():
                raise _Stopped()
        self._lists += 1
        self._events_at_list = self._events
        self._replace(entries, resource_version)
        self._backoff.reset()
        self._last_error = None
        if not self._synced.is_set():
            self._synced.set()
            logger.info("informer %s: synced %d objects at resourceVersion %s", self.name, len(entries),
                        resource_version)

    def _parse_list(self, body: bytes) -> dict[str, Any]:
        try:
            page = json.loads(body)
        except ValueError as exc:
            raise ValueError(f"list of {self.name} is not JSON: {exc}") from None
        if not isinstance(page, dict) or not isinstance(page.get("items", []), list):
            raise ValueError(f"list of {self.name} is not a List object with an items array")
        page.setdefault("items", [])
        if page["items"] is None:
            page["items"] = []
        return page

    def _make_entry(self, obj: Any, where: str, phase: str) -> tuple[_Entry, ObjectKey] | None:
        """The cache entry of ``obj``; None (reported, skipped) for an object that cannot be cached."""
        try:
            if not isinstance(obj, dict):
                raise ValueError(f"not an object but {type(obj).__name__}")
            if self._transform is not None:
                obj = self._transform(obj)
            key = _object_key(obj)
            raw = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
        except Exception as exc:  # noqa: BLE001 - one bad object (or transform bug) must not block the rest
            self._report(phase, f"skipping {where}: {exc}", None, 0.0, exc)
            return None
        return _Entry(_metadata_str(obj, "uid"), _metadata_str(obj, "resourceVersion"), raw), key

    def _replace(self, entries: dict[ObjectKey, _Entry], resource_version: str) -> None:
        """Make the cache equal to a fresh list, delivering the difference as events."""
        with self._lock:
            previous = dict(self._cache)
        for key in sorted(previous.keys() - entries.keys()):
            with self._lock:
                old = self._cache.pop(key, None)
            if old is not None:
                self._deliver_delete(old)
        for key in sorted(entries):
            new = entries[key]
            old = previous.get(key)
            if old is not None and old.uid == new.uid and old.resource_version == new.resource_version:
                continue
            with self._lock:
                self._cache[key] = new
            self._deliver_change(old, new)
        with self._lock:
            self._resource_version = resource_version

    def _watch(self) -> None:
        timeout = int(self.config.watch_timeout_seconds * self._rng.uniform(1.0, 1.1))
        kwargs: dict[str, Any] = {"watch": True, "resource_version": self.resource_version,
                                  "timeout_seconds": max(timeout, 1)}
        if self.config.bookmarks:
            kwargs["allow_watch_bookmarks"] = True
        try:
            response = self._call(self.config.read_timeout, **kwargs)
        except ApiException as exc:
            if exc.status == 410:
                raise _Relist(f"watch from resourceVersion {kwargs['resource_version']} answered 410 Gone") from None
            raise
        with self._response_lock:
            self._response = response
        self._watches += 1
        received = 0
        try:
            if self._stop.is_set():
                raise _Stopped()
            for line in _iter_lines(response):
                if self._stop.is_set():
                    raise _Stopped()
                self._handle_event(line)
                received += 1
                if received == 1:
                    self._backoff.reset()
                    self._last_error = None
        except urllib3.exceptions.ReadTimeoutError as exc:
            if self._stop.is_set():
                raise _Stopped() from None
            self._report("watch", f"watch of {self.name} was silent for {self.config.read_timeout:g} s "
                                  "(read timeout); watching again", None, 0.0, exc)
            return
        except (urllib3.exceptions.HTTPError, OSError):
            if self._stop.is_set():
                raise _Stopped() from None
            raise
        finally:
            with self._response_lock:
                self._response = None
            # Never hand a watch connection back for reuse: it may be mid-stream or half shut down.
            try:
                response.close()
                response.release_conn()
            except Exception as exc:  # the connection is discarded either way
                logger.debug("informer %s: closing the watch response failed: %s", self.name, exc)
        if received == 0:
            # A stream that ends without a single event: do not reconnect in a tight loop.
            self._sleep(self._backoff.next())

    def _handle_event(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            raise ValueError(f"watch of {self.name} sent a line that is not JSON: {line[:200]!r}") from None
        if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
            raise ValueError(f"watch of {self.name} sent a malformed event: {line[:200]!r}")
        kind = event.get("type")
        obj: dict[str, Any] = event["object"]
        if kind == "ERROR":
            code = obj.get("code")
            message = obj.get("message") or obj.get("reason") or "unknown error"
            if code == 410 or obj.get("reason") in ("Expired", "Gone"):
                raise _Relist(f"watch of {self.name} expired: {message}")
            raise ApiException(status=code if isinstance(code, int) else 0,
                               reason=f"ERROR event in the watch of {self.name}: {message}")
        self._events += 1
        resource_version = _metadata_str(obj, "resourceVersion")
        if kind == "BOOKMARK":
            if resource_version:
                with self._lock:
                    self._resource_version = resource_version
            return
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            logger.warning("informer %s: ignoring watch event of unknown type %r", self.name, kind)
            return
        made = self._make_entry(obj, f"a {kind} event in the watch of {self.name}", "watch")
        with self._lock:
            if resource_version:
                self._resource_version = resource_version
            if made is None:
                return
            entry, key = made
            old = self._cache.get(key)
            if kind == "DELETED":
                self._cache.pop(key, None)
            elif old is None or old.uid != entry.uid or old.resource_version != entry.resource_version:
                self._cache[key] = entry
        if kind == "DELETED":
            self._deliver_delete(entry)
        elif old is None or old.uid != entry.uid or old.resource_version != entry.resource_version:
            self._deliver_change(old, entry)

    # ------------------------------------------------------------------ delivery and failures

    def _deliver_change(self, old: _Entry | None, new: _Entry) -> None:
        if old is not None and old.uid != new.uid:
            # Same name, different object: it was deleted and created again.
            self._deliver_delete(old)
            old = None
        for handlers in self._handlers:
            if self._stop.is_set():
                return
            if old is None:
                if handlers.on_add is not None:
                    self._invoke(handlers.on_add, new.load())
            elif handlers.on_update is not None:
                self._invoke(handlers.on_update, old.load(), new.load())

    def _deliver_delete(self, old: _Entry) -> None:
        for handlers in self._handlers:
            if self._stop.is_set():
                return
            if handlers.on_delete is not None:
                self._invoke(handlers.on_delete, old.load())

    def _invoke(self, handler: Callable[..., None], *args: Any) -> None:
        try:
            handler(*args)
        except Exception:  # a faulty handler must not stop the informer
            logger.exception("informer %s: handler %s raised", self.name, getattr(handler, "__qualname__", handler))

    def _fail(self, phase: str, exc: BaseException) -> None:
        status = exc.status if isinstance(exc, ApiException) else None
        delay = self._backoff.next(_retry_after(exc))
        self._report(phase, self._describe(phase, exc), status, delay, exc)
        self._sleep(delay)

    def _describe(self, phase: str, exc: BaseException) -> str:
        what = f"{phase} of {self.name}"
        if isinstance(exc, ApiException):
            detail = exc.reason or ""
            body = exc.body
            if body:
                try:
                    status = json.loads(body)
                    if isinstance(status, dict) and status.get("message"):
                        detail = f"{detail}: {status['message']}" if detail else str(status["message"])
                except ValueError:
                    pass
            hint = ""
            if exc.status in (401, 403):
                hint = " (check the agent's credentials and RBAC)"
            return f"{what} failed: HTTP {exc.status} {detail}{hint}"
        return f"{what} failed: {type(exc).__name__}: {exc}"

    def _report(self, phase: str, message: str, status: int | None, retry_in: float,
                exc: BaseException | None) -> None:
        error = InformerError(self.name, phase, message, status, retry_in, exc)
        self._last_error = error
        level = logging.ERROR if status in (401, 403) else logging.WARNING
        logger.log(level, "informer %s: %s (retrying in %.1f s)", self.name, message, retry_in)
        for callback in self._error_handlers:
            try:
                callback(error)
            except Exception:  # a faulty callback must not stop the informer
                logger.exception("informer %s: error callback raised", self.name)

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise _Stopped()
