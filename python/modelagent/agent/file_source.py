"""Standalone model source: BaseModel/ClusterBaseModel documents from a YAML file instead of a cluster.

The file holds one or more YAML documents (``---`` separated), each a ``BaseModel`` or
``ClusterBaseModel`` as it would be applied to a cluster (``apiVersion`` optional), plus optionally one
``kind: Node`` document whose ``metadata.labels`` are this node's labels (for ``nodeSelector`` /
node affinity). The file is polled (size, mtime, inode) and every change is turned into tasks:
new eligible model → Download, changed → DownloadOverride (the Gopher ignores changes that do not touch
``spec.storage``), removed or no longer eligible → Delete. A file that cannot be read or parsed is
reported and the last good state is kept, so a half-saved edit never deletes models.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from modelagent.agent.model_ref import BASE_MODEL, CLUSTER_BASE_MODEL, MODEL_KINDS, ModelRef
from modelagent.agent.tasks import GopherTask, TaskType
from modelagent.eligibility import is_eligible

_log = logging.getLogger("modelagent.agent.file_source")


class ModelFileError(ValueError):
    """The models file cannot be used; the message names the file and the document at fault."""


def load_models_file(path: str | os.PathLike[str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Read a models file: ``({configmap key: model object}, node labels)``.

    Model objects get ``metadata.namespace`` ``default`` when a BaseModel has none and a stable
    ``metadata.uid`` derived from kind, namespace and name when they have none. Raises
    :class:`ModelFileError` naming the file and document for unreadable YAML, a document that is not a
    mapping, an unknown kind, a missing name, or two documents for the same model.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ModelFileError(f"cannot read models file {path}: {error}") from error
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        raise ModelFileError(f"models file {path} is not valid YAML: {error}") from error
    models: dict[str, dict[str, Any]] = {}
    labels: dict[str, str] = {}
    for index, doc in enumerate(documents, start=1):
        where = f"{path} document {index}"
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ModelFileError(f"{where}: expected a mapping, got {type(doc).__name__}")
        kind = doc.get("kind")
        meta = doc.get("metadata")
        if kind == "Node":
            node_labels = meta.get("labels") if isinstance(meta, dict) else None
            if node_labels is None:
                continue
            if not isinstance(node_labels, dict):
                raise ModelFileError(f"{where}: Node metadata.labels must be a mapping")
            labels.update({str(k): str(v) for k, v in node_labels.items()})
            continue
        if kind not in MODEL_KINDS:
            raise ModelFileError(f"{where}: kind must be BaseModel, ClusterBaseModel or Node, got {kind!r}")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
            raise ModelFileError(f"{where}: {kind} has no metadata.name")
        obj = copy.deepcopy(doc)
        obj.setdefault("apiVersion", "ome.io/v1beta1")
        meta = obj["metadata"]
        if kind == BASE_MODEL and not meta.get("namespace"):
            meta["namespace"] = "default"
        if kind == CLUSTER_BASE_MODEL:
            meta.pop("namespace", None)
        if not meta.get("uid"):
            identity = f"{kind}/{meta.get('namespace', '')}/{meta['name']}"
            meta["uid"] = "standalone-" + hashlib.sha256(identity.encode()).hexdigest()[:24]
        try:
            ref = ModelRef.from_object(obj)
            key = ref.configmap_key
        except ValueError as error:
            raise ModelFileError(f"{where}: {error}") from error
        if key in models:
            raise ModelFileError(f"{where}: {ref.display} is defined twice")
        models[key] = obj
    return models, labels


def _spec_and_meta(obj: Mapping[str, Any]) -> Any:
    meta = obj.get("metadata") or {}
    return (obj.get("spec"), meta.get("labels"), meta.get("annotations"))


class FileModelSource:
    """Watches a models file and submits Gopher tasks for its changes (see the module docstring).

    Args:
        path: the models YAML file.
        node_name: the synthetic node's name (``--node-name``, default the host name).
        submit: ``Gopher.submit`` (must not block).
        node_labels: labels of the synthetic node; a ``kind: Node`` document in the file adds to them.
        poll_interval: seconds between checks of the file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        node_name: str,
        submit: Callable[[GopherTask], None],
        *,
        node_labels: Mapping[str, str] | None = None,
        poll_interval: float = 0.5,
    ) -> None:
        self.path = Path(path)
        self.node_name = node_name
        self._submit = submit
        self._base_labels = dict(node_labels or {})
        self._poll_interval = poll_interval
        self._lock = threading.Lock()
        self._acted: dict[str, dict[str, Any]] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._loaded = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def node(self, labels: Mapping[str, str]) -> dict[str, Any]:
        """The synthetic Node object the eligibility rules see."""
        merged = {"kubernetes.io/hostname": self.node_name, **self._base_labels, **labels}
        return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.node_name, "labels": merged}}

    def start(self) -> FileModelSource:
        """Read the file once (raising :class:`ModelFileError` if it is unusable), then poll it in a thread."""
        self.poll(initial=True)
        self._thread = threading.Thread(target=self._run, name="file-model-source", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def is_ready(self) -> bool:
        """True once the file was read successfully."""
        return self._loaded.is_set()

    def live_keys(self) -> set[str] | None:
        """ConfigMap keys of the models the file currently places on this node (None before the first read)."""
        with self._lock:
            return set(self._acted) if self._loaded.is_set() else None

    def _run(self) -> None:
        while not self._stop.wait(self._poll_interval):
            try:
                self.poll()
            except ModelFileError:
                pass  # reported by poll(); the last good state stays
            except Exception:  # noqa: BLE001 - the poller must survive anything
                _log.exception("polling %s failed", self.path)

    def poll(self, *, initial: bool = False) -> bool:
        """Re-read the file if it changed and submit tasks; True when it was re-read."""
        try:
            st = os.stat(self.path)
        except OSError as error:
            message = f"cannot read models file {self.path}: {error.strerror or error}"
            self._report(message, initial)
            return False
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return False
        try:
            models, labels = load_models_file(self.path)
        except ModelFileError as error:
            self._stamp = stamp
            self._report(str(error), initial)
            return False
        self._stamp = stamp
        if self.last_error is not None:
            _log.info("models file %s is usable again", self.path)
        self.last_error = None
        self._apply(models, labels)
        self._loaded.set()
        return True

    def _report(self, message: str, initial: bool) -> None:
        if message != self.last_error:
            _log.error("%s; keeping the last good state", message)
        self.last_error = message
        if initial:
            raise ModelFileError(message)

    def _apply(self, models: dict[str, dict[str, Any]], labels: dict[str, str]) -> None:
        node = self.node(labels)
        with self._lock:
            wanted: dict[str, dict[str, Any]] = {}
            for key, obj in models.items():
                verdict = is_eligible(obj, node)
                if verdict:
                    wanted[key] = obj
                else:
                    _log.info("%s is not for this node: %s", ModelRef.from_object(obj).display, verdict.reason)
            for key, old in list(self._acted.items()):
                if key not in wanted:
                    reason = "removed from the file" if key not in models else "no longer placed on this node"
                    self._emit(TaskType.DELETE, old, reason)
                    del self._acted[key]
            for key, obj in wanted.items():
                old = self._acted.get(key)
                if old is None:
                    self._emit(TaskType.DOWNLOAD, obj, "new in the file")
                elif old["metadata"]["uid"] != obj["metadata"]["uid"]:
                    self._emit(TaskType.DELETE, old, "replaced by a new object")
                    self._emit(TaskType.DOWNLOAD, obj, "new in the file")
                elif _spec_and_meta(old) != _spec_and_meta(obj):
                    self._emit(TaskType.DOWNLOAD_OVERRIDE, obj, "changed in the file")
                self._acted[key] = obj

    def _emit(self, task_type: TaskType, obj: Mapping[str, Any], why: str) -> None:
        task = GopherTask.for_object(task_type, obj)
        _log.info("%s: %s (%s)", task.ref.display, task_type, why)
        try:
            self._submit(task)
        except Exception:  # noqa: BLE001 - one model's failure must not stop the others
            _log.exception("%s: submitting the %s task failed", task.ref.display, task_type)


__all__ = ["FileModelSource", "ModelFileError", "load_models_file"]
