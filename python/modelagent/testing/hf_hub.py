"""A local fake of the Hugging Face Hub, faithful enough for ``huggingface_hub`` and modelagent.

It speaks the protocol described in ``shared/reference/protocols.md`` section 1 on 127.0.0.1 and
redirects large ("LFS") files to a second loopback server on 127.0.0.2 playing the CDN, with
pre-signed-looking URLs, like the real hub does.

Example::

    from modelagent.testing.hf_hub import FakeHub

    with FakeHub() as hub:
        sha = hub.add_repo("org/model", files={"config.json": b"{}", "model.safetensors": path})
        # point HF_ENDPOINT (or endpoint=...) at hub.url
        hub.rate_limit(count=2, retry_after=0)   # the next two requests get a 429
        ...
        assert not [r for r in hub.requests if r.server == "cdn" and r.authorization]

Command line (for benchmarks)::

    python -m modelagent.testing.hf_hub --port 0 --repo org/model=/path/to/dir --url-file url.txt
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime as _dt
import gzip
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Union
from urllib.parse import parse_qs, quote, unquote, urlencode

from modelagent.testing._http import (
    BaseHandler,
    BodySource,
    Fault,
    FaultSet,
    RequestLog,
    RequestRecord,
    ServerThread,
    glob_match,
)

__all__ = [
    "FakeHub",
    "FileContent",
    "HubFile",
    "RequestRecord",
    "Fault",
    "load_digest_cache",
    "main",
    "save_digest_cache",
]

FileContent = Union[bytes, bytearray, memoryview, str, os.PathLike]
"""What a repo file can be given as: bytes (or str, UTF-8 encoded) held in memory, or a path on disk."""

MiB = 1 << 20
DEFAULT_LFS_THRESHOLD = 1 * MiB
REPO_TYPES = ("model", "dataset", "space")
_UNGATED_FILES = frozenset({"README.md", ".gitattributes"})
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
_LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
_AUTHOR = "Fake Hub <fake-hub@example.invalid>"


# --------------------------------------------------------------------------------------------------
# Content model


@dataclasses.dataclass(frozen=True)
class HubFile:
    """One file of a commit, with the digests the hub advertises for it.

    ``git_sha1`` is the git blob id the hub lists as ``oid``/``blobId`` (for an LFS file that is the
    blob id of its pointer file, as on the real hub); ``sha256`` is set for LFS files only.
    """

    path: str
    size: int
    git_sha1: str
    sha256: str | None
    pointer_size: int | None
    source: BodySource

    @property
    def is_lfs(self) -> bool:
        return self.sha256 is not None

    @property
    def etag(self) -> str:
        """The digest clients see as the file's ETag: sha256 for LFS files, the git blob sha1 otherwise."""
        return self.sha256 if self.sha256 is not None else self.git_sha1


@dataclasses.dataclass(frozen=True)
class _Commit:
    sha: str
    parent: str | None
    tree_sha: str
    message: str
    date: _dt.datetime
    files: Mapping[str, HubFile]
    last_change: Mapping[str, str]  # path -> sha of the commit that last changed it
    index: int  # creation order in the repo (for "most recent" comparisons)


@dataclasses.dataclass
class _Repo:
    repo_id: str
    repo_type: str
    default_branch: str
    created: _dt.datetime
    branches: dict[str, str] = dataclasses.field(default_factory=dict)
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    commits: dict[str, _Commit] = dataclasses.field(default_factory=dict)
    private: bool = False
    gated: bool | str = False
    disabled: bool = False
    readers: frozenset[str] | None = None
    approved: frozenset[str] = frozenset()
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


def _git_blob_sha1_bytes(data: bytes) -> str:
    h = hashlib.sha1(f"blob {len(data)}\0".encode())
    h.update(data)
    return h.hexdigest()


_DIGEST_CACHE: dict[tuple[str, int, int, int, bool], tuple[str, str | None]] = {}
_DIGEST_LOCK = threading.Lock()


def _hash_file(path: Path, size: int, lfs: bool) -> tuple[str, str | None]:
    """(git blob sha1 of the content, sha256) for a small file, or (git sha1 of the pointer, sha256) for LFS."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, lfs)
    with _DIGEST_LOCK:
        cached = _DIGEST_CACHE.get(key)
    if cached is not None:
        return cached
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as f:
        while chunk := f.read(8 * MiB):
            if lfs:
                sha256.update(chunk)
            else:
                sha1.update(chunk)
    if lfs:
        oid = sha256.hexdigest()
        result = (_git_blob_sha1_bytes(_LFS_POINTER.format(oid=oid, size=size).encode()), oid)
    else:
        result = (sha1.hexdigest(), None)
    with _DIGEST_LOCK:
        _DIGEST_CACHE[key] = result
    return result


def load_digest_cache(path: str | os.PathLike[str]) -> int:
    """Load digests saved by :func:`save_digest_cache` (entries for changed files are simply unused).

    Returns the number of entries loaded; a missing file loads nothing, a malformed one raises ValueError.
    """
    try:
        raw = Path(path).read_text()
    except FileNotFoundError:
        return 0
    try:
        entries = json.loads(raw)
        loaded = {(str(e[0]), int(e[1]), int(e[2]), int(e[3]), bool(e[4])): (str(e[5]), e[6]) for e in entries}
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise ValueError(f"digest cache {path}: not a digest cache written by save_digest_cache ({exc})") from exc
    with _DIGEST_LOCK:
        _DIGEST_CACHE.update(loaded)
    return len(loaded)


def save_digest_cache(path: str | os.PathLike[str]) -> None:
    """Save the digests computed for on-disk files so a later process can skip re-hashing them."""
    with _DIGEST_LOCK:
        entries = [[*key, *value] for key, value in _DIGEST_CACHE.items()]
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(entries))
    os.replace(tmp, target)


def _validate_repo_path(path: str) -> None:
    parts = path.split("/")
    if (
        not path
        or "\0" in path
        or "\\" in path
        or path.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or len(path.encode()) > 4096
    ):
        raise ValueError(
            f"repo file path {path!r} is not a safe relative path (pass allow_unsafe_paths=True to serve it anyway)"
        )


def _git_tree_sha(files: Mapping[str, HubFile]) -> str:
    """The git tree id of the commit's root directory (100644 blobs, nested trees)."""
    root: dict[str, Any] = {}
    for path, f in files.items():
        node = root
        parts = path.split("/")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):  # a file and a directory of the same name: keep the file
                break
            node = child
        else:
            node[parts[-1]] = f.git_sha1

    def tree_id(node: dict[str, Any]) -> str:
        entries = []
        for name, value in node.items():
            if isinstance(value, dict):
                entries.append((name + "/", b"40000 " + name.encode() + b"\0" + bytes.fromhex(tree_id(value))))
            else:
                entries.append((name, b"100644 " + name.encode() + b"\0" + bytes.fromhex(value)))
        body = b"".join(e for _, e in sorted(entries))
        h = hashlib.sha1(f"tree {len(body)}\0".encode())
        h.update(body)
        return h.hexdigest()

    return tree_id(root)


def _iso(date: _dt.datetime) -> str:
    return date.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{date.microsecond // 1000:03d}Z"


def _safetensors_summary(files: Iterable[HubFile]) -> dict[str, Any] | None:
    """Parameter counts per dtype over all *.safetensors files, as the hub's ``safetensors`` field."""
    counts: dict[str, int] = {}
    found = False
    for f in files:
        if not f.path.endswith(".safetensors"):
            continue
        try:
            head = f.source.read(0, 8)
            (n,) = struct.unpack("<Q", head)
            if n > 100 * MiB or n + 8 > f.size:
                return None
            header = json.loads(f.source.read(8, n))
            for name, spec in header.items():
                if name == "__metadata__":
                    continue
                elems = 1
                for dim in spec["shape"]:
                    elems *= int(dim)
                counts[spec["dtype"]] = counts.get(spec["dtype"], 0) + elems
            found = True
        except (struct.error, ValueError, KeyError, TypeError, OSError):
            return None
    if not found:
        return None
    return {"parameters": counts, "total": sum(counts.values())}


# --------------------------------------------------------------------------------------------------
# The fake hub


class _HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, commit: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.commit = commit


@dataclasses.dataclass(frozen=True)
class _Caller:
    token: str | None
    user: str | None


class FakeHub:
    """A fake Hugging Face Hub: a hub server on ``host`` and a CDN server on ``cdn_host``.

    Use as a context manager (or call :meth:`start`/:meth:`stop`). Repos, tokens and faults can be
    changed while it runs; every request is recorded in :attr:`requests`.

    Args:
        host, port: where the hub listens (port 0 picks a free one).
        cdn_host, cdn_port: where the CDN listens (a different loopback address, so clients see a host change).
        lfs_threshold: files of at least this many bytes are LFS files (sha256 ETag, served via the CDN).
        lfs_patterns: glob patterns (like ``*.safetensors``) that make a file LFS whatever its size.
        use_cdn: redirect LFS downloads to the CDN (True, like the real hub) or serve them directly.
        small_file_mode: ``"resolve-cache"`` answers small-file resolves with a relative redirect to
            ``/api/resolve-cache/...`` like the real hub; ``"direct"`` answers them with the bytes.
        tree_page_size, tree_expand_page_size: entries per page of the tree API (real hub: 1000 / 50).
        tokens: valid tokens, as a mapping token -> user name or an iterable of tokens (user = token).
        gzip_text: serve small text files gzip-encoded when the client accepts gzip (real hub behaviour).
        url_expiry: lifetime in seconds of the pre-signed CDN URLs.
        log_limit: how many requests the log keeps.
        log_sink: called with every finished :class:`RequestRecord` (e.g. to stream an access log).
        verbose: print an access log line per request on stderr.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cdn_host: str = "127.0.0.2",
        cdn_port: int = 0,
        lfs_threshold: int = DEFAULT_LFS_THRESHOLD,
        lfs_patterns: Iterable[str] = (),
        use_cdn: bool = True,
        small_file_mode: str = "resolve-cache",
        tree_page_size: int = 1000,
        tree_expand_page_size: int = 50,
        tokens: Mapping[str, str] | Iterable[str] | None = None,
        gzip_text: bool = False,
        url_expiry: int = 3600,
        log_limit: int = 100_000,
        log_sink: Callable[[RequestRecord], None] | None = None,
        verbose: bool = False,
    ) -> None:
        if small_file_mode not in ("resolve-cache", "direct"):
            raise ValueError(f"small_file_mode must be 'resolve-cache' or 'direct', got {small_file_mode!r}")
        if lfs_threshold < 0:
            raise ValueError(f"lfs_threshold must be >= 0, got {lfs_threshold}")
        if tree_page_size < 1 or tree_expand_page_size < 1:
            raise ValueError("tree page sizes must be >= 1")
        self.host, self.port, self.cdn_host, self.cdn_port = host, port, cdn_host, cdn_port
        self.lfs_threshold = lfs_threshold
        self.lfs_patterns = tuple(lfs_patterns)
        self.use_cdn = use_cdn
        self.small_file_mode = small_file_mode
        self.tree_page_size = tree_page_size
        self.tree_expand_page_size = tree_expand_page_size
        self.gzip_text = gzip_text
        self.url_expiry = url_expiry
        self.verbose = verbose
        self.faults = FaultSet()
        self.log = RequestLog(log_limit, log_sink)
        self.internal_errors: list[str] = []
        """Tracebacks of exceptions raised while handling requests (answered 500); should stay empty."""
        self._lock = threading.RLock()
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._tokens: dict[str, str] = {}
        self._blobs: dict[str, HubFile] = {}  # sha256 -> file, for the CDN
        self._secret = secrets.token_bytes(32)
        self._hub: ServerThread | None = None
        self._cdn: ServerThread | None = None
        self._request_counter = 0
        self._safetensors_cache: dict[str, dict[str, Any] | None] = {}
        if isinstance(tokens, str):
            tokens = [tokens]
        if tokens is not None:
            items = tokens.items() if isinstance(tokens, Mapping) else ((t, t) for t in tokens)
            for token, user in items:
                self.add_token(token, user)

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> FakeHub:
        """Bind both servers and start serving. Returns self."""
        if self._hub is not None:
            raise RuntimeError("FakeHub is already started")
        hub = ServerThread(self.host, self.port, _HubHandler, _Context(self, "hub"))
        try:
            cdn = ServerThread(self.cdn_host, self.cdn_port, _CdnHandler, _Context(self, "cdn"))
        except OSError:
            hub.server.server_close()
            raise
        self._hub, self._cdn = hub, cdn
        hub.start()
        cdn.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop both servers, drop open connections and wait (up to ``timeout`` s) until every
        request in the log is finished, so the log is final when this returns. Idempotent."""
        for srv in (self._hub, self._cdn):
            if srv is not None:
                srv.stop()
        self._hub = self._cdn = None
        self.log.wait_all(timeout)

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The hub endpoint, e.g. ``http://127.0.0.1:41234`` (what HF_ENDPOINT should be)."""
        if self._hub is None:
            raise RuntimeError("FakeHub is not started")
        return self._hub.url

    @property
    def cdn_url(self) -> str:
        """Base URL of the CDN server (LFS downloads are redirected there)."""
        if self._cdn is None:
            raise RuntimeError("FakeHub is not started")
        return self._cdn.url

    # -- tokens -----------------------------------------------------------------------------------

    def add_token(self, token: str, user: str | None = None) -> None:
        """Accept ``token`` (sent as ``Authorization: Bearer <token>``) as user ``user`` (default: the token)."""
        if not token or any(c.isspace() for c in token):
            raise ValueError(f"token {token!r} must be a non-empty string without whitespace")
        with self._lock:
            self._tokens[token] = user if user is not None else token

    def remove_token(self, token: str) -> None:
        """Stop accepting ``token`` (requests carrying it get 401 invalid credentials)."""
        with self._lock:
            self._tokens.pop(token, None)

    # -- repos ------------------------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, FileContent],
        *,
        branch: str = "main",
        repo_type: str = "model",
        private: bool = False,
        gated: bool | str = False,
        readers: Iterable[str] | None = None,
        approved: Iterable[str] = (),
        info: Mapping[str, Any] | None = None,
        message: str = "Initial commit",
        allow_unsafe_paths: bool = False,
    ) -> str:
        """Create a repo whose ``branch`` points to a commit with ``files``; returns the commit sha.

        ``private`` repos are visible to valid tokens whose user is in ``readers`` (any valid token if
        ``readers`` is None). ``gated`` (True, ``"auto"`` or ``"manual"``) repos serve their files only
        to users in ``approved``. ``info`` adds or overrides fields of the repo-info JSON (e.g.
        ``tags``, ``library_name``, ``pipeline_tag``, ``cardData``).
        """
        _check_repo_id(repo_id)
        _check_repo_type(repo_type)
        if gated not in (False, True, "auto", "manual"):
            raise ValueError(f"gated must be False, True, 'auto' or 'manual', got {gated!r}")
        with self._lock:
            if (repo_type, repo_id) in self._repos:
                raise ValueError(f"{repo_type} repo {repo_id!r} already exists (use update_repo)")
            repo = _Repo(
                repo_id=repo_id,
                repo_type=repo_type,
                default_branch=branch,
                created=_dt.datetime.now(_dt.timezone.utc),
                private=private,
                gated="auto" if gated is True else gated,
                readers=frozenset(readers) if readers is not None else None,
                approved=frozenset(approved),
                info=dict(info or {}),
            )
            commit = self._make_commit(repo, None, self._build_files(files, allow_unsafe_paths), message)
            self._repos[(repo_type, repo_id)] = repo
            repo.branches[branch] = commit.sha
            return commit.sha

    def update_repo(
        self,
        repo_id: str,
        files: Mapping[str, FileContent] | None = None,
        *,
        add: Mapping[str, FileContent] | None = None,
        delete: Iterable[str] = (),
        branch: str = "main",
        repo_type: str = "model",
        message: str = "Update files",
        allow_unsafe_paths: bool = False,
    ) -> str:
        """Commit on ``branch`` and move it; returns the new commit sha (older commits stay downloadable).

        ``files`` replaces the whole file set; otherwise ``add`` adds or replaces files and ``delete``
        removes paths from the branch's current commit. A branch that does not exist yet is created
        from the default branch.
        """
        with self._lock:
            repo = self._get_repo(repo_id, repo_type)
            parent_sha = repo.branches.get(branch) or repo.branches[repo.default_branch]
            parent = repo.commits[parent_sha]
            if files is not None:
                if add or delete:
                    raise ValueError("update_repo: pass either files= or add=/delete=, not both")
                new_files = self._build_files(files, allow_unsafe_paths)
            else:
                new_files = dict(parent.files)
                for path in delete:
                    if path not in new_files:
                        raise ValueError(f"update_repo: cannot delete {path!r}: not in {repo_id}@{branch}")
                    del new_files[path]
                new_files.update(self._build_files(add or {}, allow_unsafe_paths))
            commit = self._make_commit(repo, parent, new_files, message)
            repo.branches[branch] = commit.sha
            return commit.sha

    def create_branch(self, repo_id: str, branch: str, revision: str | None = None, *, repo_type: str = "model") -> str:
        """Create (or move) ``branch`` to ``revision`` (default: the default branch); returns the commit."""
        with self._lock:
            repo = self._get_repo(repo_id, repo_type)
            sha = self._resolve(repo, revision or repo.default_branch)
            repo.branches[branch] = sha
            return sha

    def create_tag(self, repo_id: str, tag: str, revision: str | None = None, *, repo_type: str = "model") -> str:
        """Tag ``revision`` (default: the default branch) as ``tag``; returns the tagged commit."""
        with self._lock:
            repo = self._get_repo(repo_id, repo_type)
            sha = self._resolve(repo, revision or repo.default_branch)
            repo.tags[tag] = sha
            return sha

    def configure_repo(
        self,
        repo_id: str,
        *,
        repo_type: str = "model",
        private: bool | None = None,
        gated: bool | str | None = None,
        disabled: bool | None = None,
        readers: Iterable[str] | None = None,
        approved: Iterable[str] | None = None,
    ) -> None:
        """Change access settings of an existing repo (None leaves a setting as it is)."""
        with self._lock:
            repo = self._get_repo(repo_id, repo_type)
            if private is not None:
                repo.private = private
            if gated is not None:
                if gated not in (False, True, "auto", "manual"):
                    raise ValueError(f"gated must be False, True, 'auto' or 'manual', got {gated!r}")
                repo.gated = "auto" if gated is True else gated
            if disabled is not None:
                repo.disabled = disabled
            if readers is not None:
                repo.readers = frozenset(readers)
            if approved is not None:
                repo.approved = frozenset(approved)

    def commit_sha(self, repo_id: str, revision: str | None = None, *, repo_type: str = "model") -> str:
        """The commit a branch, tag or commit sha designates."""
        with self._lock:
            repo = self._get_repo(repo_id, repo_type)
            return self._resolve(repo, revision or repo.default_branch)

    def files(self, repo_id: str, revision: str | None = None, *, repo_type: str = "model") -> dict[str, HubFile]:
        """The files of a revision, with sizes and digests."""
        with self._lock:
            repo = self._get_repo(repo_id, repo_type)
            return dict(repo.commits[self._resolve(repo, revision or repo.default_branch)].files)

    def file_bytes(self, repo_id: str, path: str, revision: str | None = None, *, repo_type: str = "model") -> bytes:
        """The content of one file (read into memory: for assertions on small files)."""
        f = self.files(repo_id, revision, repo_type=repo_type)[path]
        return f.source.read(0, f.size)

    # -- faults -----------------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> Fault:
        """Register a :class:`Fault`; faults are tried in the order added."""
        return self.faults.add(fault)

    def rate_limit(
        self,
        count: int = 1,
        *,
        retry_after: int | None = 1,
        ratelimit_reset: int | None = None,
        path: str | None = None,
        methods: Iterable[str] | None = None,
        server: str | None = None,
    ) -> Fault:
        """Answer the next ``count`` matching requests with 429.

        ``retry_after`` sets ``Retry-After: <s>``; ``ratelimit_reset`` sets the IETF
        ``RateLimit: "api";r=0;t=<s>`` header (plus ``RateLimit-Policy``). Either may be None.
        """
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = str(int(retry_after))
        if ratelimit_reset is not None:
            headers["RateLimit"] = f'"api";r=0;t={int(ratelimit_reset)}'
            headers["RateLimit-Policy"] = '"fixed window";"api";q=500;w=300'
        return self.add_fault(
            Fault(
                "status",
                count=count,
                status=429,
                headers=headers,
                message="You have been rate-limited; you can retry this action later.",
                path=path,
                methods=frozenset(methods) if methods else None,
                server=server,
            )
        )

    def server_error(
        self,
        count: int = 1,
        *,
        status: int = 503,
        path: str | None = None,
        methods: Iterable[str] | None = None,
        server: str | None = None,
    ) -> Fault:
        """Answer the next ``count`` matching requests with ``status`` (a 5xx burst)."""
        return self.add_fault(
            Fault(
                "status",
                count=count,
                status=status,
                message="Internal Error - We're working hard to fix this as soon as possible!",
                path=path,
                methods=frozenset(methods) if methods else None,
                server=server,
            )
        )

    def cut_connection(
        self, after_bytes: int, count: int = 1, *, path: str | None = None, server: str | None = None
    ) -> Fault:
        """For the next ``count`` matching file bodies longer than ``after_bytes``, send only
        ``after_bytes`` bytes and then close the socket."""
        return self.add_fault(Fault("cut", count=count, after_bytes=after_bytes, path=path, server=server))

    def corrupt_bytes(
        self, offset: int | None = None, count: int = 1, *, path: str | None = None, server: str | None = None
    ) -> Fault:
        """Flip the byte at file offset ``offset`` (None: the first byte served) in the next ``count``
        matching file bodies that cover it."""
        return self.add_fault(Fault("corrupt", count=count, offset=offset, path=path, server=server))

    def delay(
        self,
        seconds: float,
        count: int = 1,
        *,
        path: str | None = None,
        methods: Iterable[str] | None = None,
        server: str | None = None,
    ) -> Fault:
        """Wait ``seconds`` before answering the next ``count`` matching requests."""
        return self.add_fault(
            Fault(
                "delay",
                count=count,
                delay=seconds,
                path=path,
                methods=frozenset(methods) if methods else None,
                server=server,
            )
        )

    def on_request(
        self,
        callback: Callable[[RequestRecord], None],
        count: int = 1,
        *,
        path: str | None = None,
        methods: Iterable[str] | None = None,
        server: str | None = None,
    ) -> Fault:
        """Call ``callback(record)`` before handling the next ``count`` matching requests
        (e.g. to move a branch in the middle of a download)."""
        return self.add_fault(
            Fault(
                "callback",
                count=count,
                callback=callback,
                path=path,
                methods=frozenset(methods) if methods else None,
                server=server,
            )
        )

    def throttle(self, bytes_per_second: int | None, *, path: str | None = None, server: str | None = None) -> None:
        """Limit each connection to ``bytes_per_second`` of file body; None removes every throttle."""
        self.faults.set_throttle(bytes_per_second, server=server, path=path)

    def clear_faults(self) -> None:
        """Remove all scripted faults and throttles."""
        self.faults.clear()

    # -- request log ------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log, oldest first."""
        return self.log.snapshot()

    def find_requests(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        server: str | None = None,
        status: int | None = None,
    ) -> list[RequestRecord]:
        """Logged requests matching all given criteria (``path`` is a regex searched in the path)."""
        return self.log.find(method=method, path=path, server=server, status=status)

    def clear_requests(self) -> None:
        """Empty the request log."""
        self.log.clear()

    # -- internals --------------------------------------------------------------------------------

    def _get_repo(self, repo_id: str, repo_type: str) -> _Repo:
        try:
            return self._repos[(repo_type, repo_id)]
        except KeyError:
            raise KeyError(f"no {repo_type} repo {repo_id!r} on this fake hub") from None

    def _is_lfs(self, path: str, size: int) -> bool:
        return size >= self.lfs_threshold or any(glob_match(p, path) for p in self.lfs_patterns)

    def _build_files(self, files: Mapping[str, FileContent], allow_unsafe: bool) -> dict[str, HubFile]:
        out: dict[str, HubFile] = {}
        for path, content in files.items():
            if not isinstance(path, str):
                raise TypeError(f"repo file path must be a str, got {path!r}")
            if not allow_unsafe:
                _validate_repo_path(path)
            out[path] = self._make_file(path, content)
        return out

    def _make_file(self, path: str, content: FileContent) -> HubFile:
        if isinstance(content, os.PathLike):
            disk = Path(content)
            try:
                st = disk.stat()
            except OSError as exc:
                raise ValueError(f"repo file {path!r}: cannot read {disk}: {exc.strerror}") from exc
            if not disk.is_file():
                raise ValueError(f"repo file {path!r}: {disk} is not a regular file")
            size = st.st_size
            lfs = self._is_lfs(path, size)
            git_sha1, sha256 = _hash_file(disk, size, lfs)
            source = BodySource(size=size, path=disk)
        elif isinstance(content, (bytes, bytearray, memoryview, str)):
            data = content.encode() if isinstance(content, str) else bytes(content)
            size = len(data)
            lfs = self._is_lfs(path, size)
            if lfs:
                sha256 = hashlib.sha256(data).hexdigest()
                git_sha1 = _git_blob_sha1_bytes(_LFS_POINTER.format(oid=sha256, size=size).encode())
            else:
                sha256, git_sha1 = None, _git_blob_sha1_bytes(data)
            source = BodySource(size=size, data=data)
        else:
            raise TypeError(f"repo file {path!r}: content must be bytes, str or a path, got {type(content).__name__}")
        pointer_size = len(_LFS_POINTER.format(oid=sha256, size=size)) if sha256 else None
        hub_file = HubFile(path, size, git_sha1, sha256, pointer_size, source)
        if sha256 is not None:
            self._blobs[sha256] = hub_file
        return hub_file

    def _make_commit(self, repo: _Repo, parent: _Commit | None, files: dict[str, HubFile], message: str) -> _Commit:
        now = _dt.datetime.now(_dt.timezone.utc)
        if parent is not None and now <= parent.date:
            now = parent.date + _dt.timedelta(milliseconds=1)
        tree = _git_tree_sha(files)
        ts = int(now.timestamp())
        body = f"tree {tree}\n" + (f"parent {parent.sha}\n" if parent else "")
        body += f"author {_AUTHOR} {ts} +0000\ncommitter {_AUTHOR} {ts} +0000\n\n{message}\n"
        # Commits with equal text (same tree, parent and second) would collide; git would too, but tests
        # expect update_repo to always move the branch, so disambiguate like a distinct message would.
        while True:
            raw = body.encode()
            sha = hashlib.sha1(f"commit {len(raw)}\0".encode() + raw).hexdigest()
            if sha not in repo.commits:
                break
            body += "\n"
        last_change = {
            p: (parent.last_change[p] if parent and p in parent.files and parent.files[p].git_sha1 == f.git_sha1 else sha)
            for p, f in files.items()
        }
        commit = _Commit(sha, parent.sha if parent else None, tree, message, now, files, last_change, len(repo.commits))
        repo.commits[sha] = commit
        return commit

    def _resolve(self, repo: _Repo, revision: str) -> str:
        rev = revision
        if rev in repo.branches:
            return repo.branches[rev]
        if rev in repo.tags:
            return repo.tags[rev]
        if rev.startswith("refs/heads/") and rev[11:] in repo.branches:
            return repo.branches[rev[11:]]
        if rev.startswith("refs/tags/") and rev[10:] in repo.tags:
            return repo.tags[rev[10:]]
        if _COMMIT_RE.fullmatch(rev) and rev in repo.commits:
            return rev
        raise _HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def _next_request_id(self) -> str:
        with self._lock:
            self._request_counter += 1
            return f"Root=1-fakehub-{self._request_counter:08d}"

    # Access control -------------------------------------------------------------------------------

    def _caller(self, authorization: str | None) -> _Caller:
        if authorization is None:
            return _Caller(None, None)
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        with self._lock:
            user = self._tokens.get(token) if scheme.lower() == "bearer" else None
        if user is None:
            raise _HubError(401, _INVALID_CREDENTIALS)
        return _Caller(token, user)

    def _find_repo(self, repo_type: str, repo_id: str, caller: _Caller) -> _Repo:
        with self._lock:
            repo = self._repos.get((repo_type, repo_id))
        readable = repo is not None and (
            not repo.private or (caller.user is not None and (repo.readers is None or caller.user in repo.readers))
        )
        if not readable:
            # Like the real hub: anonymous callers get 401 for missing and private repos alike.
            status = 401 if caller.user is None else 404
            raise _HubError(status, "Repository not found", "RepoNotFound")
        assert repo is not None
        if repo.disabled:
            raise _HubError(403, "Access to this resource is disabled.")
        return repo

    def _check_gate(self, repo: _Repo, caller: _Caller, path: str) -> None:
        if not repo.gated or path in _UNGATED_FILES:
            return
        if caller.user is None:
            raise _HubError(
                401,
                f"Access to {repo.repo_type} {repo.repo_id} is restricted. You must have access to it and be "
                "authenticated to access it. Please log in.",
                "GatedRepo",
            )
        if caller.user not in repo.approved:
            raise _HubError(
                403,
                f"Access to {repo.repo_type} {repo.repo_id} is restricted and you are not in the authorized list. "
                f"Visit {repo.repo_id} to ask for access.",
                "GatedRepo",
            )

    # JSON documents ---------------------------------------------------------------------------------

    def _repo_info(self, repo: _Repo, commit: _Commit, blobs: bool, expand: list[str]) -> dict[str, Any]:
        siblings = []
        for f in sorted(commit.files.values(), key=lambda f: f.path):
            sib: dict[str, Any] = {"rfilename": f.path}
            if blobs:
                sib["size"] = f.size
                sib["blobId"] = f.git_sha1
                if f.is_lfs:
                    sib["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": f.pointer_size}
            siblings.append(sib)
        author = repo.repo_id.split("/")[0] if "/" in repo.repo_id else None
        info: dict[str, Any] = {
            "_id": hashlib.sha1(f"{repo.repo_type}/{repo.repo_id}".encode()).hexdigest()[:24],
            "id": repo.repo_id,
        }
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
        info.update(
            {
                "author": author,
                "sha": commit.sha,
                "lastModified": _iso(commit.date),
                "createdAt": _iso(repo.created),
                "private": repo.private,
                "gated": repo.gated,
                "disabled": repo.disabled,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
                "usedStorage": sum(f.size for f in commit.files.values()),
            }
        )
        config_file = commit.files.get("config.json")
        if config_file is not None and repo.repo_type == "model":
            try:
                config = json.loads(config_file.source.read(0, min(config_file.size, 4 * MiB)))
                if isinstance(config, dict):
                    info["config"] = {k: config[k] for k in ("architectures", "model_type") if k in config}
            except (ValueError, OSError):
                pass
        with self._lock:
            if commit.sha not in self._safetensors_cache:
                self._safetensors_cache[commit.sha] = _safetensors_summary(commit.files.values())
            st = self._safetensors_cache[commit.sha]
        if st is not None:
            info["safetensors"] = st
            info["tags"] = ["safetensors"]
        info.update(repo.info)
        if expand:
            info = {k: v for k, v in info.items() if k in ("_id", "id") or k in expand}
        return info

    def _tree_entries(self, repo: _Repo, commit: _Commit, path: str, recursive: bool, expand: bool) -> list[dict[str, Any]]:
        prefix = path.strip("/")
        if prefix and prefix in commit.files:
            raise _HubError(404, f"{prefix} is a file, not a directory", "EntryNotFound", commit.sha)
        base = prefix + "/" if prefix else ""
        dirs: set[str] = set()
        files: list[HubFile] = []
        for p in sorted(commit.files):
            if not p.startswith(base):
                continue
            rest = p[len(base) :]
            parts = rest.split("/")
            for depth in range(1, len(parts)):
                if not recursive and depth > 1:
                    break
                dirs.add(base + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                files.append(commit.files[p])
        if prefix and not files and not dirs:
            raise _HubError(404, f"Entry not found: {prefix}", "EntryNotFound", commit.sha)
        repo_commits = repo.commits

        def last_commit(shas: Iterable[str]) -> dict[str, Any]:
            c = max((repo_commits[s] for s in shas), key=lambda c: c.index)
            return {"id": c.sha, "title": c.message.splitlines()[0] if c.message else "", "date": _iso(c.date)}

        entries: list[dict[str, Any]] = []
        for d in sorted(dirs):
            sub = {f.path: f for f in commit.files.values() if f.path.startswith(d + "/")}
            entry: dict[str, Any] = {
                "type": "directory",
                "oid": _git_tree_sha({p[len(d) + 1 :]: f for p, f in sub.items()}),
                "size": 0,
                "path": d,
            }
            if expand:
                entry["lastCommit"] = last_commit(commit.last_change[p] for p in sub)
            entries.append(entry)
        for f in files:
            entry = {"type": "file", "oid": f.git_sha1, "size": f.size, "path": f.path}
            if f.is_lfs:
                entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": f.pointer_size}
            if expand:
                entry["lastCommit"] = last_commit([commit.last_change[f.path]])
                entry["securityFileStatus"] = {
                    "status": "safe",
                    "avScan": {"virusFound": False, "virusNames": None},
                    "pickleImportScan": None,
                }
            entries.append(entry)
        entries.sort(key=lambda e: e["path"])
        return entries

    # CDN ---------------------------------------------------------------------------------------------

    def _sign(self, sha256: str, expires: int) -> str:
        return hmac.new(self._secret, f"{sha256}:{expires}".encode(), hashlib.sha256).hexdigest()

    def _cdn_location(self, f: HubFile) -> str:
        assert f.sha256 is not None
        expires = int(time.time()) + self.url_expiry
        name = PurePosixPath(f.path).name
        query = urlencode(
            {
                "response-content-disposition": f"inline; filename*=UTF-8''{quote(name)}; filename=\"{name}\";",
                "Expires": str(expires),
                "Signature": self._sign(f.sha256, expires),
                "Key-Pair-Id": "KFAKEHUBKEYPAIR",
            },
            quote_via=quote,
        )
        return f"{self.cdn_url}/repos/{f.sha256[:2]}/{f.sha256[2:4]}/{f.sha256}?{query}"


@dataclasses.dataclass
class _Context:
    hub: FakeHub
    server_name: str

    @property
    def faults(self) -> FaultSet:
        return self.hub.faults

    @property
    def log(self) -> RequestLog:
        return self.hub.log

    @property
    def verbose(self) -> bool:
        return self.hub.verbose

    @property
    def internal_errors(self) -> list[str]:
        return self.hub.internal_errors


def _check_repo_id(repo_id: str) -> None:
    if not isinstance(repo_id, str) or not re.fullmatch(r"[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?", repo_id):
        raise ValueError(f"repo id {repo_id!r} is not of the form 'name' or 'org/name'")


def _check_repo_type(repo_type: str) -> None:
    if repo_type not in REPO_TYPES:
        raise ValueError(f"repo_type must be one of {REPO_TYPES}, got {repo_type!r}")


def _flag(query: dict[str, list[str]], name: str) -> bool:
    values = query.get(name)
    return bool(values) and values[-1].strip().lower() in ("true", "1", "yes")


_TYPE_FROM_API = {"models": "model", "datasets": "dataset", "spaces": "space"}
_TYPE_FROM_PREFIX = {"datasets": "dataset", "spaces": "space"}


class _HubHandler(BaseHandler):
    context: _Context

    @property
    def hub(self) -> FakeHub:
        return self.context.hub

    def route(self) -> None:
        request_id = self.hub._next_request_id()
        try:
            self._route(request_id)
        except _HubError as err:
            headers = {"X-Request-Id": request_id, "X-Error-Message": err.message}
            if err.code:
                headers["X-Error-Code"] = err.code
            if err.commit:
                headers["X-Repo-Commit"] = err.commit
            self.send_json(err.status, {"error": err.message}, headers)

    def _split_repo(self, segments: list[str], marker_at: Callable[[int], bool]) -> tuple[str, list[str]] | None:
        """Split raw path segments into (repo id, rest); the id is one segment (possibly ``org%2Fname``)
        or two, decided by where the next route marker sits."""
        if not segments:
            return None
        first = unquote(segments[0])
        if "/" in first:
            return first, segments[1:]
        if len(segments) >= 2 and marker_at(2):
            return f"{first}/{unquote(segments[1])}", segments[2:]
        if marker_at(1):
            return first, segments[1:]
        if len(segments) >= 2:
            return f"{first}/{unquote(segments[1])}", segments[2:]
        return first, []

    def _route(self, request_id: str) -> None:
        hub = self.hub
        base = {"X-Request-Id": request_id}
        caller = hub._caller(self.headers.get("Authorization"))
        segs = self.raw_path.split("/")[1:]
        query = parse_qs(self.req_query, keep_blank_values=True)
        method = self.command
        if method not in ("GET", "HEAD"):
            raise _HubError(405, f"Method {method} not allowed on this fake hub")

        if segs[:2] == ["api", "whoami-v2"]:
            if caller.user is None:
                raise _HubError(401, "Invalid username or password.")
            self.send_json(200, {"type": "user", "name": caller.user, "auth": {"type": "access_token"}}, base)
            return

        if len(segs) >= 3 and segs[0] == "api" and segs[1] == "resolve-cache" and segs[2] in _TYPE_FROM_API:
            rest = segs[3:]
            split = self._split_repo(rest, lambda i: i < len(rest) and _COMMIT_RE.fullmatch(rest[i]) is not None)
            if split is None or not split[1]:
                raise _HubError(404, "Not found")
            repo_id, tail = split
            self._resolve_file(_TYPE_FROM_API[segs[2]], repo_id, tail[0], unquote("/".join(tail[1:])), caller, base, True)
            return

        if len(segs) >= 3 and segs[0] == "api" and segs[1] in _TYPE_FROM_API:
            repo_type = _TYPE_FROM_API[segs[1]]
            rest = segs[2:]
            markers = ("revision", "tree", "refs")
            split = self._split_repo(rest, lambda i: i >= len(rest) or rest[i] in markers)
            if split is None:
                raise _HubError(404, "Not found")
            repo_id, tail = split
            repo = hub._find_repo(repo_type, repo_id, caller)
            if not tail or tail == [""]:
                self._send_info(repo, repo.default_branch, query, base)
            elif tail[0] == "revision" and len(tail) >= 2:
                self._send_info(repo, unquote("/".join(tail[1:])), query, base)
            elif tail[0] == "tree" and len(tail) >= 2:
                self._send_tree(repo, unquote(tail[1]), unquote("/".join(tail[2:])), query, base)
            elif tail[0] == "refs" and len(tail) == 1:
                with hub._lock:
                    payload = {
                        "branches": [
                            {"name": b, "ref": f"refs/heads/{b}", "targetCommit": s} for b, s in sorted(repo.branches.items())
                        ],
                        "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": s} for t, s in sorted(repo.tags.items())],
                        "converts": [],
                    }
                self.send_json(200, payload, base)
            else:
                raise _HubError(404, "Not found")
            return

        repo_type = "model"
        if segs and segs[0] in _TYPE_FROM_PREFIX:
            repo_type = _TYPE_FROM_PREFIX[segs[0]]
            segs = segs[1:]
        split = self._split_repo(segs, lambda i: i < len(segs) and segs[i] == "resolve")
        if split is not None and len(split[1]) >= 3 and split[1][0] == "resolve":
            repo_id, tail = split
            self._resolve_file(repo_type, repo_id, unquote(tail[1]), unquote("/".join(tail[2:])), caller, base, False)
            return
        raise _HubError(404, "Not found")

    def _send_info(self, repo: _Repo, revision: str, query: dict[str, list[str]], base: dict[str, str]) -> None:
        with self.hub._lock:
            commit = repo.commits[self.hub._resolve(repo, revision)]
        expand = [v for key in ("expand", "expand[]") for v in query.get(key, [])]
        self.send_json(200, self.hub._repo_info(repo, commit, _flag(query, "blobs"), expand), base)

    def _send_tree(self, repo: _Repo, revision: str, path: str, query: dict[str, list[str]], base: dict[str, str]) -> None:
        hub = self.hub
        with hub._lock:
            commit = repo.commits[hub._resolve(repo, revision)]
        recursive, expand = _flag(query, "recursive"), _flag(query, "expand")
        entries = hub._tree_entries(repo, commit, path, recursive, expand)
        page = hub.tree_expand_page_size if expand else hub.tree_page_size
        cursor = query.get("cursor", [""])[-1]
        try:
            offset = int(json.loads(base64.urlsafe_b64decode(cursor.encode() + b"==="))["o"]) if cursor else 0
        except (ValueError, KeyError, TypeError):
            raise _HubError(400, f"Invalid cursor {cursor!r}") from None
        headers = dict(base)
        if offset + page < len(entries):
            nxt = base64.urlsafe_b64encode(json.dumps({"o": offset + page}).encode()).decode().rstrip("=")
            params = urlencode({"recursive": str(recursive).lower(), "expand": str(expand).lower(), "cursor": nxt})
            host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
            headers["Link"] = f'<http://{host}{self.raw_path}?{params}>; rel="next"'
        self.send_json(200, entries[offset : offset + page], headers)

    def _resolve_file(
        self, repo_type: str, repo_id: str, revision: str, path: str, caller: _Caller, base: dict[str, str], cached: bool
    ) -> None:
        hub = self.hub
        repo = hub._find_repo(repo_type, repo_id, caller)
        with hub._lock:
            sha = hub._resolve(repo, revision)
            commit = repo.commits[sha]
        if cached and revision != sha:
            raise _HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        hub._check_gate(repo, caller, path)
        f = commit.files.get(path)
        headers = dict(base)
        headers["X-Repo-Commit"] = sha
        if f is None:
            raise _HubError(404, "Entry not found", "EntryNotFound", sha)
        headers["Content-Disposition"] = f'inline; filename="{PurePosixPath(path).name}"'
        if f.is_lfs:
            headers["X-Linked-Etag"] = f'"{f.sha256}"'
            headers["X-Linked-Size"] = str(f.size)
            if hub.use_cdn:
                location = hub._cdn_location(f)
                headers["Location"] = location
                headers["Content-Type"] = "text/plain; charset=utf-8"
                self.send_bytes(302, f"Found. Redirecting to {location}".encode(), headers)
                return
            headers["ETag"] = f'"{f.sha256}"'
            headers["Content-Type"] = "application/octet-stream"
            self.send_file(f.source, headers)
            return
        if not cached and hub.small_file_mode == "resolve-cache":
            prefix = "" if repo_type == "model" else f"{repo_type}s/"
            original = f"/{prefix}{repo_id}/resolve/{quote(revision, safe='')}/{quote(path)}"
            location = (
                f"/api/resolve-cache/{repo_type}s/{repo_id}/{sha}/{quote(path)}?"
                + urlencode({original: "", "etag": f'"{f.git_sha1}"'}, quote_via=quote)
            )
            headers["Location"] = location
            headers["Content-Type"] = "text/plain; charset=utf-8"
            self.send_bytes(307, f"Temporary Redirect. Redirecting to {location}".encode(), headers)
            return
        headers["ETag"] = f'"{f.git_sha1}"'
        headers["Content-Type"] = "application/octet-stream"
        accept = self.headers.get("Accept-Encoding", "")
        if hub.gzip_text and "gzip" in accept.lower() and "Range" not in self.headers and _looks_like_text(f):
            body = gzip.compress(f.source.read(0, f.size), mtime=0)
            headers["Content-Encoding"] = "gzip"
            headers["Vary"] = "Accept-Encoding"
            self.send_bytes(200, body, headers)
            return
        self.send_file(f.source, headers)


def _looks_like_text(f: HubFile) -> bool:
    return PurePosixPath(f.path).suffix in (".json", ".txt", ".md", ".py", ".model", ".jinja", ".yaml", ".yml")


class _CdnHandler(BaseHandler):
    context: _Context

    def route(self) -> None:
        hub = self.context.hub
        m = re.fullmatch(r"/repos/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})", self.req_path)
        if m is None or self.command not in ("GET", "HEAD"):
            self._deny("NoSuchKey", "The specified key does not exist.", 404)
            return
        sha256 = m.group(3)
        query = parse_qs(self.req_query)
        expires_s = query.get("Expires", [""])[-1]
        signature = query.get("Signature", [""])[-1]
        if not expires_s.isdigit() or not hmac.compare_digest(signature, hub._sign(sha256, int(expires_s))):
            self._deny("AccessDenied", "Invalid signature in the pre-signed URL.", 403)
            return
        if int(expires_s) < time.time():
            self._deny("AccessDenied", "Request has expired.", 403)
            return
        with hub._lock:
            f = hub._blobs.get(sha256)
        if f is None:
            self._deny("NoSuchKey", "The specified key does not exist.", 404)
            return
        disposition = query.get("response-content-disposition", [""])[-1]
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": f'"{sha256}"',
            "Last-Modified": "Thu, 01 Jan 2024 00:00:00 GMT",
            "X-Cache": "Hit from cloudfront",
        }
        if disposition:
            headers["Content-Disposition"] = disposition
        self.send_file(f.source, headers)

    def _deny(self, code: str, message: str, status: int) -> None:
        body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
        self.send_bytes(status, body.encode(), {"Content-Type": "application/xml"})


# --------------------------------------------------------------------------------------------------
# Command line


def _load_dir(root: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in (".git", ".cache"))
        for name in sorted(filenames):
            full = Path(dirpath) / name
            if full.is_file():
                files[full.relative_to(root).as_posix()] = full
    return files


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m modelagent.testing.hf_hub",
        description="Serve local directories as Hugging Face model repos on loopback (hub on --host, CDN on --cdn-host).",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="hub port (0: pick a free one)")
    p.add_argument("--cdn-host", default="127.0.0.2")
    p.add_argument("--cdn-port", type=int, default=0)
    p.add_argument(
        "--repo",
        action="append",
        default=[],
        metavar="ORG/NAME=DIR",
        help="serve DIR as repo ORG/NAME (repeatable)",
    )
    p.add_argument(
        "--repo-dir",
        type=Path,
        help="serve every DIR/<org>/<name>/ directory as repo org/name",
    )
    p.add_argument("--lfs-threshold", type=int, default=DEFAULT_LFS_THRESHOLD, help="bytes (default 1 MiB)")
    p.add_argument("--no-cdn", action="store_true", help="serve LFS files directly instead of redirecting to the CDN")
    p.add_argument("--small-files", choices=("resolve-cache", "direct"), default="resolve-cache")
    p.add_argument("--page-size", type=int, default=1000, help="tree API page size")
    p.add_argument("--token", action="append", default=[], help="accept this bearer token (repeatable)")
    p.add_argument("--private", action="store_true", help="make the served repos private (need --token)")
    p.add_argument("--throttle", type=int, default=None, metavar="BYTES_PER_S", help="per-connection body rate limit")
    p.add_argument("--url-file", type=Path, help="write the hub URL to this file once listening")
    p.add_argument(
        "--digest-cache",
        type=Path,
        help="JSON file remembering file digests across runs (skips re-hashing multi-GB files)",
    )
    p.add_argument("--access-log", type=Path, help="append one JSON line per request to this file")
    p.add_argument("--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m modelagent.testing.hf_hub``; serves until SIGINT/SIGTERM."""
    args = _build_parser().parse_args(argv)
    repos: dict[str, Path] = {}
    for spec in args.repo:
        repo_id, sep, directory = spec.partition("=")
        if not sep or not directory:
            print(f"error: --repo {spec!r}: expected ORG/NAME=DIR", file=sys.stderr)
            return 2
        repos[repo_id] = Path(directory)
    if args.repo_dir is not None:
        if not args.repo_dir.is_dir():
            print(f"error: --repo-dir {args.repo_dir}: not a directory", file=sys.stderr)
            return 2
        for org in sorted(p for p in args.repo_dir.iterdir() if p.is_dir()):
            for name in sorted(p for p in org.iterdir() if p.is_dir()):
                repos[f"{org.name}/{name.name}"] = name
    if not repos:
        print("error: nothing to serve: give --repo ORG/NAME=DIR or --repo-dir DIR", file=sys.stderr)
        return 2

    log_file = open(args.access_log, "a", buffering=1) if args.access_log else None  # noqa: SIM115
    log_lock = threading.Lock()

    def sink(record: RequestRecord) -> None:
        if log_file is not None:
            with log_lock:
                log_file.write(json.dumps(record.to_json()) + "\n")

    hub = FakeHub(
        host=args.host,
        port=args.port,
        cdn_host=args.cdn_host,
        cdn_port=args.cdn_port,
        lfs_threshold=args.lfs_threshold,
        use_cdn=not args.no_cdn,
        small_file_mode=args.small_files,
        tree_page_size=args.page_size,
        tokens=args.token,
        log_limit=10_000,
        log_sink=sink if log_file else None,
        verbose=args.verbose,
    )
    try:
        if args.digest_cache is not None:
            load_digest_cache(args.digest_cache)
        for repo_id, directory in repos.items():
            if not directory.is_dir():
                print(f"error: repo {repo_id}: {directory} is not a directory", file=sys.stderr)
                return 2
            files = _load_dir(directory)
            if not files:
                print(f"error: repo {repo_id}: {directory} has no files", file=sys.stderr)
                return 2
            hub.add_repo(repo_id, files, private=args.private)
        if args.digest_cache is not None:
            save_digest_cache(args.digest_cache)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.throttle is not None:
        hub.throttle(args.throttle)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        hub.start()
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        if args.url_file is not None:
            tmp = args.url_file.with_name(args.url_file.name + ".tmp")
            tmp.write_text(hub.url + "\n")
            os.replace(tmp, args.url_file)
        print(hub.url, flush=True)
        for repo_id in repos:
            print(f"serving {repo_id} @ {hub.commit_sha(repo_id)}", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        hub.stop()
        if log_file is not None:
            log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
