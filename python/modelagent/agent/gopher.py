"""The Gopher: a pool of workers that download, re-download and delete models, one task per model at a time.

Scheduling rules:

- Tasks are keyed by the model's ConfigMap key. At most one task per key runs at a time; at most one
  download and one delete wait behind it. A newer download replaces a queued one (supersede); a delete
  drops queued downloads.
- Deletes run on their own thread, so workers busy with long downloads never delay them. A delete cancels
  the model's running download (its :class:`~modelagent.CancelToken`; the transfer stops within about a
  second) and runs as soon as that download has returned.
- Every task captures the model's *generation* when it starts; a delete or a superseding download bumps
  it. Status, config and progress writes of a task whose generation is stale are dropped, so a download
  that ends after its model was deleted writes nothing and its files are removed by the delete that
  follows it.
- Change detection: a model's *identity* is its ``spec.storage`` minus the placement fields, plus the
  node's shape alias when the TensorRT-LLM shape filter applies (so a new instance type re-downloads). A
  download whose identity equals the last completed one is a no-op (label, annotation, status and
  back-filled spec changes never re-download). A new storage URI is fetched into a fresh sibling folder
  (``<dest>.next-<hash>``) and swapped in atomically; a new path is fetched there and the old folder is
  removed afterwards.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import datetime
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelagent.download import download as default_download
from modelagent.download import read_record
from modelagent import _core
from modelagent._core import CancelledError, CancelToken, DownloadOptions, InvalidStorageUri, VerificationError
from modelagent.agent.config_parser import SKIP_CONFIG_PARSING_ANNOTATION, skips_config_parsing
from modelagent.agent.destination import (
    DestinationError,
    DestinationRegistry,
    default_destination,
    find_owned_folders,
    read_owner,
    resolve_destination,
    write_owner,
)
from modelagent.agent.logging import model_logger
from modelagent.agent.model_ref import ModelRef
from modelagent.agent.secrets import SecretReader, hf_token, storage_credentials
from modelagent.agent.shape_filter import (
    InstanceTypeMap,
    ShapeFilterError,
    instance_type_of,
    shape_filter_applies,
    shape_path_filter,
)
from modelagent.agent.storage_kinds import Handling, StorageKind, classify
from modelagent.agent.tasks import GopherTask, TaskType
from modelagent.progress import ProgressSnapshot

_log = logging.getLogger("modelagent.agent.gopher")


ConfigParser = Callable[[ModelRef, Mapping[str, Any], Path], "dict[str, Any] | None"]
"""``parse(ref, model_object, folder)`` -> the ConfigMap entry's ``config`` object (or None), called after a
download; it may also back-fill the model's spec. The Gopher publishes the result unless the task is stale."""


def default_config(folder: Path) -> dict[str, Any]:
    """The ConfigMap ``config`` object of the model in ``folder`` (:func:`modelagent.inspect_model`)."""
    from modelagent.metadata import inspect_model

    return dict(inspect_model(folder).to_model_config().to_dict())

_PLACEMENT_FIELDS = ("nodeSelector", "nodeAffinity")

NodeLabels = Callable[[], "Mapping[str, str] | None"]
"""``labels()`` -> this node's current labels (None when not known yet)."""

Downloader = Callable[..., Any]
""":func:`modelagent.download` or a stand-in with its signature."""

# Failures another attempt cannot fix: the model must be corrected first.
_PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    _core.RepositoryNotFoundError,
    _core.RevisionNotFoundError,
    _core.EntryNotFoundError,
    _core.GatedRepoError,
    _core.UnauthorizedError,
    _core.InvalidStorageUri,
    _core.UnsafePathError,
    _core.DiskSpaceError,
    ShapeFilterError,
    ValueError,
)


# Failures that may pass on their own (network, server, rate limit, a corrupted transfer).
_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (_core.DownloadError, _core.HttpStatusError, OSError)


def _wait_cancelled(cancel: CancelToken, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cancel.cancelled:
            return True
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
    return cancel.cancelled


def storage_identity(obj: Mapping[str, Any]) -> str:
    """What a download depends on: ``spec.storage`` without its placement fields, as canonical JSON."""
    spec = obj.get("spec")
    storage = spec.get("storage") if isinstance(spec, Mapping) else None
    if not isinstance(storage, Mapping):
        return "null"
    relevant = {k: v for k, v in storage.items() if k not in _PLACEMENT_FIELDS}
    return json.dumps(relevant, sort_keys=True, separators=(",", ":"), default=str)


def progress_object(snapshot: Any, phase: str = "Downloading") -> dict[str, Any]:
    """The ConfigMap entry's ``progress`` object (wire-contract names) for a download progress snapshot."""
    return {
        "phase": phase,
        "totalBytes": int(snapshot.bytes_total),
        "completedBytes": int(snapshot.bytes_done),
        "totalFiles": int(snapshot.files_total),
        "completedFiles": int(snapshot.files_done),
        "speedBytesPerSec": float(snapshot.bytes_per_second),
        "lastUpdated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2_exchange() -> Callable[[bytes, bytes], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int

    def exchange(a: bytes, b: bytes) -> int:
        if fn(_AT_FDCWD, a, _AT_FDCWD, b, _RENAME_EXCHANGE) == 0:
            return 0
        return ctypes.get_errno()

    return exchange


_EXCHANGE = _renameat2_exchange()


def swap_directories(new: Path, current: Path) -> Path:
    """Put ``new`` at ``current`` and return where the old contents went (``new``'s old name).

    Uses ``renameat2(RENAME_EXCHANGE)`` so readers of ``current`` see the old tree or the new one, never
    a missing folder; falls back to two renames when the kernel or filesystem cannot exchange.
    """
    if not current.exists():
        os.rename(new, current)
        return new
    if _EXCHANGE is not None and _EXCHANGE(os.fsencode(new), os.fsencode(current)) == 0:
        return new
    retired = current.with_name(current.name + ".old")
    if retired.exists():
        shutil.rmtree(retired)
    os.rename(current, retired)
    os.rename(new, current)
    return retired


@dataclass(frozen=True)
class _Shape:
    """This node's TensorRT-LLM shape when a download starts."""

    instance_type: str
    alias: str


@dataclass
class _ModelState:
    generation: int = 0
    queue: list[GopherTask] = field(default_factory=list)
    running: GopherTask | None = None
    scheduled: bool = False
    cancel: CancelToken | None = None
    dest: Path | None = None
    identity: str | None = None
    uri: str | None = None
    outcome: str | None = None
    attempt: tuple[Path, str] | None = None  # (folder, uri) of the last download started, finished or not


_MD5_MISMATCH = re.compile(r"\bmd5(-multipart)? digest\b")
_NO_PROGRESS = ProgressSnapshot(bytes_done=0, bytes_total=0, files_done=0, files_total=0, bytes_per_second=0.0,
                                elapsed=0.0)


def is_md5_failure(error: BaseException) -> bool:
    """True when ``error`` is a :class:`~modelagent.VerificationError` about an MD5 (or multipart MD5) digest."""
    return isinstance(error, VerificationError) and bool(_MD5_MISMATCH.search(str(error)))


class _Reporter:
    """Status/config/progress writes for one task: dropped once the task is stale; progress never after final."""

    def __init__(self, gopher: Gopher, state: _ModelState, generation: int, ref: ModelRef, log: Any) -> None:
        self._gopher = gopher
        self._state = state
        self._generation = generation
        self._ref = ref
        self.log = log
        self._lock = threading.Lock()
        self._final = False
        self._last_progress = float("-inf")

    def current(self) -> bool:
        return self._gopher._is_current(self._state, self._generation)

    def _write(self, what: str, fn: Callable[[], None]) -> bool:
        try:
            fn()
        except Exception as error:  # noqa: BLE001 - a failed report must not kill the worker
            self.log.error("cannot write %s: %s", what, error)
            return False
        return True

    def status(self, status: str, reason: str | None = None) -> bool:
        with self._lock:
            if not self.current():
                self.log.info("not writing status %s: the model was deleted or superseded", status)
                return False
            if status in ("Ready", "Failed"):
                self._final = True
            sink = self._gopher.sink
            return self._write(f"status {status}", lambda: sink.set_status(self._ref, status, reason=reason))

    def config(self, config: dict[str, Any]) -> bool:
        with self._lock:
            if not self.current():
                return False
            sink = self._gopher.sink
            return self._write("config", lambda: sink.set_config(self._ref, config))

    def progress(self, snapshot: Any, *, phase: str = "Downloading", force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if self._final or not self.current():
                return
            if not force and now - self._last_progress < self._gopher.progress_interval:
                return
            self._last_progress = now
            value = progress_object(snapshot, phase)
            sink = self._gopher.sink
            self._write("progress", lambda: sink.set_progress(self._ref, value))


class TransferMeter:
    """Progress renderer for one download attempt: forwards snapshots to the model's progress and turns the
    download's counters into metrics as they grow (bytes fetched, every 429 and the wait it imposed), so
    bytes and rate limits of a failed or cancelled attempt are counted too. The counters include the
    source's planning calls (their retried 429s), which :func:`modelagent.download` hands over with the
    engine's first reading, or as a final reading when planning fails.

    ``report(snapshot, phase)`` receives every snapshot; ``metrics`` may be None.
    """

    interval = 0.5

    def __init__(self, metrics: Any, ref: ModelRef, report: Callable[[ProgressSnapshot, str], None]) -> None:
        self._metrics = metrics
        self._ref = ref
        self._report = report
        self._lock = threading.Lock()
        self._bytes = 0
        self._rate_limited = 0
        self._wait = 0.0
        self.last: ProgressSnapshot | None = None
        #: When every planned byte was first seen received (monotonic clock, at the poll interval's resolution).
        self.bytes_complete_at: float | None = None

    def update(self, snapshot: ProgressSnapshot) -> None:
        """A reading while the engine runs."""
        self._account(snapshot)
        self._report(snapshot, "Downloading" if snapshot.started else "Scanning")

    def finish(self, snapshot: ProgressSnapshot, ok: bool) -> None:
        """The last reading, when the engine returned or raised."""
        self._account(snapshot)

    @property
    def engine_ran(self) -> bool:
        """True once a reading came from the engine (it publishes the plan's totals when it starts), as
        opposed to none at all or only the counters of a failed planning step."""
        return self.last is not None and bool(self.last.started)

    def verify_tail(self, now: float) -> float:
        """Seconds from the last byte received to ``now``: the engine finishing hashes, fsync and rename."""
        return 0.0 if self.bytes_complete_at is None else max(0.0, now - self.bytes_complete_at)

    def _account(self, snapshot: ProgressSnapshot) -> None:
        with self._lock:
            self.last = snapshot
            if self.bytes_complete_at is None and 0 < int(snapshot.bytes_total) <= int(snapshot.bytes_done):
                self.bytes_complete_at = time.monotonic()
            new_bytes = max(0, int(snapshot.bytes_fetched) - self._bytes)
            self._bytes += new_bytes
            hits = max(0, int(snapshot.rate_limited) - self._rate_limited)
            self._rate_limited += hits
            waited = getattr(snapshot, "rate_limit_wait_seconds", None)
            per_hit = 0.0
            if hits and waited is not None:
                per_hit = max(0.0, float(waited) - self._wait) / hits
                self._wait = max(self._wait, float(waited))
        if self._metrics is None:
            return
        kind, namespace, name = self._ref.kind, self._ref.namespace, self._ref.name
        if new_bytes:
            self._metrics.bytes_downloaded(kind, namespace, name, new_bytes)
        for _ in range(hits):
            self._metrics.rate_limited(kind, namespace, name, per_hit)


class Gopher:
    """Runs :class:`~modelagent.agent.tasks.GopherTask` s against a status sink.

    Args:
        sink: a :class:`~modelagent.agent.status_sink.StatusSink`.
        models_root: ``--models-root-dir``; model folders live strictly inside it.
        workers: download workers (``--num-download-worker``); deletes have their own thread.
        metrics: a :class:`~modelagent.metrics.Metrics` (optional).
        read_secret: how to read Secrets for Hugging Face tokens (None: no Secrets, e.g. standalone).
        cluster_namespace: where ClusterBaseModels' Secrets live (``--namespace``).
        parse_config: a :data:`ConfigParser` called after a successful download or for a ``local://``
            model unless the model skips config parsing; default: :func:`default_config`.
        download_options: :class:`~modelagent.DownloadOptions` for the engine.
        endpoint: Hugging Face endpoint (default ``HF_ENDPOINT`` or huggingface.co).
        connections: parallel connections per model download (``--concurrency``).
        progress_interval: seconds between progress writes per model.
        download_retry: attempts per download for transient failures (``--download-retry``).
        instance_types: the instance type -> TensorRT-LLM shape table (``--instance-type-map``); default:
            OME's table.
        node_labels: a :data:`NodeLabels` giving this node's current labels (its instance type picks the
            shape); read at the start of every download, so a relabelled node gets its new shape.
        download: the downloader (default :func:`modelagent.download`); tests may pass a stand-in.
    """

    def __init__(
        self,
        sink: Any,
        *,
        models_root: str | os.PathLike[str],
        workers: int = 5,
        metrics: Any = None,
        read_secret: SecretReader | None = None,
        cluster_namespace: str = "ome",
        parse_config: ConfigParser | None = None,
        download_options: DownloadOptions | None = None,
        endpoint: str | None = None,
        connections: int | None = None,
        progress_interval: float = 5.0,
        download_retry: int = 3,
        instance_types: InstanceTypeMap | None = None,
        node_labels: NodeLabels | None = None,
        download: Downloader | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.sink = sink
        self.models_root = Path(os.path.abspath(models_root))
        self.metrics = metrics
        self.read_secret = read_secret
        self.cluster_namespace = cluster_namespace
        self.parse_config = parse_config
        self.download_options = download_options
        self.endpoint = endpoint
        self.connections = connections
        self.progress_interval = progress_interval
        self.download_retry = max(1, download_retry)
        self.instance_types = instance_types or InstanceTypeMap()
        self.node_labels = node_labels
        self._download = download or default_download
        self.destinations = DestinationRegistry()
        self._workers = workers
        self._cond = threading.Condition()
        self._states: dict[str, _ModelState] = {}
        self._downloads: collections.deque[str] = collections.deque()
        self._deletes: collections.deque[str] = collections.deque()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._in_progress = 0
        # Claims plus owner-file writes, and the ownership checks before a folder is removed, happen under
        # this lock, so a delete never removes a folder another model has just started downloading into.
        self._fs_lock = threading.Lock()
        self._local_paths: dict[str, Path] = {}

    # ------------------------------------------------------------------------------------------------
    # lifecycle

    def start(self) -> Gopher:
        """Start the download workers and the delete thread."""
        with self._cond:
            if self._threads:
                raise RuntimeError("Gopher is already running")
            for i in range(self._workers):
                self._threads.append(
                    threading.Thread(target=self._loop, args=(self._downloads,), name=f"gopher-{i}", daemon=True)
                )
            self._threads.append(
                threading.Thread(target=self._loop, args=(self._deletes,), name="gopher-delete", daemon=True)
            )
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 8.0) -> bool:
        """Stop taking tasks, cancel running transfers and wait up to ``timeout`` s for the workers.

        Cancelled downloads write nothing more (their models stay ``Updating`` and their partial files
        stay resumable for the next start). Returns True when every worker ended in time.
        """
        with self._cond:
            self._stopping = True
            for state in self._states.values():
                if state.cancel is not None:
                    state.cancel.cancel()
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    @property
    def started(self) -> bool:
        """True once :meth:`start` was called."""
        return bool(self._threads)

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stopping

    def submit(self, task: GopherTask) -> None:
        """Queue ``task``; returns at once. Ignored after :meth:`stop`."""
        key = task.key
        with self._cond:
            if self._stopping:
                _log.info("not queueing %s for %s: shutting down", task.type, task.ref.display)
                return
            state = self._states.setdefault(key, _ModelState())
            if task.type is TaskType.DELETE:
                state.generation += 1
                state.queue = [task]
                if state.scheduled and state.running is None:
                    # Queued behind busy download workers: move it to the delete thread.
                    try:
                        self._downloads.remove(key)
                    except ValueError:
                        pass
                    else:
                        state.scheduled = False
                if state.running is not None and state.running.is_download and state.cancel is not None:
                    state.cancel.cancel()
            else:
                state.queue = [t for t in state.queue if not t.is_download] + [task]
                running = state.running
                if (
                    running is not None
                    and running.is_download
                    and storage_identity(running.obj) != storage_identity(task.obj)
                    and state.cancel is not None
                ):
                    # The running download fetches what the model no longer asks for.
                    state.generation += 1
                    state.cancel.cancel()
            self._schedule(key, state)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no task runs or waits; True when idle, False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while any(s.running is not None or s.queue for s in self._states.values()):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def busy_keys(self) -> set[str]:
        """ConfigMap keys of models with a running or waiting task."""
        with self._cond:
            return {k for k, s in self._states.items() if s.running is not None or s.queue}

    def outcomes(self) -> dict[str, str]:
        """The last final status (``Ready``/``Failed``) this Gopher reached per ConfigMap key."""
        with self._cond:
            return {k: s.outcome for k, s in self._states.items() if s.outcome is not None}

    # ------------------------------------------------------------------------------------------------
    # scheduling

    def _schedule(self, key: str, state: _ModelState) -> None:
        if state.running is not None or state.scheduled or not state.queue:
            return
        state.scheduled = True
        (self._deletes if state.queue[0].type is TaskType.DELETE else self._downloads).append(key)
        self._cond.notify_all()

    def _is_current(self, state: _ModelState, generation: int) -> bool:
        with self._cond:
            return state.generation == generation and not self._stopping

    def _loop(self, ready: collections.deque[str]) -> None:
        while True:
            with self._cond:
                while not ready and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                key = ready.popleft()
                state = self._states[key]
                state.scheduled = False
                if state.running is not None or not state.queue:
                    continue
                if (state.queue[0].type is TaskType.DELETE) != (ready is self._deletes):
                    self._schedule(key, state)
                    continue
                task = state.queue.pop(0)
                state.running = task
                state.cancel = CancelToken() if task.is_download else None
                generation = state.generation
                cancel = state.cancel
            log = model_logger(_log, task.ref, task=str(task.type))
            try:
                if task.type is TaskType.DELETE:
                    self._run_delete(task, state, log)
                else:
                    assert cancel is not None
                    self._run_download(task, state, generation, cancel, log)
            except Exception:  # noqa: BLE001 - one model's bug must not stop the worker
                log.exception("task failed unexpectedly")
            finally:
                with self._cond:
                    state.running = None
                    state.cancel = None
                    if task.type is TaskType.DELETE and not state.queue and self._states.get(key) is state:
                        del self._states[key]
                    else:
                        self._schedule(key, state)
                    self._cond.notify_all()

    # ------------------------------------------------------------------------------------------------
    # download

    def _fail(self, reporter: _Reporter, state: _ModelState, ref: ModelRef, reason: str, error: Any, log: Any) -> None:
        log.error("model failed: %s", reason, extra={"status": "Failed", "reason": reason})
        if not reporter.current():
            return
        if self.metrics is not None:
            self.metrics.download_failed(ref.kind, ref.namespace, ref.name, error)
        if reporter.status("Failed", reason):
            with self._cond:
                state.outcome = "Failed"

    def _run_download(
        self, task: GopherTask, state: _ModelState, generation: int, cancel: CancelToken, log: Any
    ) -> None:
        ref, obj = task.ref, task.obj
        reporter = _Reporter(self, state, generation, ref, log)
        if self.metrics is not None:
            self.metrics.phase("queue", max(0.0, time.monotonic() - task.enqueued_at))
        try:
            kind = classify(obj)
        except InvalidStorageUri as error:
            reporter.status("Updating")
            self._fail(reporter, state, ref, str(error), error, log)
            return
        if kind.handling is Handling.SKIP:
            log.info("storage %s:// is not handled by the agent; leaving the model alone", kind.scheme)
            return
        identity = storage_identity(obj)
        shape: _Shape | None = None
        if kind.handling is Handling.DOWNLOAD and shape_filter_applies(obj, kind.scheme):
            shape = self._node_shape()
            identity += f"|shape={shape.alias}"
        with self._cond:
            unchanged = state.identity == identity and state.outcome == "Ready"
            failed_same = state.identity == identity and state.outcome == "Failed"
        if unchanged or (failed_same and task.type is TaskType.DOWNLOAD_OVERRIDE):
            log.debug("storage unchanged (%s); nothing to do", state.outcome)
            return
        if kind.handling is Handling.UNSUPPORTED:
            reporter.status("Updating")
            with self._cond:
                state.identity = identity
            self._fail(reporter, state, ref, kind.unsupported_reason, "unsupported_storage", log)
            return
        if kind.handling is Handling.IN_PLACE:
            self._use_local(task, kind, state, identity, reporter, log)
            return
        self._download_model(task, kind, state, identity, shape, cancel, reporter, log)

    def _node_shape(self) -> _Shape:
        labels: Mapping[str, str] | None = None
        if self.node_labels is not None:
            try:
                labels = self.node_labels()
            except Exception as error:  # noqa: BLE001 - an unknown node has no shape; the filter says so
                _log.warning("cannot read this node's labels: %s", error)
        instance_type = instance_type_of(labels)
        return _Shape(instance_type, self.instance_types.alias(instance_type) if instance_type else "")

    def _download_arguments(
        self, task: GopherTask, kind: StorageKind, shape: _Shape | None, log: Any
    ) -> dict[str, Any]:
        """The source-specific arguments of the download call (secrets are read here, once per attempt)."""
        ref, obj = task.ref, task.obj
        if kind.scheme == "hf":
            token = hf_token(obj, ref, read_secret=self.read_secret, cluster_namespace=self.cluster_namespace,
                             log=log)
            return {"token": token, "endpoint": self.endpoint}
        spec = obj.get("spec")
        storage = spec.get("storage") if isinstance(spec, Mapping) else None
        raw = storage.get("parameters") if isinstance(storage, Mapping) else None
        parameters = {str(k): str(v) for k, v in raw.items() if v is not None} if isinstance(raw, Mapping) else {}
        arguments: dict[str, Any] = {
            "parameters": parameters,
            "credentials": storage_credentials(obj, ref, read_secret=self.read_secret,
                                               cluster_namespace=self.cluster_namespace, log=log),
        }
        if shape is not None:
            arguments["path_filter"] = shape_path_filter(shape.alias, self.instance_types.known_aliases(), kind.uri,
                                                         instance_type=shape.instance_type)
            # Another shape's engines from an earlier download into this folder go.
            arguments["prune"] = True
        return arguments

    def _use_local(
        self, task: GopherTask, kind: StorageKind, state: _ModelState, identity: str, reporter: _Reporter, log: Any
    ) -> None:
        ref = task.ref
        path = Path(os.path.abspath(kind.parsed.path))
        reporter.status("Updating")
        with self._cond:
            state.identity = identity
        with self._fs_lock:
            self._local_paths[ref.configmap_key] = path
        if not path.is_dir():
            error = f"local path {str(path)!r} of {kind.uri} does not exist or is not a directory"
            self._fail(reporter, state, ref, error, "invalid_destination", log)
            return
        self._parse(task, path, reporter, log)
        if reporter.status("Ready"):
            with self._cond:
                state.outcome = "Ready"
                state.uri = kind.uri
            log.info("model ready in place at %s", path, extra={"status": "Ready", "dest": str(path)})

    def _parse(self, task: GopherTask, folder: Path, reporter: _Reporter, log: Any) -> None:
        if skips_config_parsing(task.obj):
            log.info("config parsing skipped by annotation %s", SKIP_CONFIG_PARSING_ANNOTATION)
            return
        if not reporter.current():
            return
        started = time.monotonic()
        try:
            if self.parse_config is None:
                config: dict[str, Any] | None = default_config(folder)
            else:
                config = self.parse_config(task.ref, task.obj, folder)
            if config is not None:
                reporter.config(config)
        except Exception as error:  # noqa: BLE001 - metadata is best effort; the files are in place
            log.warning("cannot read the model's metadata: %s", error)
        finally:
            if self.metrics is not None:
                self.metrics.phase("parse", time.monotonic() - started)

    def _download_model(
        self,
        task: GopherTask,
        kind: StorageKind,
        state: _ModelState,
        identity: str,
        shape: _Shape | None,
        cancel: CancelToken,
        reporter: _Reporter,
        log: Any,
    ) -> None:
        ref, obj = task.ref, task.obj
        with self._fs_lock:
            self._local_paths.pop(ref.configmap_key, None)
            try:
                dest = resolve_destination(obj, ref, self.models_root)
                self.destinations.claim(ref.configmap_key, dest, ref.display)
            except DestinationError as error:
                reporter.status("Updating")
                self._fail(reporter, state, ref, str(error), "invalid_destination", log)
                return
        log = model_logger(_log, ref, task=str(task.type), uri=kind.uri, dest=str(dest))
        reporter.log = log
        # A refused write (API down, RBAC, ConfigMap full) is logged and healed later; only a model that was
        # deleted or superseded meanwhile stops here.
        reporter.status("Updating")
        if not reporter.current():
            return
        with self._cond:
            state.identity = identity
            previous_dest, previous_uri, attempt = state.dest, state.uri, state.attempt
        # What the folder holds (or was being filled with): its owner file says, even after a restart.
        on_disk = self._folder_uri(dest)
        if on_disk is not None:
            previous_uri = on_disk
        elif previous_dest != dest:
            previous_uri = None
        if previous_uri is None and attempt is not None and attempt[0] == dest:
            previous_uri = attempt[1]  # an interrupted download of another URI left files there
        staging: Path | None = None
        if previous_uri is not None and previous_uri != kind.uri and dest.is_dir() and any(dest.iterdir()):
            digest = hashlib.sha256(kind.uri.encode()).hexdigest()[:8]
            staging = dest.with_name(f"{dest.name}.next-{digest}")
            self.destinations.add(ref.configmap_key, staging, ref.display)
        target = staging or dest
        with self._cond:
            state.attempt = (target, kind.uri)
        try:
            with self._fs_lock:
                write_owner(target, ref, kind.uri)
        except OSError as error:
            self._fail(reporter, state, ref, f"cannot write the owner file in {target}: {error}", error, log)
            return
        if shape is not None:
            log.info("tensorrtllm model: keeping shape %s (instance type %s) and shape-agnostic files",
                     shape.alias or "-", shape.instance_type or "unknown")
        log.info("downloading %s into %s", kind.uri, target)
        started = time.monotonic()
        meter: TransferMeter | None = None
        if self.metrics is not None:
            with self._cond:
                self._in_progress += 1
                self.metrics.set_in_progress(self._in_progress)
        try:
            attempt_no = 1
            while True:
                reporter.progress(_NO_PROGRESS, phase="Scanning", force=True)
                meter = TransferMeter(
                    self.metrics, ref, lambda snap, phase: reporter.progress(snap, phase=phase)
                )
                try:
                    result = self._download(
                        kind.uri,
                        target,
                        cancel=cancel,
                        progress=meter,
                        options=self.download_options,
                        connections=self.connections,
                        **self._download_arguments(task, kind, shape, log),
                    )
                    break
                except _PERMANENT_ERRORS:
                    raise
                except _TRANSIENT_ERRORS as error:
                    if isinstance(error, CancelledError) or attempt_no >= self.download_retry:
                        raise
                    wait = min(2.0**attempt_no, 30.0)
                    if isinstance(error, _core.RateLimitedError) and not meter.engine_ran and self.metrics is not None:
                        # Planning gave up on a 429 its API client did not count (it counts only those it
                        # retried); the engine would have. Count it here as no failure will.
                        requested = float(getattr(error, "retry_after", 0.0) or 0.0)
                        waited = requested if requested > 0 else wait
                        self.metrics.rate_limited(ref.kind, ref.namespace, ref.name, waited)
                    log.warning("attempt %d of %d failed (%s); retrying in %.0f s", attempt_no, self.download_retry,
                                " ".join(str(error).split()), wait)
                    if _wait_cancelled(cancel, wait):
                        raise CancelledError("download cancelled") from error
                    attempt_no += 1
        except CancelledError:
            log.info("download cancelled; partial files stay resumable in %s", target)
            return
        except Exception as error:  # noqa: BLE001 - any failure of this model is reported on it alone
            engine_ran = meter is not None and meter.engine_ran
            if self.metrics is not None and reporter.current() and isinstance(error, VerificationError):
                verified_for = meter.last.elapsed if meter is not None and meter.last is not None else 0.0
                self.metrics.verification(ref.kind, ref.namespace, ref.name, False, verified_for)
                if is_md5_failure(error):
                    self.metrics.md5_failed(ref.kind, ref.namespace, ref.name)
            # The engine counts every 429, the one it gave up on included: only the reason is left to record.
            # The API calls of planning count only the 429s they retried (metered already), so a
            # RateLimitedError from planning goes to download_failed, which counts that last 429.
            reason: Any = error
            if isinstance(error, _core.RateLimitedError) and engine_ran:
                reason = "rate_limited"
            elif isinstance(error, _core.CredentialsError):
                reason = "credentials"
            self._fail(reporter, state, ref, " ".join(str(error).split()) or type(error).__name__, reason, log)
            return
        finally:
            if self.metrics is not None:
                with self._cond:
                    self._in_progress -= 1
                    self.metrics.set_in_progress(self._in_progress)
        finished = time.monotonic()
        seconds = finished - started
        if self.metrics is not None:
            # Hashing runs alongside the transfer; what is left after the last byte (finishing hashes,
            # fsync, atomic rename) is the verify phase.
            verify_seconds = meter.verify_tail(finished) if meter is not None else 0.0
            self.metrics.phase("transfer", max(0.0, finished - started - verify_seconds))
            self.metrics.phase("verify", verify_seconds)
        if not reporter.current():
            log.info("download finished after the model was deleted or changed; discarding the outcome")
            return
        last = meter.last if meter is not None and meter.last is not None else _NO_PROGRESS
        reporter.progress(last, phase="Finalizing", force=True)
        if self.metrics is not None:
            # The engine hashes every byte as it arrives (and re-checks files already present), so the
            # verification of a download lasts as long as its transfer.
            self.metrics.verification(ref.kind, ref.namespace, ref.name, True, last.elapsed)
        if staging is not None:
            retired = swap_directories(staging, dest)
            shutil.rmtree(retired, ignore_errors=True)
            self.destinations.release(ref.configmap_key, staging)
            log.info("new files swapped in at %s", dest)
        try:
            with self._fs_lock:
                write_owner(dest, ref, kind.uri, commit=result.commit or getattr(result, "snapshot", None) or None,
                            complete=True)
        except OSError as error:
            log.warning("cannot update the owner file in %s: %s", dest, error)
        for leftover in self._staging_folders(dest):
            self._remove_folder(leftover, ref, log)
        if previous_dest is not None and previous_dest != dest:
            self._remove_folder(previous_dest, ref, log)
        with self._cond:
            state.dest = dest
            state.uri = kind.uri
        self._parse(task, dest, reporter, log)
        if self.metrics is not None:
            self.metrics.download_succeeded(ref.kind, ref.namespace, ref.name, seconds)
        note = self._unverified_note(result, log)
        if reporter.status("Ready", note):
            with self._cond:
                state.outcome = "Ready"
            log.info(
                "model ready: %d files, %d bytes fetched in %.1f s",
                len(result.files),
                result.bytes_fetched,
                seconds,
                extra={"status": "Ready"},
            )

    @staticmethod
    def _unverified_note(result: Any, log: Any) -> str | None:
        """Warn about every file the source could give no digest for; the note for the model's status."""
        unverified = list(getattr(result, "unverified", None) or [])
        for path, why in unverified:
            log.warning("%s was checked by size only: %s", path, why, extra={"file": path})
        if not unverified:
            return None
        shown = ", ".join(f"{path} ({why})" for path, why in unverified[:3])
        more = f" and {len(unverified) - 3} more" if len(unverified) > 3 else ""
        return f"{len(unverified)} file(s) checked by size only, no digest: {shown}{more}"

    @staticmethod
    def _folder_uri(folder: Path) -> str | None:
        """The URI whose files ``folder`` holds: its owner file's, else its download record's, else None."""
        owner = read_owner(folder)
        if owner is not None:
            return owner.storage_uri
        try:
            record = read_record(folder)
        except Exception:  # noqa: BLE001 - an unreadable record means "unknown", resolved by the download
            return None
        return None if record is None else str(record.get("uri"))

    @staticmethod
    def _staging_folders(folder: Path) -> list[Path]:
        parent = folder.parent
        return sorted(parent.glob(f"{folder.name}.next-*")) if parent.is_dir() else []

    def _remove_folder(self, folder: Path, ref: ModelRef, log: Any, *, need_proof: bool = False) -> bool:
        """Remove ``folder`` if it is ``ref``'s to remove; True when it was removed.

        Refused: the models root or anything outside it, a folder overlapping another model's claimed folder
        or any ``local://`` model's path, a folder whose owner file names another model. With ``need_proof``
        the folder must also show it was filled for ``ref``: its owner file names ``ref``, or it has no
        owner file but holds a download record (written by agents before owner files existed).
        """
        root = self.models_root
        if folder == root or root not in folder.parents:
            log.warning("not removing %s: not a model folder inside %s", folder, root)
            return False
        with self._fs_lock:
            if not folder.is_dir() or folder.is_symlink():
                return False
            others = self.destinations.owners(folder) - {ref.configmap_key}
            if others:
                log.warning("not removing %s: it belongs to %s", folder, ", ".join(sorted(others)))
                return False
            for key, local in self._local_paths.items():
                if folder == local or folder in local.parents or local in folder.parents:
                    log.warning("not removing %s: it holds the local:// path of %s", folder, key)
                    return False
            owner = read_owner(folder)
            if owner is not None and not owner.matches(ref):
                log.warning("not removing %s: its owner file names %s", folder, owner.ref.display)
                return False
            if need_proof and owner is None and not self._has_record(folder):
                log.info("not removing %s: nothing shows it was filled for this model", folder)
                return False
            doomed = folder.with_name(f".{folder.name}.deleting-{uuid.uuid4().hex[:8]}")
            try:
                os.rename(folder, doomed)
            except OSError as error:
                log.error("cannot remove %s: %s", folder, error)
                return False
        shutil.rmtree(doomed, ignore_errors=True)
        log.info("removed %s", folder)
        return True

    @staticmethod
    def _has_record(folder: Path) -> bool:
        try:
            return read_record(folder) is not None
        except Exception:  # noqa: BLE001 - a damaged record still shows a download was made here
            return True

    # ------------------------------------------------------------------------------------------------
    # delete

    def _run_delete(self, task: GopherTask, state: _ModelState, log: Any) -> None:
        ref, obj = task.ref, task.obj
        with self._cond:
            folders = [p for p in (state.dest, state.attempt[0] if state.attempt else None) if p is not None]
        try:
            kind: StorageKind | None = classify(obj)
        except InvalidStorageUri:
            kind = None
        if kind is not None and kind.handling is Handling.DOWNLOAD:
            try:
                folders.append(resolve_destination(obj, ref, self.models_root))
            except DestinationError:
                pass
        # Folders whose owner file names the model: what a spec-less Delete (a model deleted while the
        # agent was down) or a path changed before a restart left behind; includes staging folders.
        folders.extend(find_owned_folders(self.models_root, ref))
        with self._fs_lock:
            self._local_paths.pop(ref.configmap_key, None)
        for folder in dict.fromkeys(folders):
            for leftover in self._staging_folders(folder):
                self._remove_folder(leftover, ref, log)
            self._remove_folder(folder, ref, log)
        default = default_destination(self.models_root, ref)
        if default not in folders:
            self._remove_folder(default, ref, log, need_proof=True)
        self.destinations.release(ref.configmap_key)
        try:
            self.sink.remove(ref)
        except Exception as error:  # noqa: BLE001 - reported; the next heal or delete retries
            log.error("cannot remove the model's label and entry: %s", error)
        if self.metrics is not None:
            self.metrics.forget_model(ref.kind, ref.namespace, ref.name)
        with self._cond:
            state.dest = state.attempt = None
            state.identity = state.uri = state.outcome = None
        log.info("model deleted from this node")


__all__ = [
    "SKIP_CONFIG_PARSING_ANNOTATION",
    "ConfigParser",
    "default_config",
    "Gopher",
    "TransferMeter",
    "is_md5_failure",
    "progress_object",
    "skips_config_parsing",
    "storage_identity",
    "swap_directories",
]
