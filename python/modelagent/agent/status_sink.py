"""Where the agent reports what it did with each model on this node.

The Gopher and the config parser talk to a :class:`StatusSink`; the implementations decide where the
state ends up: :class:`modelagent.agent.kubernetes_sink.KubernetesStatusSink` writes node labels and the
node's ConfigMap (what OME's controller reads), :class:`modelagent.agent.file_sink.FileStatusSink` writes
a JSON file for standalone use.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from modelagent._core import ModelEntry, ModelEntryError, parse_configmap_key

if TYPE_CHECKING:
    from modelagent.agent.model_ref import ModelRef

FINAL_STATUSES = frozenset({"Ready", "Failed"})
"""Statuses after which no progress object may remain on an entry."""

SETTABLE_STATUSES = frozenset({"Ready", "Updating", "Failed"})
"""Statuses accepted by :meth:`StatusSink.set_status` (``Deleted`` is expressed by :meth:`StatusSink.remove`)."""


@runtime_checkable
class StatusSink(Protocol):
    """The per-model state the agent publishes: a status (label + entry), a config summary and progress.

    Every method is thread-safe and idempotent: writing what is already there changes nothing.
    """

    def set_status(self, ref: ModelRef, status: str, *, reason: str | None = None) -> None:
        """Set the model's status (``Ready``, ``Updating`` or ``Failed``) on the label and the entry.

        The entry's ``config`` is kept. A ``Failed`` entry carries a top-level ``reason`` field (ignored by
        OME's controller); any other status clears it. ``Ready`` and ``Failed`` also clear ``progress``
        in the same write. Raises ``ValueError`` for any other status.
        """
        ...

    def set_config(self, ref: ModelRef, config: dict) -> None:
        """Set the entry's ``config`` object (ConfigMap ``config`` keys, camelCase), keeping its status."""
        ...

    def set_progress(self, ref: ModelRef, progress: dict | None) -> None:
        """Set the entry's ``progress`` object (wire-contract field names); ``None`` removes it."""
        ...

    def remove(self, ref: ModelRef) -> None:
        """Forget the model: its label and its entry are removed."""
        ...

    def known(self) -> dict[str, ModelEntry]:
        """The entries this sink currently holds, by ConfigMap key."""
        ...

    def heal(self, live_keys: set[str] | None = None) -> None:
        """Re-assert the desired state: restore missing or altered entries and labels (and, for Kubernetes,
        the ConfigMap's own labels and annotations); when ``live_keys`` is given, remove entries and labels
        whose ConfigMap key is not in it."""
        ...


# --- entry edits shared by the ConfigMap and file sinks -------------------------------------------------
# Entries are handled as plain dicts in wire form (ModelEntry.to_dict()) and serialised with
# ModelEntry.to_json() for Go-identical bytes; unknown fields written by other agents survive the edits.


def check_status(status: str) -> str:
    """``status`` as a plain string, or ``ValueError`` when :meth:`StatusSink.set_status` does not accept it."""
    value = str(getattr(status, "value", status))
    if value not in SETTABLE_STATUSES:
        raise ValueError(f"status must be one of Ready, Updating, Failed (Deleted means remove()), got {status!r}")
    return value


def parse_entry(text: str | bytes | None, key: str) -> dict[str, Any] | None:
    """The entry stored under ``key`` as a wire dict, or ``None`` when absent or unreadable."""
    if text is None:
        return None
    try:
        return ModelEntry.from_json(text, key=key).to_dict()
    except (ModelEntryError, ValueError, TypeError):
        return None


def entry_json(entry: Mapping[str, Any], key: str) -> str:
    """The exact bytes OME's agent would store for ``entry`` (raises ``ModelEntryError`` naming ``key``)."""
    return ModelEntry.from_dict(dict(entry), key=key).to_json()


def with_status(entry: Mapping[str, Any] | None, ref: ModelRef, status: str, reason: str | None) -> dict[str, Any]:
    """``entry`` (or a new one) with ``status``; ``reason`` kept on Failed (why) and Ready (a note, e.g. files
    that could only be checked by size); progress dropped when final."""
    out = copy.deepcopy(dict(entry)) if entry else {}
    out["name"] = ref.name
    out["status"] = status
    out.pop("reason", None)
    if status in ("Failed", "Ready") and reason:
        out["reason"] = reason
    if status in FINAL_STATUSES:
        out.pop("progress", None)
    return out


def with_config(entry: Mapping[str, Any] | None, ref: ModelRef, config: Mapping[str, Any]) -> dict[str, Any]:
    """``entry`` with its ``config`` replaced; a new entry starts as ``Ready`` (as OME's metadata write does)."""
    out: dict[str, Any] = copy.deepcopy(dict(entry)) if entry else {"name": ref.name, "status": "Ready"}
    out["name"] = ref.name
    out["config"] = copy.deepcopy(dict(config))
    return out


def with_progress(entry: Mapping[str, Any] | None, ref: ModelRef, progress: Mapping[str, Any] | None
                  ) -> dict[str, Any] | None:
    """``entry`` with ``progress`` set or removed; ``None`` (write nothing) when there is no entry yet or the
    entry is already final, so progress can never appear after ``Ready``/``Failed``."""
    if not entry:
        return None
    out = copy.deepcopy(dict(entry))
    if progress is None:
        out.pop("progress", None)
    elif out.get("status") in FINAL_STATUSES:
        return None
    else:
        out["progress"] = copy.deepcopy(dict(progress))
    return out


def label_key_for(configmap_key: str) -> str | None:
    """The node label key of the model a ConfigMap key names (``None`` when the key names no model)."""
    from modelagent.agent.model_ref import ModelRef

    parsed = parse_configmap_key(configmap_key)
    if parsed is None:
        return None
    kind, namespace, name = parsed
    try:
        return ModelRef(kind=kind, namespace=namespace, name=name).label_key
    except ValueError:
        return None


__all__ = [
    "FINAL_STATUSES",
    "SETTABLE_STATUSES",
    "StatusSink",
    "check_status",
    "entry_json",
    "label_key_for",
    "parse_entry",
    "with_config",
    "with_progress",
    "with_status",
]
