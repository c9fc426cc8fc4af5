"""The node's model ConfigMap: one entry per model, read by OME's BaseModel controller.

The ConfigMap is named after the node and lives in the agent's namespace. It always carries the labels
``models.ome/basemodel-status: "true"`` and ``node: <node>`` (the controller selects ConfigMaps by the
first) and the annotations ``models.ome.io/node-name`` and ``models.ome.io/managed-by: model-agent``.

Every write reads the ConfigMap, changes it and writes it back with its ``resourceVersion``; a conflict
(someone wrote in between) re-reads and tries again. The reconciler remembers the entries it wrote
(desired state) so :meth:`ConfigMapReconciler.heal` can put back what was deleted or edited by hand.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from modelagent._core import ModelEntry, ModelEntryError, parse_configmap_key
from modelagent.agent.model_ref import ModelRef
from modelagent.agent.status_sink import (
    check_status,
    entry_json,
    parse_entry,
    with_config,
    with_progress,
    with_status,
)

_log = logging.getLogger("modelagent.agent.configmap")

STATUS_LABEL = "models.ome/basemodel-status"
NODE_LABEL = "node"
NODE_NAME_ANNOTATION = "models.ome.io/node-name"
MANAGED_BY_ANNOTATION = "models.ome.io/managed-by"
MANAGED_BY = "model-agent"
MAX_DATA_BYTES = 1048576
"""The API server's limit on a ConfigMap's data (sum of the values' UTF-8 bytes)."""

_RETRYABLE = frozenset({409, 429, 500, 502, 503, 504})

# A change to the data map: edits it in place, returns True when it changed something.
Mutation = Callable[[dict[str, str]], bool]


class ConfigMapError(RuntimeError):
    """The ConfigMap could not be written; the message names it and the last error."""


def data_size(data: Mapping[str, str]) -> int:
    """Bytes the API server counts against :data:`MAX_DATA_BYTES` for a ``data`` map."""
    return sum(len(value.encode()) for value in data.values())


class ConfigMapReconciler:
    """Maintains this node's ConfigMap of model entries.

    Args:
        core_v1_api: a ``kubernetes.client.CoreV1Api``.
        node_name: the node (and ConfigMap) name.
        namespace: where the ConfigMap lives (the agent's ``--namespace``, OME's default ``ome``).
        retries: attempts per write; conflicts, throttling, server and connection errors are retried.
        backoff: first delay between attempts in seconds (doubled each time, at most 5 s); a conflict is
            retried at once since the re-read already has the newer state.
        max_data_bytes: size limit of the data map (the API server's 1 MiB).
    """

    def __init__(self, core_v1_api: Any, node_name: str, namespace: str, *, retries: int = 5,
                 backoff: float = 0.1, max_data_bytes: int = MAX_DATA_BYTES) -> None:
        if not node_name:
            raise ValueError("node_name must not be empty")
        if not namespace:
            raise ValueError("namespace must not be empty")
        if retries < 1:
            raise ValueError(f"retries must be at least 1, got {retries}")
        self.api = core_v1_api
        self.node_name = node_name
        self.namespace = namespace
        self.retries = retries
        self.backoff = backoff
        self.max_data_bytes = max_data_bytes
        self._desired: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The ConfigMap's name (the node name)."""
        return self.node_name

    @property
    def labels(self) -> dict[str, str]:
        """The labels the ConfigMap always carries."""
        return {STATUS_LABEL: "true", NODE_LABEL: self.node_name}

    @property
    def annotations(self) -> dict[str, str]:
        """The annotations the ConfigMap always carries."""
        return {NODE_NAME_ANNOTATION: self.node_name, MANAGED_BY_ANNOTATION: MANAGED_BY}

    # ---------------------------------------------------------------------------------------------- writes

    def set_status(self, ref: ModelRef, status: str, *, reason: str | None = None) -> None:
        """Set the entry's status (config kept; progress cleared on Ready/Failed; ``reason`` on Failed)."""
        status = check_status(status)
        self._update(ref, lambda entry: with_status(entry, ref, status, reason))

    def set_config(self, ref: ModelRef, config: Mapping[str, Any]) -> None:
        """Set the entry's ``config`` (status kept; a new entry is ``Ready``, as in OME)."""
        ModelEntry.from_dict({"name": ref.name, "status": "Ready", "config": dict(config)}, key=ref.configmap_key)
        self._update(ref, lambda entry: with_config(entry, ref, config))

    def set_progress(self, ref: ModelRef, progress: Mapping[str, Any] | None) -> None:
        """Set or (``None``) remove the entry's ``progress``; ignored when the entry is missing or final."""
        if progress is not None:
            ModelEntry.from_dict({"name": ref.name, "status": "Updating", "progress": dict(progress)},
                                 key=ref.configmap_key)
        self._update(ref, lambda entry: with_progress(entry, ref, progress))

    def remember_status(self, ref: ModelRef, status: str, *, reason: str | None = None) -> None:
        """Record ``status`` as the entry's desired state without writing (the next :meth:`heal` writes it).
        Only for an entry this reconciler already remembers, so healing never replaces a stored config."""
        status = check_status(status)
        key = ref.configmap_key
        with self._lock:
            if key in self._desired:
                self._desired[key] = with_status(self._desired[key], ref, status, reason)

    def remove(self, ref: ModelRef) -> None:
        """Remove the model's entry (nothing is written when it or the ConfigMap is absent)."""
        key = ref.configmap_key
        with self._lock:
            self._desired.pop(key, None)

            def mutate(data: dict[str, str]) -> bool:
                return data.pop(key, None) is not None

            self._write(mutate, create=False, what=f"removing {ref.display}")

    def heal(self, live_keys: set[str] | None = None) -> None:
        """Put the ConfigMap back to the desired state.

        Recreates a deleted ConfigMap with every remembered entry, restores entries deleted or edited
        by hand, restores the ConfigMap's labels and annotations, and, when ``live_keys`` is given, forgets
        and removes every model entry whose key is not in it (models that no longer exist); keys that are
        not model keys belong to someone else and are kept.
        """
        with self._lock:
            if live_keys is not None:
                for key in [k for k in self._desired if k not in live_keys]:
                    del self._desired[key]
            desired = {key: entry_json(entry, key) for key, entry in self._desired.items()}

            def mutate(data: dict[str, str]) -> bool:
                changed = False
                if live_keys is not None:
                    # Only model entries are the agent's; keys other writers put here are left alone.
                    stale = [k for k in data if k not in live_keys and k not in desired and parse_configmap_key(k)]
                    for key in stale:
                        _log.info("removing ConfigMap entry %r: no such model", key)
                        del data[key]
                        changed = True
                for key, text in desired.items():
                    if data.get(key) != text:
                        _log.info("restoring ConfigMap entry %r", key)
                        data[key] = text
                        changed = True
                return changed

            self._write(mutate, create=bool(desired), what="healing")

    # ----------------------------------------------------------------------------------------------- reads

    def known(self) -> dict[str, ModelEntry]:
        """Entries in the ConfigMap, overlaid with the ones this reconciler wrote (unreadable ones left out).

        When the ConfigMap cannot be read, only the remembered entries are returned.
        """
        stored: dict[str, str] = {}
        try:
            configmap = self._read()
            if configmap is not None:
                stored = dict(configmap.data or {})
        except (ApiException, HTTPError, OSError) as error:
            _log.warning("cannot read ConfigMap %s/%s: %s", self.namespace, self.node_name, error)
        entries: dict[str, ModelEntry] = {}
        for key, text in stored.items():
            try:
                entries[key] = ModelEntry.from_json(text, key=key)
            except (ModelEntryError, ValueError) as error:
                _log.warning("ignoring unreadable ConfigMap entry %r: %s", key, error)
        with self._lock:
            for key, entry in self._desired.items():
                entries[key] = ModelEntry.from_dict(copy.deepcopy(entry), key=key)
        return entries

    def desired(self) -> dict[str, dict[str, Any]]:
        """A copy of the remembered entries (wire dicts) by key."""
        with self._lock:
            return copy.deepcopy(self._desired)

    # -------------------------------------------------------------------------------------------- internal

    def _update(self, ref: ModelRef, change: Callable[[dict[str, Any] | None], dict[str, Any] | None]) -> None:
        key = ref.configmap_key
        with self._lock:
            result: dict[str, Any] | None = None
            sent: dict[str, str] | None = None

            def mutate(data: dict[str, str]) -> bool:
                nonlocal result, sent
                sent = data
                base = self._desired.get(key) or parse_entry(data.get(key), key)
                result = change(base)
                if result is None:
                    return False
                text = entry_json(result, key)
                if data.get(key) == text:
                    return False
                data[key] = text
                return True

            try:
                self._write(mutate, create=True, what=f"writing {ref.display}")
                if result is not None and sent is not None and key in sent:
                    # what was stored, after the size guard may have trimmed it
                    result = parse_entry(sent[key], key) or result
            except Exception:
                # Remember the intent anyway: heal() writes it once the API server is reachable again.
                if result is None:
                    result = change(self._desired.get(key))
                raise
            finally:
                if result is not None:
                    self._desired[key] = result

    def _read(self) -> Any:
        try:
            return self.api.read_namespaced_config_map(self.node_name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _write(self, mutate: Mutation, *, create: bool, what: str) -> None:
        """Read, ``mutate`` the data, fit it under the size limit, restore labels/annotations, write back.
        ``create``: create the ConfigMap when absent (otherwise an absent ConfigMap means nothing to do)."""
        delay = self.backoff
        last: BaseException | None = None
        for attempt in range(1, self.retries + 1):
            try:
                configmap = self._read()
                if configmap is None:
                    data: dict[str, str] = {}
                    if not create or (not mutate(data) and not data):
                        return
                    self._fit(data)
                    body = client.V1ConfigMap(
                        metadata=client.V1ObjectMeta(name=self.node_name, namespace=self.namespace,
                                                     labels=self.labels, annotations=self.annotations),
                        data=data,
                    )
                    self.api.create_namespaced_config_map(self.namespace, body)
                    return
                data = dict(configmap.data or {})
                changed = mutate(data)
                changed = self._fit(data) or changed
                changed = self._restore_metadata(configmap.metadata) or changed
                if not changed:
                    return
                configmap.data = data
                self.api.replace_namespaced_config_map(self.node_name, self.namespace, configmap)
                return
            except ApiException as error:
                # 404 on replace: deleted since the read, so the next attempt creates it.
                if error.status not in _RETRYABLE and error.status != 404:
                    raise ConfigMapError(self._message(what, attempt, error)) from error
                last = error
                if error.status in (404, 409):
                    continue
            except (HTTPError, OSError) as error:
                last = error
            if attempt < self.retries:
                _log.info("ConfigMap %s/%s: %s failed (%s); retrying", self.namespace, self.node_name, what,
                          _describe(last))
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        assert last is not None
        raise ConfigMapError(self._message(what, self.retries, last)) from last

    def _restore_metadata(self, metadata: Any) -> bool:
        changed = False
        for field, wanted in (("labels", self.labels), ("annotations", self.annotations)):
            current = dict(getattr(metadata, field) or {})
            missing = {k: v for k, v in wanted.items() if current.get(k) != v}
            if missing:
                _log.info("restoring %s %s on ConfigMap %s/%s", field, sorted(missing), self.namespace,
                          self.node_name)
                current.update(missing)
                setattr(metadata, field, current)
                changed = True
        return changed

    def _fit(self, data: dict[str, str]) -> bool:
        """Drop ``decodedModelConfiguration`` from entries, largest first, until ``data`` fits the limit."""
        size = data_size(data)
        if size <= self.max_data_bytes:
            return False
        candidates = []
        for key, text in data.items():
            try:
                entry = json.loads(text)
                decoded = entry["config"]["decodedModelConfiguration"]
            except (ValueError, KeyError, TypeError):
                continue
            if decoded is not None:
                candidates.append((len(json.dumps(decoded)), key))
        changed = False
        for _, key in sorted(candidates, reverse=True):
            entry_dict = parse_entry(data[key], key)
            if entry_dict is None:
                continue
            entry_dict.get("config", {}).pop("decodedModelConfiguration", None)
            text = entry_json(entry_dict, key)
            size -= len(data[key].encode()) - len(text.encode())
            data[key] = text
            changed = True
            if key in self._desired:
                self._desired[key].get("config", {}).pop("decodedModelConfiguration", None)
            _log.warning("ConfigMap %s/%s is over %d bytes: dropped decodedModelConfiguration of %r",
                         self.namespace, self.node_name, self.max_data_bytes, key)
            if size <= self.max_data_bytes:
                break
        return changed

    def _message(self, what: str, attempts: int, error: BaseException) -> str:
        return (f"ConfigMap {self.namespace}/{self.node_name}: {what} failed after {attempts} "
                f"attempt{'s' * (attempts != 1)}, last error: {_describe(error)}")


def _describe(error: BaseException | None) -> str:
    if isinstance(error, ApiException):
        detail = ""
        try:
            detail = json.loads(error.body or "{}").get("message", "")
        except (ValueError, AttributeError):
            pass
        return f"HTTP {error.status} {error.reason}" + (f": {detail}" if detail else "")
    return f"{type(error).__name__}: {error}"


__all__ = [
    "MANAGED_BY",
    "MANAGED_BY_ANNOTATION",
    "MAX_DATA_BYTES",
    "NODE_LABEL",
    "NODE_NAME_ANNOTATION",
    "STATUS_LABEL",
    "ConfigMapError",
    "ConfigMapReconciler",
    "data_size",
]
