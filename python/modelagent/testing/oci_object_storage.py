"""A local fake of OCI Object Storage (read paths), faithful enough for the ``oci`` SDK and modelagent.

It speaks ``shared/reference/protocols.md`` section 2.1 on 127.0.0.1: GetNamespace, HeadObject,
GetObject (Range → 206/416, If-Match → 412, If-None-Match → 304) and ListObjects (``fields``, ``prefix``,
``start``, ``end``, ``startAfter``, ``limit``, ``delimiter=/``, ``nextStartWith``), with the service's
error JSON ``{"code", "message"}`` and an ``opc-request-id`` on every answer. Every request must carry a
valid OCI signature (signature version 1, rsa-sha256), checked with
:func:`modelagent.testing._oci_signature.verify_request` against registered keys: ``401 NotAuthenticated``
for a bad signature, an unknown key or a clock skew over five minutes. (Scripted status faults answer
before the signature check, like a throttling front end; :attr:`FakeObjectStorage.auth_log` lists the
requests that were checked.)

Objects are bytes held in memory or files on disk (streamed with sendfile, so multi-GB objects need not
fit in memory). An object is single-part (``Content-MD5``) or multipart-style (no ``Content-MD5``;
``opc-multipart-md5`` computed from the real MD5s of its parts for a chosen part size), optionally with
``opc-meta-md5``, or has no MD5 at all.

Example::

    from modelagent.testing.oci_object_storage import FakeObjectStorage

    with FakeObjectStorage(namespace="myns") as oci:
        creds = oci.add_user(tmp_path)              # key pair + OCI config file for a user principal
        oci.put_object("models", "llama/config.json", b"{}")
        oci.put_object("models", "llama/model.safetensors", path, part_size=8 << 20)
        oci.rate_limit(count=2, retry_after=0)      # the next two requests get a 429
        # OCI_OBJECT_STORAGE_ENDPOINT=oci.url, parameters auth=UserPrincipal, config_file=creds.config_file
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import dataclasses
import datetime as _dt
import hashlib
import itertools
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Union
from urllib.parse import parse_qs, unquote

from modelagent.testing._http import (
    BaseHandler,
    BodySource,
    Fault,
    FaultSet,
    RequestLog,
    RequestRecord,
    ServerThread,
)
from modelagent.testing._oci_signature import SignatureError, verify_request
from modelagent.testing.oci_identity import OciUserCredentials, write_oci_config

__all__ = [
    "FakeObjectStorage",
    "Fault",
    "OciObject",
    "OciUserCredentials",
    "RequestRecord",
    "fake_oci",
]

ObjectContent = Union[bytes, bytearray, memoryview, str, os.PathLike]
"""Object content: bytes (or str, UTF-8 encoded) held in memory, or a path to a file on disk."""

MiB = 1 << 20
DEFAULT_PAGE_SIZE = 3
"""Objects per ListObjects page unless the client asks for fewer (small, so clients must paginate)."""
MAX_SKEW_SECONDS = 300.0
LIST_FIELDS = ("name", "size", "etag", "md5", "timeCreated", "timeModified", "storageTier", "archivalState")
_ERROR_CODES = {
    400: "InvalidParameter",
    401: "NotAuthenticated",
    404: "NotFound",
    409: "Conflict",
    412: "IfMatchFailed",
    416: "InvalidRange",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


# --------------------------------------------------------------------------------------------------
# Content model


@dataclasses.dataclass(frozen=True)
class OciObject:
    """One stored object with the metadata the service reports for it."""

    bucket: str
    name: str
    size: int
    etag: str
    md5: str | None
    """Base64 MD5 of the whole content (the value of ``Content-MD5``), None for multipart-style objects
    and objects stored without an MD5."""
    multipart_md5: str | None
    """``opc-multipart-md5``: base64 MD5 of the concatenated binary part MD5s, ``-<parts>``."""
    metadata: Mapping[str, str]
    """User metadata, served as ``opc-meta-<key>`` headers."""
    storage_tier: str
    archival_state: str | None
    created: _dt.datetime
    source: BodySource

    @property
    def listing_md5(self) -> str | None:
        """The ``md5`` field of ListObjects: the whole-object MD5, else the multipart one."""
        return self.md5 if self.md5 is not None else self.multipart_md5

    def read(self) -> bytes:
        """The whole content (for small objects in tests)."""
        return self.source.read(0, self.size)


def _digests(source: BodySource, part_size: int | None) -> tuple[str, list[bytes]]:
    """(base64 MD5 of the whole content, binary MD5 of each part) in one pass."""
    whole = hashlib.md5()
    parts: list[bytes] = []
    if source.size == 0:
        return base64.b64encode(whole.digest()).decode(), [hashlib.md5(b"").digest()] if part_size else []
    step = part_size or 8 * MiB
    with open(source.path, "rb") if source.path is not None else contextlib.nullcontext() as fileobj:
        for offset in range(0, source.size, step):
            length = min(step, source.size - offset)
            chunk = fileobj.read(length) if fileobj is not None else source.read(offset, length)
            whole.update(chunk)
            if part_size:
                parts.append(hashlib.md5(chunk).digest())
    return base64.b64encode(whole.digest()).decode(), parts


def _iso(date: _dt.datetime) -> str:
    return date.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{date.microsecond // 1000:03d}Z"


class _OciError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# --------------------------------------------------------------------------------------------------
# The fake service


class FakeObjectStorage:
    """A fake OCI Object Storage endpoint on ``host:port`` (one namespace, any number of buckets).

    Use as a context manager (or :meth:`start`/:meth:`stop`). Objects, keys and faults can change while it
    runs; every request is recorded in :attr:`requests`, and the keyId (or the signature error) of each
    in :attr:`auth_log`.

    Args:
        namespace: the tenancy's Object Storage namespace (GetNamespace answer).
        page_size: at most this many entries per ListObjects page, whatever ``limit`` asks (the real
            service pages by 1000; a small value makes every client paginate).
        max_skew: allowed difference in seconds between a request's date and the server clock.
        clock_offset: seconds added to the server clock (simulate a client whose clock is off).
        verify_signatures: False accepts any request (only for tools that cannot sign).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        namespace: str = "fakens",
        page_size: int = DEFAULT_PAGE_SIZE,
        max_skew: float = MAX_SKEW_SECONDS,
        clock_offset: float = 0.0,
        verify_signatures: bool = True,
        log_limit: int = 100_000,
        log_sink: Callable[[RequestRecord], None] | None = None,
        verbose: bool = False,
    ) -> None:
        if not namespace:
            raise ValueError("namespace must not be empty")
        if not 1 <= page_size <= 1000:
            raise ValueError(f"page_size must be within 1..1000, got {page_size}")
        self.host, self.port = host, port
        self.namespace = namespace
        self.page_size = page_size
        self.max_skew = max_skew
        self.clock_offset = clock_offset
        """Seconds added to the server clock when checking request dates (change it any time)."""
        self.verify_signatures = verify_signatures
        self.verbose = verbose
        self.faults = FaultSet()
        self.log = RequestLog(log_limit, log_sink)
        self.internal_errors: list[str] = []
        """Tracebacks of exceptions raised while handling requests (answered 500); should stay empty."""
        self.auth_log: list[tuple[RequestRecord, str | None, str | None]] = []
        """(request, keyId that signed it or None, signature error or None) for every request."""
        self._lock = threading.RLock()
        self._buckets: dict[str, dict[str, OciObject]] = {}
        self._sorted_names: dict[str, list[str]] = {}
        self._keys: dict[str, Any] = {}
        self._key_lookups: list[Callable[[str], Any]] = []
        self._server: ServerThread | None = None
        self._request_ids = itertools.count(1)

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> FakeObjectStorage:
        """Bind and start serving. Returns self."""
        if self._server is not None:
            raise RuntimeError("FakeObjectStorage is already started")
        self._server = ServerThread(self.host, self.port, _Handler, _Context(self))
        self._server.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop serving, drop connections and wait until every logged request is finished. Idempotent."""
        if self._server is not None:
            self._server.stop()
        self._server = None
        self.log.wait_all(timeout)

    def __enter__(self) -> FakeObjectStorage:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The endpoint, e.g. ``http://127.0.0.1:41234`` (what OCI_OBJECT_STORAGE_ENDPOINT should be)."""
        if self._server is None:
            raise RuntimeError("FakeObjectStorage is not started")
        return self._server.url

    # -- keys -------------------------------------------------------------------------------------

    def add_key(self, key_id: str, public_key: Any) -> None:
        """Accept signatures made with the private half of ``public_key`` under ``key_id``."""
        if hasattr(public_key, "public_key"):
            public_key = public_key.public_key()
        with self._lock:
            self._keys[key_id] = public_key

    def remove_key(self, key_id: str) -> None:
        """Stop accepting ``key_id`` (its requests get 401)."""
        with self._lock:
            self._keys.pop(key_id, None)

    def add_key_lookup(self, lookup: Callable[[str], Any]) -> None:
        """Also ask ``lookup(key_id) -> public key | None`` (e.g. session tokens ``ST$...`` issued by a fake
        federation service) for keys that are not registered."""
        with self._lock:
            self._key_lookups.append(lookup)

    def add_user(self, directory: str | os.PathLike[str], **kwargs: Any) -> OciUserCredentials:
        """Write an OCI config file and API key under ``directory`` (keyword arguments as for
        :func:`modelagent.testing.oci_identity.write_oci_config`) and accept that key's signatures."""
        credentials = write_oci_config(directory, **kwargs)
        self.add_key(credentials.key_id, credentials.private_key.public_key())
        return credentials

    def _lookup_key(self, key_id: str) -> Any:
        with self._lock:
            key = self._keys.get(key_id)
            lookups = list(self._key_lookups)
        if key is not None:
            return key
        for lookup in lookups:
            found = lookup(key_id)
            if found is not None:
                return found
        return None

    # -- content ----------------------------------------------------------------------------------

    def create_bucket(self, bucket: str) -> None:
        """Create an empty bucket (put_object creates buckets as needed)."""
        if not bucket or "/" in bucket:
            raise ValueError(f"bucket name {bucket!r} must be non-empty without '/'")
        with self._lock:
            self._buckets.setdefault(bucket, {})
            self._sorted_names.setdefault(bucket, [])

    def put_object(
        self,
        bucket: str,
        name: str,
        content: ObjectContent,
        *,
        part_size: int | None = None,
        meta_md5: bool | str = False,
        md5: bool = True,
        metadata: Mapping[str, str] | None = None,
        storage_tier: str = "Standard",
        archival_state: str | None = None,
    ) -> OciObject:
        """Store (or replace, with a new ETag) an object.

        ``part_size`` makes it multipart-style: no ``Content-MD5``, ``opc-multipart-md5`` from the part
        MD5s. ``meta_md5=True`` adds ``opc-meta-md5`` (the real whole-object MD5; a string sets any value).
        ``md5=False`` stores it with no MD5 at all. ``archival_state`` (``Archived``, ``Restoring``,
        ``Restored``) goes with ``storage_tier="Archive"``; archived objects answer GET with 409.
        """
        if not name or len(name.encode()) > 1024:
            raise ValueError(f"object name {name!r} must be 1..1024 bytes")
        if part_size is not None and part_size < 1:
            raise ValueError(f"part_size must be >= 1, got {part_size}")
        if isinstance(content, str):
            content = content.encode()
        if isinstance(content, (bytes, bytearray, memoryview)):
            data = bytes(content)
            source = BodySource(size=len(data), data=data)
        else:
            path = Path(content)
            source = BodySource(size=path.stat().st_size, path=path)
        whole, parts = _digests(source, part_size)
        multipart = None
        if part_size is not None:
            composite = hashlib.md5(b"".join(parts)).digest()
            multipart = f"{base64.b64encode(composite).decode()}-{len(parts)}"
        meta = dict(metadata or {})
        if meta_md5 is True:
            meta["md5"] = whole
        elif isinstance(meta_md5, str):
            meta["md5"] = meta_md5
        obj = OciObject(
            bucket=bucket,
            name=name,
            size=source.size,
            etag=str(uuid.uuid4()),
            md5=whole if md5 and part_size is None else None,
            multipart_md5=multipart if md5 else None,
            metadata=meta,
            storage_tier=storage_tier,
            archival_state=archival_state,
            created=_dt.datetime.now(_dt.timezone.utc),
            source=source,
        )
        with self._lock:
            self.create_bucket(bucket)
            objects = self._buckets[bucket]
            if name not in objects:
                bisect.insort(self._sorted_names[bucket], name)
            objects[name] = obj
        return obj

    def delete_object(self, bucket: str, name: str) -> None:
        """Remove an object (KeyError if absent)."""
        with self._lock:
            del self._buckets[bucket][name]
            self._sorted_names[bucket].remove(name)

    def get_object(self, bucket: str, name: str) -> OciObject:
        """The stored object (KeyError if absent)."""
        with self._lock:
            return self._buckets[bucket][name]

    def objects(self, bucket: str) -> list[OciObject]:
        """The bucket's objects in name order."""
        with self._lock:
            return [self._buckets[bucket][n] for n in self._sorted_names[bucket]]

    # -- faults -----------------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> Fault:
        """Register a :class:`Fault` (``server`` must be None); faults are tried in the order added."""
        return self.faults.add(fault)

    def rate_limit(
        self, count: int = 1, *, retry_after: int | None = 1, path: str | None = None, methods: Iterable[str] | None = None
    ) -> Fault:
        """Answer the next ``count`` matching requests with ``429 TooManyRequests`` (+ ``Retry-After``)."""
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
        return self.add_fault(
            Fault("status", count=count, status=429, headers=headers, message="Too many requests for the tenancy",
                  path=path, methods=frozenset(methods) if methods else None)
        )

    def server_error(
        self, count: int = 1, *, status: int = 503, path: str | None = None, methods: Iterable[str] | None = None
    ) -> Fault:
        """Answer the next ``count`` matching requests with ``status`` (a 5xx burst)."""
        return self.add_fault(
            Fault("status", count=count, status=status, message="The service is currently unavailable",
                  path=path, methods=frozenset(methods) if methods else None)
        )

    def cut_connection(self, after_bytes: int, count: int = 1, *, path: str | None = None) -> Fault:
        """Send only ``after_bytes`` of the next ``count`` matching object bodies, then close the socket."""
        return self.add_fault(Fault("cut", count=count, after_bytes=after_bytes, path=path))

    def corrupt_bytes(self, offset: int | None = None, count: int = 1, *, path: str | None = None) -> Fault:
        """Flip the byte at ``offset`` (None: the first byte served) in the next ``count`` matching bodies."""
        return self.add_fault(Fault("corrupt", count=count, offset=offset, path=path))

    def delay(self, seconds: float, count: int = 1, *, path: str | None = None) -> Fault:
        """Wait ``seconds`` before answering the next ``count`` matching requests."""
        return self.add_fault(Fault("delay", count=count, delay=seconds, path=path))

    def on_request(self, callback: Callable[[RequestRecord], None], count: int = 1, *, path: str | None = None) -> Fault:
        """Call ``callback(record)`` before handling the next ``count`` matching requests."""
        return self.add_fault(Fault("callback", count=count, callback=callback, path=path))

    def throttle(self, bytes_per_second: int | None, *, path: str | None = None) -> None:
        """Limit each connection to ``bytes_per_second`` of object body; None removes every throttle."""
        self.faults.set_throttle(bytes_per_second, path=path)

    def clear_faults(self) -> None:
        """Remove all scripted faults and throttles."""
        self.faults.clear()

    # -- request log ------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log, oldest first."""
        return self.log.snapshot()

    def find_requests(
        self, *, method: str | None = None, path: str | None = None, status: int | None = None
    ) -> list[RequestRecord]:
        """Logged requests matching all given criteria (``path`` is a regex searched in the decoded path)."""
        return self.log.find(method=method, path=path, status=status)

    def clear_requests(self) -> None:
        """Empty the request log and the auth log."""
        self.log.clear()
        with self._lock:
            self.auth_log.clear()

    # -- request handling (called by the handler) -------------------------------------------------

    def _next_request_id(self) -> str:
        return f"fake-oci-{next(self._request_ids):06d}"

    def _authenticate(self, record: RequestRecord, method: str, target: str, headers: Mapping[str, str]) -> str | None:
        """The signature error message, or None when the request is properly signed."""
        if not self.verify_signatures:
            return None
        try:
            key_id = verify_request(
                method, target, headers, b"", self._lookup_key, now=time.time() + self.clock_offset,
                max_skew=self.max_skew,
            )
        except SignatureError as err:
            with self._lock:
                self.auth_log.append((record, None, err.message))
            return err.message
        with self._lock:
            self.auth_log.append((record, key_id, None))
        return None

    def _bucket(self, namespace: str, bucket: str) -> dict[str, OciObject]:
        if namespace != self.namespace:
            raise _OciError(404, "NamespaceNotFound", f"You do not have authorization to perform this request, or "
                            f"the requested resource could not be found (namespace '{namespace}').")
        with self._lock:
            objects = self._buckets.get(bucket)
        if objects is None:
            raise _OciError(404, "BucketNotFound", f"Either the bucket named '{bucket}' does not exist in the "
                            f"namespace '{namespace}' or you are not authorized to access it")
        return objects

    def _object(self, namespace: str, bucket: str, name: str) -> OciObject:
        objects = self._bucket(namespace, bucket)
        with self._lock:
            obj = objects.get(name)
        if obj is None:
            raise _OciError(404, "ObjectNotFound", f"The object '{name}' was not found in the bucket '{bucket}'")
        return obj

    def _list(self, namespace: str, bucket: str, query: Mapping[str, list[str]]) -> dict[str, Any]:
        self._bucket(namespace, bucket)

        def one(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values else None

        fields = ["name"]
        if one("fields"):
            fields = [f.strip() for f in one("fields").split(",") if f.strip()]  # type: ignore[union-attr]
            unknown = [f for f in fields if f not in LIST_FIELDS]
            if unknown:
                raise _OciError(400, "InvalidParameter", f"Invalid fields: {', '.join(unknown)}")
        limit_text = one("limit")
        try:
            limit = 1000 if limit_text is None else int(limit_text)
        except ValueError:
            raise _OciError(400, "InvalidParameter", f"limit '{limit_text}' is not a number") from None
        if not 1 <= limit <= 1000:
            raise _OciError(400, "InvalidParameter", f"limit must be between 1 and 1000, got {limit}")
        delimiter = one("delimiter")
        if delimiter not in (None, "/"):
            raise _OciError(400, "InvalidParameter", "only '/' is a supported delimiter")
        prefix = one("prefix") or ""
        start, end, start_after = one("start"), one("end"), one("startAfter")
        with self._lock:
            names = list(self._sorted_names[bucket])
            objects = dict(self._buckets[bucket])
        index = bisect.bisect_left(names, prefix)
        if start is not None:
            index = max(index, bisect.bisect_left(names, start))
        if start_after is not None:
            index = max(index, bisect.bisect_right(names, start_after))
        page: list[dict[str, Any]] = []
        prefixes: list[str] = []
        next_start: str | None = None
        page_size = min(limit, self.page_size)
        for name in names[index:]:
            if not name.startswith(prefix) or (end is not None and name >= end):
                break
            if delimiter is not None:
                cut = name.find("/", len(prefix))
                if cut >= 0:
                    common = name[: cut + 1]
                    if common not in prefixes:
                        if len(page) + len(prefixes) >= page_size:
                            next_start = name
                            break
                        prefixes.append(common)
                    continue
            if len(page) + len(prefixes) >= page_size:
                next_start = name
                break
            page.append(self._summary(objects[name], fields))
        body: dict[str, Any] = {"objects": page, "prefixes": prefixes}
        if next_start is not None:
            body["nextStartWith"] = next_start
        return body

    @staticmethod
    def _summary(obj: OciObject, fields: list[str]) -> dict[str, Any]:
        values: dict[str, Any] = {
            "name": obj.name,
            "size": obj.size,
            "etag": obj.etag,
            "md5": obj.listing_md5,
            "timeCreated": _iso(obj.created),
            "timeModified": _iso(obj.created),
            "storageTier": obj.storage_tier,
            "archivalState": obj.archival_state,
        }
        out: dict[str, Any] = {"name": obj.name}
        for field in fields:
            if values.get(field) is not None:
                out[field] = values[field]
        return out

    @staticmethod
    def _object_headers(obj: OciObject) -> dict[str, str]:
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": obj.etag,
            "Last-Modified": format_datetime(obj.created.astimezone(_dt.timezone.utc), usegmt=True),
            "version-id": obj.etag,
            "storage-tier": obj.storage_tier,
        }
        if obj.md5 is not None:
            headers["Content-MD5"] = obj.md5
        if obj.multipart_md5 is not None:
            headers["opc-multipart-md5"] = obj.multipart_md5
        if obj.archival_state is not None:
            headers["archival-state"] = obj.archival_state
        for key, value in obj.metadata.items():
            headers[f"opc-meta-{key}"] = value
        return headers


@dataclasses.dataclass
class _Context:
    store: FakeObjectStorage
    server_name: str = "oci"

    @property
    def faults(self) -> FaultSet:
        return self.store.faults

    @property
    def log(self) -> RequestLog:
        return self.store.log

    @property
    def verbose(self) -> bool:
        return self.store.verbose

    @property
    def internal_errors(self) -> list[str]:
        return self.store.internal_errors


class _Handler(BaseHandler):
    context: _Context
    server_version = "fake-oci-objectstorage"

    @property
    def store(self) -> FakeObjectStorage:
        return self.context.store

    # Every answer carries an opc-request-id and errors use the service's {"code", "message"} shape, also
    # for the scripted status faults and range errors produced by the shared base.
    def _send_headers(self, status: int, headers: Mapping[str, str], length: int) -> None:
        merged = dict(headers)
        if not any(k.lower() == "opc-request-id" for k in merged):
            merged["opc-request-id"] = self._request_id
        super()._send_headers(status, merged, length)

    def send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        if status >= 400 and isinstance(payload, dict) and set(payload) == {"error"}:
            payload = {"code": _ERROR_CODES.get(status, "InternalServerError"), "message": payload["error"]}
        super().send_json(status, payload, headers)

    def _dispatch(self) -> None:
        self._request_id = self.store._next_request_id()
        super()._dispatch()

    def route(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        problem = self.store._authenticate(self.record, self.command, self.path, headers)
        try:
            if problem is not None:
                raise _OciError(401, "NotAuthenticated", f"The required information to complete authentication "
                                f"was not provided or was incorrect: {problem}")
            self._route()
        except _OciError as err:
            self.send_json(err.status, {"code": err.code, "message": err.message})

    def _route(self) -> None:
        segments = self.raw_path.split("/")[1:]
        if segments and segments[-1] == "" and len(segments) <= 2:
            segments = segments[:-1]
        if segments == ["n"]:
            self._only(("GET",))
            self.send_json(200, self.store.namespace)
            return
        if len(segments) >= 4 and segments[0] == "n" and segments[2] == "b":
            namespace, bucket = unquote(segments[1]), unquote(segments[3])
            if len(segments) == 5 and segments[4] == "o":
                self._only(("GET",))
                query = parse_qs(self.req_query, keep_blank_values=True)
                self.send_json(200, self.store._list(namespace, bucket, query))
                return
            if len(segments) >= 6 and segments[4] == "o":
                self._only(("GET", "HEAD"))
                name = unquote("/".join(segments[5:]))
                self._send_object(self.store._object(namespace, bucket, name))
                return
        raise _OciError(404, "NotFound", f"no such resource: {self.raw_path}")

    def _only(self, methods: tuple[str, ...]) -> None:
        if self.command not in methods:
            raise _OciError(405, "MethodNotAllowed", f"{self.command} is not supported here by the fake")

    def _send_object(self, obj: OciObject) -> None:
        headers = self.store._object_headers(obj)
        if_match = self.headers.get("If-Match")
        if if_match is not None and if_match.strip() not in ("*", obj.etag):
            raise _OciError(412, "IfMatchFailed", f"The If-Match header '{if_match}' does not match the ETag "
                            f"'{obj.etag}' of object '{obj.name}'")
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None and if_none_match.strip() in ("*", obj.etag):
            self.send_bytes(304, b"", {"ETag": obj.etag})
            return
        if self.command == "GET" and obj.archival_state in ("Archived", "Restoring"):
            raise _OciError(409, "NotRestored", f"The object '{obj.name}' is archived; restore it first")
        self.send_file(obj.source, headers)


# --------------------------------------------------------------------------------------------------
# pytest fixture


def _fake_oci(monkeypatch: Any) -> Iterator[FakeObjectStorage]:
    """A started :class:`FakeObjectStorage` for one test; ``OCI_OBJECT_STORAGE_ENDPOINT`` points at it.
    The test fails if the fake raised while handling a request."""
    with FakeObjectStorage() as store:
        monkeypatch.setenv("OCI_OBJECT_STORAGE_ENDPOINT", store.url)
        yield store
    if store.internal_errors:
        import pytest

        pytest.fail("fake OCI Object Storage raised while handling requests:\n" + "\n".join(store.internal_errors),
                    pytrace=False)


try:
    import pytest
except ImportError:  # the fake itself works without pytest; only the fixture needs it
    fake_oci = None
else:
    fake_oci = pytest.fixture(_fake_oci, name="fake_oci")
