"""Node labels: one ``models.ome.io/...`` label per model on this agent's Node, valued Ready/Updating/Failed.

Labels are written with JSON patches (``application/json-patch+json``): ``add`` to set a value, ``remove``
for a deleted model. Every attempt reads the Node first, so writes are idempotent and conflicts resolve
by re-reading; a Node that does not exist is not an error (logged once per write).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from modelagent._core import label_key_problem, label_value_problem, node_label_value
from modelagent.agent.model_ref import ModelRef

_log = logging.getLogger("modelagent.agent.node_labels")

LABEL_DOMAIN = "models.ome.io/"
MODEL_LABEL_VALUES = frozenset({"Ready", "Updating", "Failed"})

# Status codes where another attempt (after re-reading the Node) can succeed.
_RETRYABLE = frozenset({409, 422, 429, 500, 502, 503, 504})


class NodeLabelError(RuntimeError):
    """Labels could not be written after every attempt; the message names the node, labels and last error."""


def escape_pointer(token: str) -> str:
    """A JSON-pointer token (RFC 6901): ``~`` becomes ``~0`` and ``/`` becomes ``~1``."""
    return token.replace("~", "~0").replace("/", "~1")


def label_patch(current: Mapping[str, str] | None, changes: Mapping[str, str | None],
                resource_version: str | None = None) -> list[dict[str, Any]]:
    """The JSON patch that takes a Node with labels ``current`` (``None``: no labels map) to ``changes``
    (``None`` value = remove the label). Labels already at their value and absent labels to remove give no
    operation; the result is ``[]`` when nothing changes.

    A Node without a labels map gets the whole map in one ``add``, guarded by a ``test`` of
    ``resource_version`` so it cannot replace labels someone added in the meantime.
    """
    ops: list[dict[str, Any]] = []
    if current is None:
        added = {k: v for k, v in sorted(changes.items()) if v is not None}
        if not added:
            return []
        if resource_version:
            ops.append({"op": "test", "path": "/metadata/resourceVersion", "value": resource_version})
        ops.append({"op": "add", "path": "/metadata/labels", "value": added})
        return ops
    for key, value in sorted(changes.items()):
        path = "/metadata/labels/" + escape_pointer(key)
        if value is None:
            if key in current:
                ops.append({"op": "remove", "path": path})
        elif current.get(key) != value:
            ops.append({"op": "add", "path": path, "value": value})
    return ops


def is_model_label(key: str, value: str | None = None) -> bool:
    """True for a label key of the form OME uses for models (``models.ome.io/clusterbasemodel.<name>`` or
    ``models.ome.io/<ns>.basemodel.<name>``) and, when given, a model status value."""
    if not key.startswith(LABEL_DOMAIN):
        return False
    rest = key[len(LABEL_DOMAIN):]
    if not (rest.startswith("clusterbasemodel.") or ".basemodel." in rest):
        return False
    return value is None or value in MODEL_LABEL_VALUES


class NodeLabelReconciler:
    """Writes this node's model labels.

    Args:
        core_v1_api: a ``kubernetes.client.CoreV1Api``.
        node_name: the Node the agent runs on.
        retries: attempts per write (each re-reads the Node); conflicts (409), failed patch tests (422),
            throttling and server errors are retried with exponential backoff.
        backoff: first delay between attempts in seconds (doubled each time, at most 5 s).
    """

    def __init__(self, core_v1_api: Any, node_name: str, retries: int = 5, *, backoff: float = 0.1) -> None:
        if retries < 1:
            raise ValueError(f"retries must be at least 1, got {retries}")
        if not node_name:
            raise ValueError("node_name must not be empty")
        self.api = core_v1_api
        self.node_name = node_name
        self.retries = retries
        self.backoff = backoff
        self._lock = threading.Lock()

    # -------------------------------------------------------------------------------------------- public

    def reconcile(self, ref: ModelRef, status: str) -> bool:
        """Set the label of ``ref`` to ``status`` (Ready, Updating, Failed) or remove it (Deleted).

        Returns ``False`` when the Node does not exist (nothing written), ``True`` otherwise.
        """
        value = node_label_value(str(getattr(status, "value", status)))
        return self.apply({ref.label_key: value})

    def set_label(self, ref: ModelRef, status: str) -> bool:
        """Set the label of ``ref`` to ``status`` (Ready, Updating or Failed)."""
        value = node_label_value(str(getattr(status, "value", status)))
        if value is None:
            raise ValueError(f"{ref.display}: status Deleted removes the label; use remove_label()")
        return self.apply({ref.label_key: value})

    def remove_label(self, ref: ModelRef) -> bool:
        """Remove the label of ``ref`` (no request is sent when it is absent)."""
        return self.apply({ref.label_key: None})

    def labels(self) -> dict[str, str] | None:
        """The model labels currently on the Node (``None`` when the Node does not exist)."""
        node = self._read()
        if node is None:
            return None
        labels = node.metadata.labels or {}
        return {k: v for k, v in labels.items() if is_model_label(k)}

    def apply(self, changes: Mapping[str, str | None], *, remove_unless: set[str] | None = None) -> bool:
        """Bring the Node's labels to ``changes`` (``None`` = absent) in one patch per attempt.

        ``remove_unless``: also remove every model label (:func:`is_model_label`) whose key is neither in
        this set nor in ``changes`` (used to drop labels of models that no longer exist).
        Returns ``False`` when the Node does not exist, ``True`` once the labels are as asked.
        Raises ``ValueError`` for an invalid label key or value, :class:`NodeLabelError` when every attempt
        failed.
        """
        for key, value in changes.items():
            problem = label_key_problem(key)
            if problem:
                raise ValueError(f"invalid node label key {key!r}: {problem}")
            if value is not None:
                problem = label_value_problem(value)
                if problem:
                    raise ValueError(f"invalid value {value!r} for node label {key!r}: {problem}")
        with self._lock:
            return self._apply(dict(changes), remove_unless)

    # ------------------------------------------------------------------------------------------ internal

    def _apply(self, changes: dict[str, str | None], remove_unless: set[str] | None) -> bool:
        delay = self.backoff
        last: BaseException | None = None
        for attempt in range(1, self.retries + 1):
            try:
                node = self._read()
                if node is None:
                    _log.warning('node "%s" not found; labels %s not written', self.node_name, sorted(changes))
                    return False
                current = node.metadata.labels
                wanted = dict(changes)
                if remove_unless is not None:
                    for key, value in (current or {}).items():
                        if key not in wanted and key not in remove_unless and is_model_label(key, value):
                            wanted[key] = None
                patch = label_patch(current, wanted, node.metadata.resource_version)
                if not patch:
                    return True
                self.api.patch_node(self.node_name, patch)
                return True
            except ApiException as error:
                if error.status == 404:
                    _log.warning('node "%s" not found; labels %s not written', self.node_name, sorted(changes))
                    return False
                if error.status not in _RETRYABLE:
                    raise NodeLabelError(self._message(changes, attempt, error)) from error
                last = error
            except (HTTPError, OSError) as error:
                last = error
            if attempt < self.retries:
                _log.info('labels of node "%s": attempt %d failed (%s); retrying', self.node_name, attempt,
                          _describe(last))
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        assert last is not None
        raise NodeLabelError(self._message(changes, self.retries, last)) from last

    def _read(self) -> Any:
        try:
            return self.api.read_node(self.node_name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _message(self, changes: Mapping[str, str | None], attempts: int, error: BaseException) -> str:
        wanted = ", ".join(f"{k}={'(removed)' if v is None else v}" for k, v in sorted(changes.items()))
        return (f'cannot write labels of node "{self.node_name}" ({wanted}) after {attempts} '
                f"attempt{'s' * (attempts != 1)}, last error: {_describe(error)}")


def _describe(error: BaseException | None) -> str:
    if isinstance(error, ApiException):
        return f"HTTP {error.status} {error.reason}"
    return f"{type(error).__name__}: {error}"


__all__ = [
    "LABEL_DOMAIN",
    "NodeLabelError",
    "NodeLabelReconciler",
    "escape_pointer",
    "is_model_label",
    "label_patch",
]
