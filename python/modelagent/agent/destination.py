"""Where a model's files live on this node, and which model owns which folder.

Ownership is kept twice: in memory (:class:`DestinationRegistry`, for the models this process is handling)
and on disk, in an owner file ``<folder>/.modelagent/owner.json`` written before a download starts. The
owner file names the model (kind, namespace, name, uid) and the storage URI being fetched, so that after
a restart the agent can still tell which folder belongs to which model (a Delete for a model removed
while the agent was down carries no spec) and what an interrupted download was fetching.
"""

from __future__ import annotations

import datetime
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelagent.agent.model_ref import BASE_MODEL, ModelRef


AGENT_STATE_DIR = ".modelagent"
"""Folder under the models root where the agent keeps its own state (never a model destination)."""

OWNER_FILE = ".modelagent/owner.json"
"""Where a model folder's owner file lives, relative to the folder."""

_OWNER_FORMAT = 1


class DestinationError(ValueError):
    """The model's destination is not acceptable; the message is the Failed reason."""


def default_destination(models_root: str | os.PathLike[str], ref: ModelRef) -> Path:
    """The folder a model gets when ``spec.storage.path`` is not set.

    ``<root>/basemodels/<namespace>/<name>`` or ``<root>/clusterbasemodels/<name>``: derived from the
    model's identity, never from its URI, and distinct for every model.
    """
    root = Path(models_root)
    if ref.kind == BASE_MODEL:
        assert ref.namespace is not None
        return root / "basemodels" / ref.namespace / ref.name
    return root / "clusterbasemodels" / ref.name


def requested_path(obj: Mapping[str, Any]) -> str | None:
    """``spec.storage.path`` when set and non-empty, else None; ``DestinationError`` for a non-string."""
    spec = obj.get("spec")
    storage = spec.get("storage") if isinstance(spec, Mapping) else None
    path = storage.get("path") if isinstance(storage, Mapping) else None
    if path is None or path == "":
        return None
    if not isinstance(path, str):
        raise DestinationError(f"spec.storage.path must be a string, got {type(path).__name__}")
    return path


def resolve_destination(obj: Mapping[str, Any], ref: ModelRef, models_root: str | os.PathLike[str]) -> Path:
    """The model's destination folder, checked against the models root.

    ``spec.storage.path`` if set (absolute, normalised, strictly inside ``models_root``), else
    :func:`default_destination`. Raises :class:`DestinationError` explaining a refused path.
    """
    root = Path(os.path.normpath(os.path.abspath(models_root)))
    path = requested_path(obj)
    if path is None:
        return default_destination(root, ref)
    if "\x00" in path:
        raise DestinationError("spec.storage.path contains a NUL byte")
    if not os.path.isabs(path):
        raise DestinationError(f"spec.storage.path {path!r} is not an absolute path")
    dest = Path(os.path.normpath(path))
    if dest == root:
        raise DestinationError(
            f"spec.storage.path {path!r} is the models root itself; a model needs its own folder inside it"
        )
    if root not in dest.parents:
        raise DestinationError(f"spec.storage.path {path!r} is outside the models root {str(root)!r}")
    if dest.relative_to(root).parts[0] == AGENT_STATE_DIR:
        raise DestinationError(f"spec.storage.path {path!r} is inside the agent's own state folder")
    return dest


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


class DestinationRegistry:
    """Which model owns which folder: no two models may share a folder or nest one inside the other."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owners: dict[str, tuple[Path, str]] = {}

    def claim(self, key: str, path: Path, display: str) -> None:
        """Record that the model ``key`` owns ``path`` (replacing its earlier claim).

        Raises :class:`DestinationError` naming the other model when the folder overlaps its folder.
        """
        with self._lock:
            for other_key, (other_path, other_display) in self._owners.items():
                if other_key != key and _overlaps(path, other_path):
                    raise DestinationError(
                        f"destination {str(path)!r} overlaps {str(other_path)!r}, owned by {other_display}"
                    )
            self._owners[key] = (path, display)

    def add(self, key: str, path: Path, display: str) -> None:
        """Record an additional folder owned by ``key`` (e.g. a staging folder) without checks."""
        with self._lock:
            self._owners[f"{key}\x00{path}"] = (path, display)

    def release(self, key: str, path: Path | None = None) -> None:
        """Forget ``key``'s claim (or only its extra folder ``path``)."""
        with self._lock:
            if path is None:
                self._owners.pop(key, None)
            else:
                self._owners.pop(f"{key}\x00{path}", None)

    def owner(self, path: Path) -> str | None:
        """The key of the model owning a folder overlapping ``path``, if any."""
        with self._lock:
            for key, (owned, _) in self._owners.items():
                if _overlaps(path, owned):
                    return key.split("\x00", 1)[0]
        return None

    def owners(self, path: Path) -> set[str]:
        """The keys of every model owning a folder overlapping ``path``."""
        with self._lock:
            return {key.split("\x00", 1)[0] for key, (owned, _) in self._owners.items() if _overlaps(path, owned)}


@dataclass(frozen=True)
class FolderOwner:
    """The contents of a model folder's owner file."""

    ref: ModelRef
    storage_uri: str
    """The URI of the download started (and maybe finished) in the folder."""
    commit: str | None
    """The commit downloaded, once the download completed."""
    complete: bool
    """True once the download of ``storage_uri`` finished and was verified."""

    def matches(self, ref: ModelRef) -> bool:
        """True when the folder belongs to ``ref``: same kind, namespace and name, and the same uid when
        both are known (a re-created model of the same name is a different owner)."""
        same = (self.ref.kind, self.ref.namespace, self.ref.name) == (ref.kind, ref.namespace, ref.name)
        return same and (not self.ref.uid or not ref.uid or self.ref.uid == ref.uid)


def write_owner(
    folder: Path, ref: ModelRef, storage_uri: str, *, commit: str | None = None, complete: bool = False
) -> None:
    """Create ``folder`` if needed and (atomically) record ``ref`` as its owner; ``OSError`` on failure."""
    path = folder / OWNER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "format": _OWNER_FORMAT,
        "kind": ref.kind,
        "namespace": ref.namespace,
        "name": ref.name,
        "uid": ref.uid,
        "storageUri": storage_uri,
        "commit": commit,
        "complete": complete,
        "updated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        temp.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def read_owner(folder: Path) -> FolderOwner | None:
    """The owner recorded in ``folder``; None when there is no owner file or it is not a valid one."""
    try:
        body = json.loads((folder / OWNER_FILE).read_text(encoding="utf-8"))
        if not isinstance(body, dict) or body.get("format") != _OWNER_FORMAT:
            return None
        ref = ModelRef(
            kind=body["kind"], namespace=body.get("namespace") or None, name=body["name"], uid=body.get("uid") or ""
        )
        uri = body.get("storageUri")
        commit = body.get("commit")
        if not isinstance(uri, str) or (commit is not None and not isinstance(commit, str)):
            return None
        return FolderOwner(ref, uri, commit, body.get("complete") is True)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_owned_folders(models_root: str | os.PathLike[str], ref: ModelRef) -> list[Path]:
    """Every folder under ``models_root`` whose owner file names ``ref`` (see :meth:`FolderOwner.matches`).

    Walks the directory tree without following symbolic links and without descending into a folder that
    has an owner file (model folders never nest) or into the agent's own state folders.
    """
    root = Path(os.path.abspath(models_root))
    found: list[Path] = []
    for current, dirnames, _ in os.walk(root):
        here = Path(current)
        dirnames[:] = sorted(d for d in dirnames if d != AGENT_STATE_DIR)
        if here == root or not (here / OWNER_FILE).is_file():
            continue
        dirnames[:] = []
        owner = read_owner(here)
        if owner is not None and owner.matches(ref):
            found.append(here)
    return found


__all__ = [
    "AGENT_STATE_DIR",
    "OWNER_FILE",
    "DestinationError",
    "DestinationRegistry",
    "FolderOwner",
    "default_destination",
    "find_owned_folders",
    "read_owner",
    "requested_path",
    "resolve_destination",
    "write_owner",
]
