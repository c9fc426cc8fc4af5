"""Where a model's files live on this node, and which model owns which folder."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelagent.agent.model_ref import BASE_MODEL, ModelRef


AGENT_STATE_DIR = ".modelagent"
"""Folder under the models root where the agent keeps its own state (never a model destination)."""


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


__all__ = [
    "AGENT_STATE_DIR",
    "DestinationError",
    "DestinationRegistry",
    "default_destination",
    "requested_path",
    "resolve_destination",
]
