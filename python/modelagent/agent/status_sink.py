"""Where the agent reports what it did with each model on this node.

The Gopher and the config parser talk to a :class:`StatusSink`; the implementations decide where the
state ends up: :class:`modelagent.agent.kubernetes_sink.KubernetesStatusSink` writes node labels and the
node's ConfigMap (what OME's controller reads), :class:`modelagent.agent.file_sink.FileStatusSink` writes
a JSON file for standalone use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from modelagent import ModelEntry
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


__all__ = ["FINAL_STATUSES", "SETTABLE_STATUSES", "StatusSink"]
