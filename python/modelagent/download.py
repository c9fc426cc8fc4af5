"""``modelagent.download()`` and ``modelagent.verify()``: fetch a model into a directory and re-check it.

The URI's scheme picks a source (:mod:`modelagent.sources`: ``hf://``, ``oci://``, ``s3://`` built in,
more from plug-ins). The source lists what is at the URI and returns a plan; the C++ engine fetches and
verifies every file of it with the same parallelism, resume and verified-stamps whatever the source. A
small record, ``<dest>/.modelagent/download.json``, remembers the source, the snapshot, the file list and
every file's digest plus the source's own state, so that a re-run on an unchanged destination finishes
without downloading or re-hashing (Hugging Face: without even listing), and so that ``verify()`` can
re-check the files later.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from modelagent import _core
from modelagent.progress import ProgressMonitor, ProgressRenderer, ProgressSnapshot, read_counters, renderer_for
from modelagent.sources import get_source, has_source, registered_schemes
from modelagent.sources.base import RESERVED_DIRECTORY, Source, SourcePlan, SourceRequest

__all__ = [
    "RECORD_PATH",
    "DownloadResult",
    "DownloadedFile",
    "FileCheck",
    "PathFilter",
    "VerifyResult",
    "download",
    "read_record",
    "verify",
]

RECORD_PATH = ".modelagent/download.json"
"""Where the download record lives, relative to the destination directory."""

_RECORD_FORMAT = 2
_LEGACY_HF_FORMAT = 1
_T = TypeVar("_T")
_URI_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
# Schemes parse_storage_uri knows: their URIs are checked (InvalidStorageUri) before a source is chosen.
_CORE_SCHEMES = frozenset({"hf", "oci", "s3", "gs", "az", "github", "pvc", "local", "vendor"})

PathFilter = Callable[[list[str]], Mapping[str, str]]
"""``path_filter(planned_paths) -> {dropped_path: reason}``; may raise DownloadError to fail the download."""


@dataclasses.dataclass(frozen=True)
class DownloadedFile:
    """One file of a finished download."""

    path: str
    """Path under the destination (for Hugging Face, the repository path)."""
    size: int
    digest_kind: str
    """``sha256``, ``git-blob-sha1``, ``md5``, ``md5-multipart`` or ``none`` (size checked only)."""
    digest: str
    downloaded: bool
    """True when fetched by this run, False when it was already present and verified."""


@dataclasses.dataclass(frozen=True)
class DownloadResult:
    """What :func:`download` did."""

    uri: str
    dest: Path
    repo_id: str
    """Hugging Face: the repository; other sources: the plan's label (unless the source's ``details``
    name a ``repo_id``)."""
    revision: str
    """Hugging Face: the revision asked for; other sources: ``""`` (or ``details["revision"]``)."""
    commit: str
    """Hugging Face: the 40-hex commit downloaded (the revision as resolved at the start); other sources:
    the snapshot (or ``details["commit"]``)."""
    files: list[DownloadedFile]
    bytes: int
    """Total size of the files now in place."""
    bytes_fetched: int
    """Bytes received over the network by this run."""
    seconds: float
    excluded: list[tuple[str, str]]
    """Listed files not downloaded, with the reason (pattern, default exclusion, path filter, ...)."""
    stale: list[str]
    """Files of an earlier download into ``dest`` that are no longer part of it (removed upstream or
    filtered out now) and were left in place (pass ``prune=True`` to remove them)."""
    removed: list[str]
    """Files of an earlier download removed by ``prune=True``."""
    listed: bool
    """False when the file list was taken from the record of an earlier download of the same snapshot."""
    source: str = "hf"
    """The scheme of the source that planned the download."""
    snapshot: str = ""
    """The source's identity of the content (Hugging Face: the commit)."""
    label: str = ""
    """Short name of what was downloaded, as shown in progress output."""
    unverified: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    """Files checked by size only because the source had no digest for them, with the reason."""

    @property
    def downloaded(self) -> list[str]:
        """Paths fetched by this run."""
        return [f.path for f in self.files if f.downloaded]

    @property
    def skipped(self) -> list[str]:
        """Paths that were already present and verified."""
        return [f.path for f in self.files if not f.downloaded]


@dataclasses.dataclass(frozen=True)
class FileCheck:
    """The re-check of one recorded file."""

    path: str
    ok: bool
    note: str


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify` found."""

    dest: Path
    uri: str
    commit: str
    """The recorded snapshot (Hugging Face: the commit)."""
    files: list[FileCheck]
    source: str = "hf"
    unverified: list[str] = dataclasses.field(default_factory=list)
    """Recorded files without a digest: only their size was checked."""

    @property
    def ok(self) -> bool:
        """True when every recorded file is present with its recorded size and digest."""
        return all(f.ok for f in self.files)

    @property
    def bad(self) -> list[FileCheck]:
        """The files that failed the check."""
        return [f for f in self.files if not f.ok]


# ---------------------------------------------------------------------------------------------------
# The download record


def read_record(dest: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The record of the last completed download into ``dest``, or None when there is none.

    Always returned in the current (format 2) shape: ``source``, ``uri``, ``snapshot``, ``label``,
    ``details``, ``files`` (``{path: {size, digest}}``), ``state``, ``unverified``, ``stale``, ``filter``.
    Format-1 records (Hugging Face only, written by earlier versions) are converted.

    Raises :class:`~modelagent.DownloadError` naming the file when it exists but is not a valid record.
    """
    path = Path(dest) / RECORD_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _core.DownloadError(f"cannot read download record {path}: {e.strerror or e}") from e
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise _core.DownloadError(f"download record {path} is not valid JSON: {e}") from e
    problem = _record_problem(record)
    if problem:
        raise _core.DownloadError(f"download record {path} is invalid: {problem}")
    if record["format"] == _LEGACY_HF_FORMAT:
        record = _from_legacy_hf(record)
    return record


def _files_problem(files: Any) -> str | None:
    if not isinstance(files, dict):
        return "field 'files' is missing or not an object"
    for name, entry in files.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("size"), int) or entry["size"] < 0:
            return f"files['{name}'].size is missing or invalid"
        digest = entry.get("digest")
        if (
            not isinstance(digest, dict)
            or not isinstance(digest.get("kind"), str)
            or not isinstance(digest.get("value"), str)
            or not all(isinstance(digest.get(k, 0), int) for k in ("parts", "part_size"))
            or not _is_int_list(digest.get("part_lengths", []))
        ):
            return f"files['{name}'].digest is missing or invalid"
    return None


def _is_int_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, int) and not isinstance(item, bool) for item in value)


def _record_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return "not a JSON object"
    fmt = record.get("format")
    if fmt == _LEGACY_HF_FORMAT:
        strings: tuple[str, ...] = ("uri", "endpoint", "repo_id", "revision", "commit")
    elif fmt == _RECORD_FORMAT:
        strings = ("source", "uri", "snapshot", "label")
    else:
        return f"unsupported format {fmt!r} (expected {_RECORD_FORMAT} or {_LEGACY_HF_FORMAT})"
    for key in strings:
        if not isinstance(record.get(key), str):
            return f"field '{key}' is missing or not a string"
    problem = _files_problem(record.get("files"))
    if problem:
        return problem
    stale = record.get("stale", [])
    if not isinstance(stale, list) or not all(isinstance(p, str) for p in stale):
        return "field 'stale' is not a list of paths"
    if fmt == _LEGACY_HF_FORMAT:
        tree = record.get("tree")
        if not isinstance(tree, list) or not all(isinstance(t, dict) and isinstance(t.get("path"), str) for t in tree):
            return "field 'tree' is missing or invalid"
        return None
    for key in ("details", "state"):
        if not isinstance(record.get(key), dict):
            return f"field '{key}' is missing or not an object"
    unverified = record.get("unverified", [])
    if not isinstance(unverified, list) or not all(
        isinstance(u, dict) and isinstance(u.get("path"), str) and isinstance(u.get("reason"), str) for u in unverified
    ):
        return "field 'unverified' is not a list of {path, reason}"
    return None


def _from_legacy_hf(record: Mapping[str, Any]) -> dict[str, Any]:
    """A format-1 (Hugging Face) record in the format-2 shape."""
    repo_id, commit = record["repo_id"], record["commit"]
    return {
        "format": _RECORD_FORMAT,
        "source": "hf",
        "uri": record["uri"],
        "snapshot": commit,
        "label": f"{repo_id}@{commit[:8]}",
        "details": {"repo_id": repo_id, "revision": record["revision"], "commit": commit,
                    "endpoint": record["endpoint"]},  # fmt: skip
        "files": record["files"],
        "state": {"endpoint": record["endpoint"], "repo_id": repo_id, "commit": commit, "tree": record["tree"]},
        "unverified": [],
        "stale": record.get("stale", []),
        "filter": record.get("filter", {}),
        "completed_at": record.get("completed_at", ""),
    }


def _write_record(dest: Path, record: Mapping[str, Any]) -> None:
    """Atomically replace the record (temp file in the same directory, fsync, rename, fsync dir)."""
    path = dest / RECORD_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".download.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# ---------------------------------------------------------------------------------------------------
# Helpers


def _source_for(uri: str) -> tuple[str, Source]:
    """The scheme of ``uri`` and its source; malformed URIs of known schemes fail here, before any request."""
    if not isinstance(uri, str):
        raise TypeError(f"uri must be a string, not {type(uri).__name__}")
    match = _URI_SCHEME.match(uri)
    if match is None:
        _core.parse_storage_uri(uri)  # raises InvalidStorageUri naming the URI and the supported schemes
        raise _core.InvalidStorageUri(f"invalid storage URI '{uri}': expected <scheme>://..., e.g. hf://org/name")
    scheme = match.group(1)
    if scheme == "hf":
        _core.hf_parse_uri(uri)
    elif scheme in _CORE_SCHEMES:
        _core.parse_storage_uri(uri)
    if not has_source(scheme):
        if scheme in _CORE_SCHEMES:
            raise _core.DownloadError(
                f"downloading {scheme}:// URIs is not supported yet: '{uri}' "
                f"(sources are available for: {', '.join(registered_schemes())})"
            )
        raise _core.DownloadError(
            f"unknown storage scheme '{scheme}' in '{uri}': no source is registered for it "
            f"(available: {', '.join(registered_schemes())}; plug-ins register more, see modelagent.sources)"
        )
    return scheme, get_source(scheme)


def _patterns(value: str | Iterable[str] | None, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    patterns = list(value)
    for p in patterns:
        if not isinstance(p, str):
            raise TypeError(f"{name} patterns must be strings, got {type(p).__name__}")
    return patterns


def _string_map(value: Mapping[str, Any] | None, name: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping of strings, not {type(value).__name__}")
    out = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise TypeError(f"{name}[{key!r}] must map a string to a string, got {type(item).__name__}")
        out[key] = item
    return out


def _interruptible(cancel: Any, fn: Callable[..., _T], *args: Any) -> _T:
    """Run a blocking call so that Ctrl-C in the main thread cancels it cleanly.

    The call runs on a helper thread; the main thread waits in short slices so a KeyboardInterrupt is
    noticed, cancels the token, waits for the call to return, then propagates. The wait is on an Event,
    not ``Thread.join``: a KeyboardInterrupt inside ``join(timeout)`` can leave the thread marked as
    stopped while it still runs, and a thread still inside the C++ core when the interpreter exits
    aborts the process.
    """
    if threading.current_thread() is not threading.main_thread():
        return fn(*args)
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            outcome["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = e
        finally:
            done.set()

    worker = threading.Thread(target=target, name="modelagent-source", daemon=True)
    worker.start()
    try:
        while not done.wait(0.1):
            pass
    except KeyboardInterrupt:
        cancel.cancel()
        done.wait()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _checked_plan(scheme: str, plan: Any) -> SourcePlan:
    """Reject a malformed answer from a source with a message naming the source and the entry."""
    where = f"the {scheme}:// source"
    if not isinstance(plan, SourcePlan):
        raise _core.DownloadError(f"{where} returned {type(plan).__name__}, expected a SourcePlan")
    if not isinstance(plan.snapshot, str) or not isinstance(plan.label, str):
        raise _core.DownloadError(f"{where} returned a plan whose snapshot or label is not a string")
    if not isinstance(plan.files, list):
        raise _core.DownloadError(f"{where} returned plan.files as {type(plan.files).__name__}, expected a list")
    seen: set[str] = set()
    for i, entry in enumerate(plan.files):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("path"), str) or not isinstance(
            entry.get("url"), str
        ):
            raise _core.DownloadError(f"{where}: plan.files[{i}] needs string 'path' and 'url' entries")
        if entry["path"] in seen:
            raise _core.DownloadError(f"{where}: plan.files lists '{entry['path']}' twice")
        seen.add(entry["path"])
    try:
        json.dumps(plan.state)
        json.dumps(plan.details)
    except (TypeError, ValueError) as e:
        raise _core.DownloadError(f"{where} returned state/details that are not JSON-serialisable: {e}") from e
    return plan


def _apply_path_filter(
    path_filter: PathFilter | None, files: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Drop the reserved directory, then what ``path_filter`` drops; returns (kept, dropped with reasons)."""
    dropped: list[tuple[str, str]] = []
    kept = []
    for entry in files:
        path = entry["path"]
        if path == RESERVED_DIRECTORY or path.startswith(RESERVED_DIRECTORY + "/"):
            dropped.append((path, "reserved path"))
        else:
            kept.append(entry)
    if path_filter is None:
        return kept, dropped
    paths = [e["path"] for e in kept]
    verdict = path_filter(list(paths))
    if not isinstance(verdict, Mapping):
        raise TypeError(f"path_filter must return a mapping of dropped path to reason, not {type(verdict).__name__}")
    known = set(paths)
    for path, reason in verdict.items():
        if path not in known:
            raise ValueError(f"path_filter dropped {path!r}, which is not one of the planned paths")
        if not isinstance(reason, str):
            raise TypeError(f"path_filter's reason for {path!r} must be a string, not {type(reason).__name__}")
    dropped.extend((path, verdict[path]) for path in paths if path in verdict)
    return [e for e in kept if e["path"] not in verdict], dropped


def _prune(dest: Path, paths: Sequence[str]) -> list[str]:
    """Remove recorded files that are no longer part of the download; then empty parent directories."""
    removed = []
    for rel in paths:
        _core.check_safe_relative_path(dest, rel)
        target = dest / rel
        try:
            if target.is_symlink() or target.is_file():
                target.unlink()
                removed.append(rel)
        except FileNotFoundError:
            continue
        parent = target.parent
        while parent != dest and dest in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
    return removed


def _options_for(options: Any, connections: int | None) -> Any:
    """A copy of the caller's engine options (never modified) with ``connections`` and the CA bundle
    from the environment applied."""
    opts = _core.DownloadOptions()
    if options is not None:
        for name in dir(options):
            if not name.startswith("_") and not callable(getattr(options, name)):
                setattr(opts, name, getattr(options, name))
    if not opts.ca_bundle:
        opts.ca_bundle = os.environ.get("CURL_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or ""
    if connections is not None:
        if isinstance(connections, bool) or not isinstance(connections, int) or connections < 1:
            raise ValueError(f"connections must be a positive integer, got {connections!r}")
        opts.max_connections = connections
        opts.connections_per_file = min(opts.connections_per_file, connections)
    return opts


def _report_planning_failure(
    progress: bool | Callable[[ProgressSnapshot], None] | ProgressRenderer | None,
    label: str,
    counters: Any,
    elapsed: float,
) -> None:
    """Planning failed before the engine (and its progress monitor) started: when the source's API calls
    were retried or rate-limited, hand the counters to the renderer as a final, failed reading, so that
    those retries are not lost (the agent turns them into metrics)."""
    snapshot = read_counters(counters, elapsed)
    if not (snapshot.retries or snapshot.rate_limited):
        return
    renderer = renderer_for(progress, label)
    if renderer is not None:
        renderer.finish(snapshot, False)


def _digest_of(entry: Mapping[str, Any]) -> dict[str, Any]:
    digest = entry.get("digest") or {}
    out: dict[str, Any] = {"kind": str(digest.get("kind") or "none"), "value": str(digest.get("value") or "")}
    for key in ("parts", "part_size"):
        if digest.get(key):
            out[key] = int(digest[key])
    if digest.get("part_lengths"):
        out["part_lengths"] = [int(length) for length in digest["part_lengths"]]
    return out


# ---------------------------------------------------------------------------------------------------
# Public API


def download(
    uri: str,
    dest: str | os.PathLike[str],
    *,
    token: str | None = None,
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    all_files: bool = False,
    connections: int | None = None,
    progress: bool | Callable[[ProgressSnapshot], None] | ProgressRenderer | None = True,
    prune: bool = False,
    cancel: Any = None,
    options: Any = None,
    endpoint: str | None = None,
    parameters: Mapping[str, str] | None = None,
    credentials: Mapping[str, str] | None = None,
    path_filter: PathFilter | None = None,
) -> DownloadResult:
    """Download the model at ``uri`` into the directory ``dest`` and verify every byte.

    Args:
        uri: a storage URI of any registered scheme (:func:`modelagent.registered_schemes`):
            ``hf://org/name[@revision]`` (branch, tag, ``refs/pr/N`` or a 40-hex commit; default ``main``),
            ``oci://...``, ``s3://bucket[@region]/prefix``, or a plug-in's.
        dest: destination directory; files land at their paths (repository paths, object names without
            the prefix) under it.
        token: Hugging Face token for this model; wins over ``HF_TOKEN`` and the other sources.
        include: glob pattern(s) of paths to download (``*`` stays within a directory, ``**`` crosses
            directories); default: everything.
        exclude: glob pattern(s) of paths to skip; wins over ``include``.
        all_files: disable the source's default exclusions (Hugging Face: duplicate weight formats such
            as ``*.bin`` beside ``*.safetensors`` and ``original/``). An ``include`` pattern matching a
            file also overrides the default for that file.
        connections: maximum parallel connections (default: the engine's).
        progress: True shows a bar on a terminal and log lines otherwise (stderr); a callable receives
            :class:`~modelagent.progress.ProgressSnapshot` values; False shows nothing. The snapshots'
            ``retries``, ``rate_limited`` and ``rate_limit_wait_seconds`` include the source's listing calls
            (Hugging Face revision/tree API, object-store listings and HEADs) as well as the transfers; when
            planning fails after such retries, the renderer still gets one final reading (``finish``).
        prune: remove files of an earlier download into ``dest`` that are no longer part of this one.
        cancel: a :class:`~modelagent.CancelToken`; ``cancel.cancel()`` from any thread stops the
            download within a second (raises :class:`~modelagent.CancelledError`; partial files stay
            resumable). Ctrl-C in the main thread cancels the same way and raises KeyboardInterrupt.
        options: :class:`~modelagent.DownloadOptions` for the engine (TLS and timeouts also apply to the
            source's API calls).
        endpoint: shorthand for ``parameters["endpoint"]`` (Hugging Face: the hub URL, default
            ``HF_ENDPOINT`` or https://huggingface.co; object stores: the service URL).
        parameters: source parameters (``spec.storage.parameters``): ``auth``, ``region``, ...
        credentials: secret values for the source (``aws_access_key_id``, ``token``, ...).
        path_filter: called with the planned paths after the source's include/exclude; returns
            ``{dropped_path: reason}`` (dropped files are reported in ``excluded``) or raises
            :class:`~modelagent.DownloadError` to fail the download.

    Returns:
        A :class:`DownloadResult`.

    Raises:
        InvalidStorageUri: the URI does not parse.
        RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError, EntryNotFoundError,
        UnauthorizedError, RateLimitedError: typed hub errors.
        CredentialsError: the source's credentials cannot be found or read.
        DownloadError: anything else that stopped the download (the message names the file or URL), an
            unknown scheme (listing the available ones) or one without a source.
        ValueError: a malformed glob pattern or option.
    """
    started = time.monotonic()
    scheme, source = _source_for(uri)
    include_patterns = _patterns(include, "include")
    exclude_patterns = _patterns(exclude, "exclude")
    for pattern in include_patterns + exclude_patterns:
        _core.glob_match(pattern, "")  # ValueError naming a malformed pattern before any request
    source_parameters = _string_map(parameters, "parameters")
    if endpoint:
        if source_parameters.get("endpoint", endpoint) != endpoint:
            raise ValueError(
                f"endpoint {endpoint!r} and parameters['endpoint'] {source_parameters['endpoint']!r} disagree"
            )
        source_parameters["endpoint"] = endpoint
    source_credentials = _string_map(credentials, "credentials")
    dest_path = Path(dest).expanduser().absolute()
    if dest_path.exists() and not dest_path.is_dir():
        raise _core.DownloadError(f"destination {dest_path} exists and is not a directory")
    engine_options = _options_for(options, connections)
    cancel_token = cancel if cancel is not None else _core.CancelToken()

    try:
        previous = read_record(dest_path)
    except _core.DownloadError:
        previous = None  # an unreadable record only costs a fresh listing; it is rewritten on success
    # One set of counters for the whole download: the source's API calls add their retries and 429s to it
    # while planning, then the engine adds its own.
    counters = _core.DownloadProgress()
    request = SourceRequest(
        uri=uri,
        include=tuple(include_patterns),
        exclude=tuple(exclude_patterns),
        all_files=all_files,
        token=token,
        parameters=source_parameters,
        credentials=source_credentials,
        options=engine_options,
        cancel=cancel_token,
        progress=counters,
        previous=previous["state"] if previous is not None and previous["source"] == scheme else None,
    )
    planning_started = time.monotonic()
    try:
        plan = _checked_plan(scheme, _interruptible(cancel_token, source.plan, request))
    except BaseException:
        _report_planning_failure(progress, uri, counters, time.monotonic() - planning_started)
        raise
    planned, filtered = _apply_path_filter(path_filter, [dict(entry) for entry in plan.files])
    excluded = [(p, r) for p, r in plan.excluded] + filtered
    planned_paths = {e["path"] for e in planned}
    unverified = [(p, r) for p, r in plan.unverifiable if p in planned_paths]
    flagged = {p for p, _ in unverified}
    unverified += [
        (e["path"], "the source gave no digest for it")
        for e in planned
        if _digest_of(e)["kind"] == "none" and e["path"] not in flagged
    ]

    # Files an earlier download put here (and stale ones it left) that this download no longer includes.
    owned = set((previous or {}).get("files", {})) | set((previous or {}).get("stale", []))
    stale = sorted(p for p in owned if p not in planned_paths and os.path.lexists(dest_path / p))

    dest_path.mkdir(parents=True, exist_ok=True)
    renderer = renderer_for(progress, plan.label or uri)
    with ProgressMonitor(counters, renderer):
        try:
            report = _core.run_download(planned, dest_path, engine_options, cancel_token, counters)
        except _core.CancelledError:
            raise
        except _core.ModelAgentError as e:
            explain = getattr(source, "explain_failure", None)
            if callable(explain):
                _interruptible(cancel_token, explain, e, request, plan)
            raise

    removed = _prune(dest_path, stale) if prune else []
    by_path = {r.path: r for r in report.files}
    files = []
    for entry in planned:
        outcome = by_path.get(entry["path"])
        digest = _digest_of(entry)
        files.append(
            DownloadedFile(
                path=entry["path"],
                size=outcome.size if outcome is not None else int(entry.get("size") or 0),
                digest_kind=digest["kind"],
                digest=digest["value"],
                downloaded=bool(outcome.downloaded) if outcome is not None else False,
            )
        )
    sizes = {f.path: f.size for f in files}
    _write_record(
        dest_path,
        {
            "format": _RECORD_FORMAT,
            "source": scheme,
            "uri": uri,
            "snapshot": plan.snapshot,
            "label": plan.label,
            "details": dict(plan.details),
            "filter": {"include": include_patterns, "exclude": exclude_patterns, "default_excludes": not all_files},
            "completed_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "files": {e["path"]: {"size": sizes[e["path"]], "digest": _digest_of(e)} for e in planned},
            "state": plan.state,
            "unverified": [{"path": p, "reason": r} for p, r in unverified],
            "stale": [] if prune else stale,
        },
    )
    details = plan.details
    return DownloadResult(
        uri=uri,
        dest=dest_path,
        repo_id=str(details.get("repo_id", plan.label)),
        revision=str(details.get("revision", "")),
        commit=str(details.get("commit", plan.snapshot)),
        files=files,
        bytes=sum(f.size for f in files),
        bytes_fetched=int(report.bytes_fetched),
        seconds=time.monotonic() - started,
        excluded=excluded,
        stale=[] if prune else stale,
        removed=removed,
        listed=bool(plan.listed),
        source=scheme,
        snapshot=plan.snapshot,
        label=plan.label,
        unverified=unverified,
    )


def _size_check(dest: Path, path: str, size: int) -> FileCheck:
    """The check of a file recorded without a digest: it must exist with its recorded size."""
    _core.check_safe_relative_path(dest, path)
    try:
        actual = (dest / path).stat().st_size
    except FileNotFoundError:
        return FileCheck(path=path, ok=False, note="missing")
    except OSError as e:
        return FileCheck(path=path, ok=False, note=f"cannot read: {e.strerror or e}")
    if actual != size:
        return FileCheck(path=path, ok=False, note=f"size {actual}, recorded {size}")
    return FileCheck(path=path, ok=True, note="no digest recorded; size matches")


def verify(dest: str | os.PathLike[str]) -> VerifyResult:
    """Re-hash every file recorded by the last :func:`download` into ``dest`` and compare it with the
    recorded size and digest (size only for files recorded without a digest). Never modifies anything.

    Raises :class:`~modelagent.DownloadError` when ``dest`` has no (valid) download record.
    """
    dest_path = Path(dest).expanduser().absolute()
    if not dest_path.is_dir():
        raise _core.DownloadError(f"{dest_path} is not a directory")
    record = read_record(dest_path)
    if record is None:
        raise _core.DownloadError(
            f"no download record at {dest_path / RECORD_PATH} (was the directory filled by model-agent download?)"
        )
    recorded = sorted(record["files"].items())
    plan: list[_core.PlanEntry] = [
        {"path": path, "url": "", "size": entry["size"], "digest": entry["digest"]}  # type: ignore[typeddict-item]
        for path, entry in recorded
        if entry["digest"]["kind"] != "none"
    ]
    results = _core.verify_files(plan, dest_path)
    by_path = {r.path: FileCheck(path=r.path, ok=bool(r.verified), note=r.note) for r in results}
    unverified = [path for path, entry in recorded if entry["digest"]["kind"] == "none"]
    for path in unverified:
        by_path[path] = _size_check(dest_path, path, record["files"][path]["size"])
    checks = [by_path[path] for path, _ in recorded]
    return VerifyResult(
        dest=dest_path,
        uri=record["uri"],
        commit=record["snapshot"],
        files=checks,
        source=record["source"],
        unverified=unverified,
    )
