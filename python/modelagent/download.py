"""``modelagent.download()`` and ``modelagent.verify()``: fetch a model into a directory and re-check it.

Only ``hf://org/name[@revision]`` is supported for now. The Hugging Face source (C++) resolves the
revision to a commit, lists the files of that commit and turns the selection into a plan; the C++ engine
fetches and verifies every file. A small record, ``<dest>/.modelagent/download.json``, remembers the
commit, the file list and every file's digest, so that a re-run on an unchanged destination resolves the
revision (one request) and finishes without listing, downloading or re-hashing, and so that
``verify()`` can re-check the files later.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from modelagent import _core
from modelagent.progress import ProgressMonitor, ProgressRenderer, ProgressSnapshot, renderer_for

__all__ = [
    "RECORD_PATH",
    "DownloadResult",
    "DownloadedFile",
    "FileCheck",
    "VerifyResult",
    "download",
    "read_record",
    "verify",
]

RECORD_PATH = ".modelagent/download.json"
"""Where the download record lives, relative to the destination directory."""

_RECORD_FORMAT = 1
_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True)
class DownloadedFile:
    """One file of a finished download."""

    path: str
    """Repository path, which is also the path under the destination."""
    size: int
    digest_kind: str
    """``sha256`` (LFS files), ``git-blob-sha1`` (small files) or ``none``."""
    digest: str
    downloaded: bool
    """True when fetched by this run, False when it was already present and verified."""


@dataclasses.dataclass(frozen=True)
class DownloadResult:
    """What :func:`download` did."""

    uri: str
    dest: Path
    repo_id: str
    revision: str
    commit: str
    """The 40-hex commit that was downloaded (the revision as it was resolved at the start)."""
    files: list[DownloadedFile]
    bytes: int
    """Total size of the files now in place."""
    bytes_fetched: int
    """Bytes received over the network by this run."""
    seconds: float
    excluded: list[tuple[str, str]]
    """Repository files not downloaded, with the reason (pattern, default exclusion, ...)."""
    stale: list[str]
    """Files of an earlier download into ``dest`` that are no longer part of it (removed upstream or
    filtered out now) and were left in place (pass ``prune=True`` to remove them)."""
    removed: list[str]
    """Files of an earlier download removed by ``prune=True``."""
    listed: bool
    """False when the file list was taken from the record of an earlier download of the same commit."""

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
    files: list[FileCheck]

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
    return record


def _record_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return "not a JSON object"
    if record.get("format") != _RECORD_FORMAT:
        return f"unsupported format {record.get('format')!r} (expected {_RECORD_FORMAT})"
    for key in ("uri", "endpoint", "repo_id", "revision", "commit"):
        if not isinstance(record.get(key), str):
            return f"field '{key}' is missing or not a string"
    files = record.get("files")
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
        ):
            return f"files['{name}'].digest is missing or invalid"
    stale = record.get("stale", [])
    if not isinstance(stale, list) or not all(isinstance(p, str) for p in stale):
        return "field 'stale' is not a list of paths"
    tree = record.get("tree")
    if not isinstance(tree, list) or not all(isinstance(t, dict) and isinstance(t.get("path"), str) for t in tree):
        return "field 'tree' is missing or invalid"
    return None


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


def _tree_from_record(record: Mapping[str, Any]) -> list[Any]:
    return [
        _core.HfFile(t["path"], size=t.get("size"), blob_id=t.get("blob_id", ""), lfs_sha256=t.get("lfs_sha256", ""))
        for t in record["tree"]
    ]


def _tree_to_record(files: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for f in files:
        entry: dict[str, Any] = {"path": f.path, "size": f.size}
        if f.blob_id:
            entry["blob_id"] = f.blob_id
        if f.lfs_sha256:
            entry["lfs_sha256"] = f.lfs_sha256
        out.append(entry)
    return out


# ---------------------------------------------------------------------------------------------------
# Helpers


def _check_uri(uri: str) -> tuple[str, str]:
    if not isinstance(uri, str):
        raise TypeError(f"uri must be a string, not {type(uri).__name__}")
    if uri.startswith("hf://"):
        return _core.hf_parse_uri(uri)
    parse = getattr(_core, "parse_storage_uri", None)
    if parse is not None:
        parse(uri)  # raises InvalidStorageUri for anything malformed
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if not scheme:
        raise _core.InvalidStorageUri(f"invalid storage URI '{uri}': expected <scheme>://..., e.g. hf://org/name")
    raise _core.DownloadError(f"downloading {scheme}:// URIs is not supported yet (only hf://): '{uri}'")


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


def _interruptible(cancel: Any, fn: Callable[..., _T], *args: Any) -> _T:
    """Run a blocking core call so that Ctrl-C in the main thread cancels it cleanly.

    The call runs on a helper thread (it releases the GIL); the main thread waits in short slices so a
    KeyboardInterrupt is noticed, cancels the token, waits for the call to return, then propagates.
    """
    if threading.current_thread() is not threading.main_thread():
        return fn(*args)
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = e

    worker = threading.Thread(target=target, name="modelagent-hf-api", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt:
        cancel.cancel()
        worker.join()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _explain_file_failure(
    error: Any, plan: Sequence[Mapping[str, Any]], client: Any, repo_id: str, commit: str, cancel: Any
) -> None:
    """The engine reports a refused file as a plain HttpStatusError; ask the hub (one HEAD) for the typed
    error behind it (gated repository, missing entry, bad token) and raise that instead."""
    if type(error) is not _core.HttpStatusError or getattr(error, "status", 0) not in (401, 403, 404):
        return
    path = next((entry["path"] for entry in plan if entry["url"] == getattr(error, "url", None)), None)
    if path is None:
        return
    try:
        _interruptible(cancel, _core.hf_check_file, client, repo_id, commit, path, cancel)
    except _core.HttpStatusError as typed:
        if type(typed) is not _core.HttpStatusError:
            raise typed from error


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
) -> DownloadResult:
    """Download the model at ``uri`` into the directory ``dest`` and verify every byte.

    Args:
        uri: ``hf://org/name[@revision]`` (branch, tag, ``refs/pr/N`` or a 40-hex commit; default ``main``).
        dest: destination directory; files land at their repository paths under it.
        token: Hugging Face token for this model; wins over ``HF_TOKEN`` and the other sources.
        include: glob pattern(s) of repository paths to download (``*`` stays within a directory,
            ``**`` crosses directories); default: everything.
        exclude: glob pattern(s) of paths to skip; wins over ``include``.
        all_files: also download duplicate weight formats (``*.bin`` beside ``*.safetensors``,
            ``original/``, ...), which are skipped by default. An ``include`` pattern matching a file
            also overrides the default for that file.
        connections: maximum parallel connections (default: the engine's).
        progress: True shows a bar on a terminal and log lines otherwise (stderr); a callable receives
            :class:`~modelagent.progress.ProgressSnapshot` values; False shows nothing.
        prune: remove files of an earlier download into ``dest`` that are no longer part of this one.
        cancel: a :class:`~modelagent.CancelToken`; ``cancel.cancel()`` from any thread stops the
            download within a second (raises :class:`~modelagent.CancelledError`; partial files stay
            resumable). Ctrl-C in the main thread cancels the same way and raises KeyboardInterrupt.
        options: :class:`~modelagent.DownloadOptions` for the engine (TLS and timeouts also apply to the
            hub API calls).
        endpoint: hub URL; default ``HF_ENDPOINT`` or https://huggingface.co.

    Returns:
        A :class:`DownloadResult`.

    Raises:
        InvalidStorageUri: the URI does not parse.
        RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError, EntryNotFoundError,
        UnauthorizedError, RateLimitedError: typed hub errors.
        DownloadError: anything else that stopped the download (the message names the file or URL).
        ValueError: a malformed glob pattern or option.
    """
    started = time.monotonic()
    repo_id, revision = _check_uri(uri)
    include_patterns = _patterns(include, "include")
    exclude_patterns = _patterns(exclude, "exclude")
    for pattern in include_patterns + exclude_patterns:
        _core.glob_match(pattern, "")  # ValueError naming a malformed pattern before any request
    dest_path = Path(dest).expanduser().absolute()
    if dest_path.exists() and not dest_path.is_dir():
        raise _core.DownloadError(f"destination {dest_path} exists and is not a directory")
    engine_options = _options_for(options, connections)
    cancel_token = cancel if cancel is not None else _core.CancelToken()
    resolved_token = _core.hf_token(token) or ""
    client = _core.HfClientOptions(
        endpoint=endpoint or "",
        token=resolved_token,
        verify_tls=engine_options.verify_tls,
        ca_bundle=engine_options.ca_bundle,
        user_agent=engine_options.user_agent,
    )
    hub = client.endpoint

    if _core.hf_is_commit_hash(revision):
        commit = revision
    else:
        commit = _interruptible(cancel_token, _core.hf_resolve_commit, client, repo_id, revision, cancel_token)

    try:
        previous = read_record(dest_path)
    except _core.DownloadError:
        previous = None  # an unreadable record only costs a fresh listing; it is rewritten on success
    same_snapshot = (
        previous is not None
        and previous["commit"] == commit
        and previous["repo_id"] == repo_id
        and previous["endpoint"] == hub
    )
    if same_snapshot:
        assert previous is not None
        tree = _tree_from_record(previous)
    else:
        tree = _interruptible(cancel_token, _core.hf_list_files, client, repo_id, commit, cancel_token)

    selected, excluded = _core.hf_select_files(tree, include_patterns, exclude_patterns, not all_files)
    plan = _core.hf_build_plan(hub, repo_id, commit, selected, resolved_token)
    selected_paths = {f.path for f in selected}
    # Files an earlier download put here (and stale ones it left) that this download no longer includes.
    owned = set((previous or {}).get("files", {})) | set((previous or {}).get("stale", []))
    stale = sorted(p for p in owned if p not in selected_paths and os.path.lexists(dest_path / p))

    dest_path.mkdir(parents=True, exist_ok=True)
    counters = _core.DownloadProgress()
    renderer = renderer_for(progress, f"{repo_id}@{commit[:8]}")
    with ProgressMonitor(counters, renderer):
        try:
            report = _core.run_download(plan, dest_path, engine_options, cancel_token, counters)
        except _core.HttpStatusError as e:
            _explain_file_failure(e, plan, client, repo_id, commit, cancel_token)
            raise

    removed = _prune(dest_path, stale) if prune else []
    by_path = {r.path: r for r in report.files}
    files = []
    for entry in plan:
        outcome = by_path.get(entry["path"])
        digest = entry.get("digest") or {"kind": "none", "value": ""}
        files.append(
            DownloadedFile(
                path=entry["path"],
                size=outcome.size if outcome is not None else int(entry.get("size") or 0),
                digest_kind=digest.get("kind", "none"),
                digest=digest.get("value", ""),
                downloaded=bool(outcome.downloaded) if outcome is not None else False,
            )
        )
    _write_record(
        dest_path,
        {
            "format": _RECORD_FORMAT,
            "source": "huggingface",
            "uri": uri,
            "endpoint": hub,
            "repo_id": repo_id,
            "revision": revision,
            "commit": commit,
            "filter": {"include": include_patterns, "exclude": exclude_patterns, "default_excludes": not all_files},
            "completed_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "files": {f.path: {"size": f.size, "digest": {"kind": f.digest_kind, "value": f.digest}} for f in files},
            "tree": _tree_to_record(tree),
            "stale": [] if prune else stale,
        },
    )
    return DownloadResult(
        uri=uri,
        dest=dest_path,
        repo_id=repo_id,
        revision=revision,
        commit=commit,
        files=files,
        bytes=sum(f.size for f in files),
        bytes_fetched=int(report.bytes_fetched),
        seconds=time.monotonic() - started,
        excluded=[(p, r) for p, r in excluded],
        stale=[] if prune else stale,
        removed=removed,
        listed=not same_snapshot,
    )


def verify(dest: str | os.PathLike[str]) -> VerifyResult:
    """Re-hash every file recorded by the last :func:`download` into ``dest`` and compare it with the
    recorded size and digest. Never modifies anything.

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
    plan: list[_core.PlanEntry] = [
        {"path": path, "url": "", "size": entry["size"], "digest": entry["digest"]}
        for path, entry in sorted(record["files"].items())
    ]
    results = _core.verify_files(plan, dest_path)
    checks = [FileCheck(path=r.path, ok=bool(r.verified), note=r.note) for r in results]
    return VerifyResult(dest=dest_path, uri=record["uri"], commit=record["commit"], files=checks)
