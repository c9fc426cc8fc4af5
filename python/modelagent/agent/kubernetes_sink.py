"""The Kubernetes status sink: node labels (:class:`NodeLabelReconciler`) and the node's ConfigMap
(:class:`ConfigMapReconciler`), written in an order that a crash cannot turn into a false ``Ready``.

Order of writes (the label is what lets inference pods land on the node; the ConfigMap entry is what the
controller aggregates and what holds back the deletion of a model):

* ``set_status``: the label first, then the entry. When the model has no entry yet and the status is
  final, an ``Updating`` entry is written before the label, so no crash leaves a ``Ready`` label without
  an entry (the controller would never know of the model).
* ``remove``: the entry is set to ``Updating``, then the label is removed, then the entry. A crash in
  between leaves the label gone with an ``Updating`` entry, or a label with an ``Updating`` entry — never
  a ``Ready`` entry for a model whose label is already gone, and never a label whose entry is gone (which
  would let the controller finish deleting the model while pods can still be scheduled for it).

Each step is idempotent, so the next status write or healing pass completes an interrupted sequence.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from modelagent._core import ModelEntry
from modelagent.agent.configmap import ConfigMapReconciler
from modelagent.agent.model_ref import ModelRef
from modelagent.agent.node_labels import NodeLabelReconciler
from modelagent.agent.status_sink import FINAL_STATUSES, check_status, label_key_for

_log = logging.getLogger("modelagent.agent.kubernetes_sink")


class KubernetesStatusSink:
    """:class:`~modelagent.agent.status_sink.StatusSink` over node labels and the node's ConfigMap.

    Args:
        core_v1_api: a ``kubernetes.client.CoreV1Api``.
        node_name: this node.
        namespace: the namespace of the node's ConfigMap.
        label_retries: attempts per label write (``--node-label-retry``).
        configmap_retries: attempts per ConfigMap write.
        backoff: first delay between attempts, seconds.
    """

    def __init__(self, core_v1_api: Any, node_name: str, namespace: str, *, label_retries: int = 5,
                 configmap_retries: int = 5, backoff: float = 0.1) -> None:
        self.labels = NodeLabelReconciler(core_v1_api, node_name, label_retries, backoff=backoff)
        self.configmap = ConfigMapReconciler(core_v1_api, node_name, namespace, retries=configmap_retries,
                                             backoff=backoff)
        # Desired label value by ConfigMap key; the label key travels with it for healing.
        self._labels: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def set_status(self, ref: ModelRef, status: str, *, reason: str | None = None) -> None:
        """Label first, then the ConfigMap entry (see the module docstring for why)."""
        status = check_status(status)
        key = ref.configmap_key
        with self._lock:
            self._labels[key] = (ref.label_key, status)
            if status in FINAL_STATUSES and key not in self.configmap.desired():
                existing = self.configmap.known().get(key)
                if existing is None:
                    self.configmap.set_status(ref, "Updating")
            try:
                self.labels.set_label(ref, status)
            except Exception:
                # The entry must not get ahead of the label; healing writes both once the API recovers.
                self.configmap.remember_status(ref, status, reason=reason)
                raise
            self.configmap.set_status(ref, status, reason=reason)

    def set_config(self, ref: ModelRef, config: Mapping[str, Any]) -> None:
        """The ConfigMap entry's ``config``."""
        self.configmap.set_config(ref, config)

    def set_progress(self, ref: ModelRef, progress: Mapping[str, Any] | None) -> None:
        """The ConfigMap entry's ``progress``."""
        self.configmap.set_progress(ref, progress)

    def remove(self, ref: ModelRef) -> None:
        """Entry to ``Updating``, label removed, entry removed (see the module docstring)."""
        key = ref.configmap_key
        with self._lock:
            self._labels.pop(key, None)
            current = self.configmap.known().get(key)
            if current is not None and current.status != "Updating":
                self.configmap.set_status(ref, "Updating")
            self.labels.remove_label(ref)
            self.configmap.remove(ref)

    def known(self) -> dict[str, ModelEntry]:
        """The ConfigMap's entries (overlaid with the ones written by this agent)."""
        return self.configmap.known()

    def heal(self, live_keys: set[str] | None = None) -> None:
        """Heal the node labels (desired values restored; with ``live_keys``, labels of models that no
        longer exist removed), then the ConfigMap (entries, its labels and annotations)."""
        with self._lock:
            if live_keys is not None:
                for key in [k for k in self._labels if k not in live_keys]:
                    del self._labels[key]
            wanted = {label: value for label, value in self._labels.values()}
            keep: set[str] | None = None
            if live_keys is not None:
                keep = set(wanted)
                keep.update(label for label in map(label_key_for, live_keys) if label)
            # Same order as the single writes: labels lead, the ConfigMap follows.
            error: BaseException | None = None
            try:
                self.labels.apply(wanted, remove_unless=keep)
            except Exception as exc:  # noqa: BLE001 - the ConfigMap is healed regardless; re-raised below
                error = exc
            self.configmap.heal(live_keys)
            if error is not None:
                raise error


__all__ = ["KubernetesStatusSink"]
