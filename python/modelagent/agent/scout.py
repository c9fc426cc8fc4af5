"""The Scout: the Kubernetes model source, turning watch events into Gopher tasks.

A :class:`Scout` list-watches BaseModels (all namespaces), ClusterBaseModels and this agent's own Node
through three :class:`modelagent.informer.Informer` instances sharing one ``ApiClient``, decides which
models belong on this node (:func:`modelagent.eligibility.is_eligible`, scheduler semantics) and hands
``Download`` / ``DownloadOverride`` / ``Delete`` tasks to a non-blocking ``submit`` callable (the
Gopher's). It fixes OME v0.1.3's Scout: it watches the Node and re-evaluates every model when the node's
labels change, sends one Delete when a model starts terminating (not one per later update), sends a
Delete only to nodes that had the model, ignores status-, label-, annotation- and back-fill-only
changes, and at start-up removes what models deleted while the agent was down left behind.

State is kept per ConfigMap key, all under one lock; every decision compares the newest object with
the last one the Scout acted on, so events may be repeated (re-lists) without repeating tasks.
See docs/scout.md.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from modelagent._core import parse_configmap_key
from modelagent.agent.model_ref import BASE_MODEL, CLUSTER_BASE_MODEL, ModelRef
from modelagent.agent.shape_filter import TENSORRT_LLM_FORMAT, instance_type_of
from modelagent.agent.tasks import GopherTask, TaskType
from modelagent.eligibility import is_eligible, node_to_dict

if TYPE_CHECKING:
    from modelagent.informer import Informer, InformerConfig

__all__ = ["KubernetesModelSource", "Scout", "download_changes", "make_informer_factory", "model_label_refs"]

log = logging.getLogger(__name__)

GROUP = "ome.io"
VERSION = "v1beta1"
LABEL_DOMAIN = "models.ome.io/"

#: ``(path, description)`` of every spec field whose change alters what is downloaded or where it goes.
#: Fields the agent fills itself after a download (modelType, modelArchitecture, modelFramework,
#: modelParameterSize, maxTokens, modelCapabilities, quantization, modelConfiguration, the modelFormat
#: version) are deliberately absent, so back-filling never re-triggers a download.
_DOWNLOAD_FIELDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("storage", "storageUri"), "spec.storage.storageUri"),
    (("storage", "path"), "spec.storage.path"),
    (("storage", "key"), "spec.storage.key"),
    (("storage", "parameters"), "spec.storage.parameters"),
    (("additionalMetadata", "type"), "spec.additionalMetadata.type"),
)


class KnownEntries(Protocol):
    """What the Scout needs of a status sink (:class:`modelagent.agent.status_sink.StatusSink` has it)."""

    def known(self) -> Mapping[str, Any]:
        """The entries the sink holds, by ConfigMap key."""
        ...


def _dig(obj: Any, path: Iterable[str]) -> Any:
    for part in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(part)
    return obj


def download_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The spec fields (dotted paths) that differ between two versions of a model and matter for its
    download: storage URI (the revision is part of it), path, secret name, storage parameters, the
    ``additionalMetadata`` type, and the model format *name* when it was already set (filling an empty
    format is what the agent's own back-fill does). Empty when only labels, annotations, status or
    back-filled fields changed.
    """
    changed = [name for path, name in _DOWNLOAD_FIELDS
               if _dig(old.get("spec"), path) != _dig(new.get("spec"), path)]
    old_format = _dig(old.get("spec"), ("modelFormat", "name"))
    new_format = _dig(new.get("spec"), ("modelFormat", "name"))
    if old_format and old_format != new_format:
        changed.append("spec.modelFormat.name")
    return changed


_SLIM_METADATA = ("name", "namespace", "uid", "deletionTimestamp")
_SLIM_SPEC = ("storage", "modelFormat", "additionalMetadata")


def _slim(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What the Scout keeps of a model between events: identity, termination and the spec fields that
    placement and change detection read. (The informer keeps whole objects compactly; holding thousands of
    whole dicts here would undo that.)"""
    slim: dict[str, Any] = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind")}
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping):
        slim["metadata"] = {k: metadata[k] for k in _SLIM_METADATA if k in metadata}
    spec = obj.get("spec")
    if isinstance(spec, Mapping):
        slim["spec"] = {k: spec[k] for k in _SLIM_SPEC if k in spec}
    elif spec is not None:
        slim["spec"] = spec
    return slim


def _deletion_timestamp(obj: Mapping[str, Any]) -> Any:
    return _dig(obj, ("metadata", "deletionTimestamp"))


def _stub_object(ref: ModelRef) -> dict[str, Any]:
    """The identity-only object a Delete carries for a model that no longer exists in the cluster."""
    metadata: dict[str, Any] = {"name": ref.name}
    if ref.namespace:
        metadata["namespace"] = ref.namespace
    if ref.uid:
        metadata["uid"] = ref.uid
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": ref.kind, "metadata": metadata}


def _ref_from_key(key: str) -> ModelRef | None:
    parsed = parse_configmap_key(key)
    if parsed is None:
        return None
    kind, namespace, name = parsed
    try:
        ref = ModelRef(kind=kind, namespace=namespace, name=name)
    except ValueError:
        return None
    # A truncated key parses into truncated parts; only a key that round-trips names a real model.
    return ref if ref.configmap_key == key else None


def model_label_refs(labels: Iterable[str]) -> dict[str, ModelRef]:
    """The model labels among a Node's label keys, by label key: every ``models.ome.io/...`` label whose
    key reads back as a BaseModel (``<ns>.basemodel.<name>``) or ClusterBaseModel
    (``clusterbasemodel.<name>``) label exactly. A hash-truncated key either does not read back (left out)
    or reads back as a model named like the truncated text, which shares the label key but not the
    ConfigMap key of the real model.
    """
    refs: dict[str, ModelRef] = {}
    for label in labels:
        if not label.startswith(LABEL_DOMAIN):
            continue
        rest = label[len(LABEL_DOMAIN):]
        kind, namespace, name = CLUSTER_BASE_MODEL, None, rest.removeprefix("clusterbasemodel.")
        if name == rest:
            namespace, separator, name = rest.partition(".basemodel.")
            if not separator:
                continue
            kind = BASE_MODEL
        try:
            ref = ModelRef(kind=kind, namespace=namespace, name=name)
        except ValueError:
            continue
        if ref.label_key == label:
            refs[label] = ref
    return refs


def _placement_labels(node: Mapping[str, Any] | None) -> dict[str, str]:
    """A node's labels without the agent's own model labels: status writes change those all the time and
    must not make the Scout re-evaluate every model."""
    labels = dict(_dig(node, ("metadata", "labels")) or {})
    for label in model_label_refs(labels):
        del labels[label]
    return labels


@dataclass
class _Tracked:
    """What the Scout last decided for one model (by ConfigMap key)."""

    ref: ModelRef
    obj: Mapping[str, Any]
    """The slim copy of the last object decided on (see ``_slim``)."""
    placed: bool = False
    """This node has, or is getting, the model: a Download was sent and no Delete since."""
    deleting: bool = False
    """The object is terminating and has been dealt with (a Delete sent if this node had it)."""


def make_informer_factory(config: InformerConfig | None = None) -> Callable[[Any, str, str], Informer]:
    """The Scout's default way to build its informers (``kind`` is ``Node``, ``BaseModel`` or
    ``ClusterBaseModel``), all with ``config`` (timeouts, paging, backoff)."""
    from modelagent.informer import Informer

    def make(api_client: Any, kind: str, node_name: str) -> Informer:
        if kind == "Node":
            return Informer.for_node(api_client, node_name, config=config)
        if kind == BASE_MODEL:
            return Informer.for_base_models(api_client, config=config)
        if kind == CLUSTER_BASE_MODEL:
            return Informer.for_cluster_base_models(api_client, config=config)
        raise ValueError(f"the Scout watches Node, BaseModel and ClusterBaseModel, not {kind!r}")

    return make


class Scout:
    """The Kubernetes model source (OME's Scout): watches models and this node, submits Gopher tasks.

    ``submit`` must not block (``Gopher.submit``); it is called with the Scout's lock held, from the
    informers' threads and from :meth:`start`'s start-up pass, so tasks for one model arrive in the order
    the Scout decided them. ``sink`` (the status sink) supplies, at start-up, the models this node already
    has (:meth:`StatusSink.known`); with none, only node labels tell. ``namespace`` is the agent's own
    namespace (``--namespace``), kept for callers and logs.

    Lifecycle: :meth:`start` starts the informers and returns; once all three caches are synced and the
    Node exists, the start-up pass runs and :meth:`is_ready` becomes true. :meth:`stop` stops everything.
    """

    def __init__(self, api_client: Any, node_name: str, submit: Callable[[GopherTask], None], *,
                 namespace: str = "ome", sink: KnownEntries | None = None,
                 informer_factory: Callable[[Any, str, str], Any] | None = None) -> None:
        if not node_name:
            raise ValueError("Scout needs the node name (--node-name / NODE_NAME)")
        self.api_client = api_client
        self.node_name = node_name
        self.namespace = namespace
        self._submit = submit
        self._sink = sink
        self._informer_factory = informer_factory or make_informer_factory()
        self._lock = threading.RLock()
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._seen: dict[str, Mapping[str, Any]] = {}
        self._tracked: dict[str, _Tracked] = {}
        self._known_keys: set[str] = set()
        self._known_labels: set[str] = set()
        self._node: dict[str, Any] | None = None
        self._node_seen = threading.Event()
        self._informers: dict[str, Any] = {}
        self._starter: threading.Thread | None = None

    # ----------------------------------------------------------------------------------------- lifecycle

    def start(self) -> Scout:
        """Start the three informers and a thread that runs the start-up pass once they are synced."""
        with self._lock:
            if self._informers:
                raise RuntimeError("Scout already started")
            for kind in ("Node", BASE_MODEL, CLUSTER_BASE_MODEL):
                informer = self._informer_factory(self.api_client, kind, self.node_name)
                if kind == "Node":
                    informer.add_handlers(on_add=self._on_node, on_update=self._on_node_update,
                                          on_delete=self._on_node_delete)
                else:
                    informer.add_handlers(on_add=self._on_model, on_update=self._on_model_update,
                                          on_delete=self._on_model_delete)
                self._informers[kind] = informer
        for informer in self._informers.values():
            informer.start()
        self._starter = threading.Thread(target=self._wait_and_start, name="scout-start", daemon=True)
        self._starter.start()
        return self

    def _wait_and_start(self) -> None:
        for informer in self._informers.values():
            while not informer.wait_for_sync(0.25):
                if self._stopping.is_set():
                    return
        warned = False
        while not self._node_seen.wait(0.25):
            if self._stopping.is_set():
                return
            if not warned:
                log.warning('node "%s" not found; models are evaluated once it appears', self.node_name)
                warned = True
        # Read outside the lock: the sink may ask the API server, and informer threads must not wait on it.
        known: set[str] = set()
        if self._sink is not None:
            try:
                known = set(self._sink.known())
            except Exception:
                log.exception("reading the status sink's known models failed; starting without them")
        with self._lock:
            self._start_pass(known)

    def stop(self) -> None:
        """Stop the informers. No task is submitted once this returns (a decision in progress on another
        thread finishes first: the flag is set under the Scout's lock)."""
        with self._lock:
            self._stopping.set()
            informers = list(self._informers.values())
        for informer in informers:
            informer.stop()
        if self._starter is not None and self._starter is not threading.current_thread():
            self._starter.join(1.0)

    def __enter__(self) -> Scout:  # noqa: PYI034 - Scout is not meant to be subclassed
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def is_ready(self) -> bool:
        """True once the caches synced, the Node was seen and the start-up pass ran (for ``/readyz``)."""
        return self._ready.is_set()

    def wait_until_ready(self, timeout: float | None = None) -> bool:
        """Block until :meth:`is_ready` (or ``timeout`` seconds); returns whether it is ready."""
        return self._ready.wait(timeout)

    def live_keys(self) -> set[str] | None:
        """ConfigMap keys of the models this node should hold now (for :meth:`StatusSink.heal`).

        ``None`` until ready: before the start-up pass the Scout cannot tell a stale entry from a model
        it has not seen yet.
        """
        with self._lock:
            if not self._ready.is_set():
                return None
            return {key for key, tracked in self._tracked.items() if tracked.placed}

    def node(self) -> dict[str, Any] | None:
        """The Scout's current copy of this agent's Node (a dict), or ``None`` before it was seen."""
        with self._lock:
            return self._node

    # ------------------------------------------------------------------------------------------ decisions

    def _emit(self, task_type: str, ref: ModelRef, obj: Mapping[str, Any] | None, why: str) -> None:
        if self._stopping.is_set():
            return
        log.info("%s: %s (%s)", ref.display, task_type, why)
        if obj is None:
            obj = _stub_object(ref)
        task = GopherTask(TaskType(task_type), ref, copy.deepcopy(dict(obj)))
        try:
            self._submit(task)
        except Exception:
            log.exception("%s: submitting the %s task failed", ref.display, task_type)

    def _start_pass(self, known: set[str]) -> None:
        if self._ready.is_set() or self._stopping.is_set():
            return
        label_refs = model_label_refs(_dig(self._node, ("metadata", "labels")) or {})
        self._known_keys = known
        self._known_labels = set(label_refs)
        for obj in list(self._seen.values()):
            self._observe(obj)
        deleted: set[str] = set()
        why = "no such model exists any more (left from before this start)"
        for key in sorted(self._known_keys):
            ref = _ref_from_key(key)
            if ref is None:
                log.warning("status entry %r does not name a model; the status sink's healing removes it", key)
                continue
            self._emit("Delete", ref, None, why)
            deleted.add(ref.label_key)
        for label in sorted(self._known_labels - deleted):
            self._emit("Delete", label_refs[label], None, why)
        self._known_keys = set()
        self._known_labels = set()
        seen = len(self._seen)
        self._seen = {}
        self._ready.set()
        log.info('scout ready: %d models seen, %d for node "%s"', seen,
                 sum(1 for tracked in self._tracked.values() if tracked.placed), self.node_name)

    def _observe(self, obj: Mapping[str, Any], *, full: bool = True) -> None:
        """Decide for the newest version of a model: ``obj`` is the whole object from an event, or
        (``full=False``) the Scout's slim copy when the node changed."""
        try:
            ref = ModelRef.from_object(obj)
        except ValueError as exc:
            log.warning("ignoring a malformed model object: %s", exc)
            return
        key = ref.configmap_key
        prev = self._tracked.get(key)
        if prev is not None and prev.ref.uid and ref.uid and prev.ref.uid != ref.uid:
            # Deleted and re-created under the same name while the watch was away: the old one goes first.
            self._forget(prev.obj)
            prev = None
        had_it = (prev is not None and prev.placed) or key in self._known_keys or ref.label_key in self._known_labels
        self._known_keys.discard(key)
        self._known_labels.discard(ref.label_key)

        if _deletion_timestamp(obj):
            if prev is not None and prev.deleting:
                prev.obj = _slim(obj)
                return
            if had_it:
                self._emit("Delete", ref, obj, "the model is being deleted")
            self._tracked[key] = _Tracked(ref, _slim(obj), placed=False, deleting=True)
            return

        assert self._node is not None
        try:
            verdict = is_eligible(obj, self._node)
            eligible, reason = verdict.eligible, verdict.reason
        except (TypeError, ValueError) as exc:
            eligible, reason = False, f"eligibility could not be evaluated: {exc}"
        if not eligible:
            if had_it:
                self._emit("Delete", ref, obj, f"no longer for this node: {reason}")
            self._tracked[key] = _Tracked(ref, _slim(obj), placed=False)
            return
        if prev is None or not prev.placed:
            self._emit("Download", ref, obj if full else self._full_object(ref, obj), reason)
        else:
            changed = download_changes(prev.obj, obj)
            if changed:
                self._emit("DownloadOverride", ref, obj if full else self._full_object(ref, obj),
                           "changed: " + ", ".join(changed))
        self._tracked[key] = _Tracked(ref, _slim(obj), placed=True)

    def _full_object(self, ref: ModelRef, slim: Mapping[str, Any]) -> Mapping[str, Any]:
        """The informer's whole copy of a model the Scout only keeps slim (the slim one if it is gone)."""
        informer = self._informers.get(ref.kind)
        try:
            whole = informer.get(ref.namespace, ref.name) if informer is not None else None
        except Exception:
            log.exception("%s: reading the informer cache failed", ref.display)
            whole = None
        if whole is None or (ref.uid and _dig(whole, ("metadata", "uid")) != ref.uid):
            return slim
        return whole

    def _forget(self, obj: Mapping[str, Any]) -> None:
        try:
            ref = ModelRef.from_object(obj)
        except ValueError as exc:
            log.warning("ignoring the deletion of a malformed model object: %s", exc)
            return
        key = ref.configmap_key
        prev = self._tracked.get(key)
        if prev is not None and prev.ref.uid and ref.uid and prev.ref.uid != ref.uid:
            return  # an older incarnation; the tracked one is still there
        self._tracked.pop(key, None)
        had_it = key in self._known_keys or ref.label_key in self._known_labels
        self._known_keys.discard(key)
        self._known_labels.discard(ref.label_key)
        if prev is not None:
            if prev.deleting:
                return
            had_it = had_it or prev.placed
        if had_it:
            self._emit("Delete", ref, obj, "the model was deleted")

    def _reshape(self, before: Mapping[str, Any] | None, node: Mapping[str, Any]) -> None:
        """A new instance type may mean a new TensorRT-LLM shape: every placed ``tensorrtllm`` model gets a
        DownloadOverride; the Gopher re-downloads those whose shape alias changed and ignores the rest."""
        old_type = instance_type_of(_dig(before, ("metadata", "labels")))
        new_type = instance_type_of(_dig(node, ("metadata", "labels")))
        if before is None or old_type == new_type:
            return
        for tracked in list(self._tracked.values()):
            if tracked.placed and not tracked.deleting and \
                    _dig(tracked.obj, ("spec", "modelFormat", "name")) == TENSORRT_LLM_FORMAT:
                self._emit("DownloadOverride", tracked.ref, self._full_object(tracked.ref, tracked.obj),
                           f"node instance type changed from {old_type or 'none'} to {new_type or 'none'}")

    def _reevaluate(self) -> None:
        for tracked in list(self._tracked.values()):
            if not tracked.deleting:
                self._observe(tracked.obj, full=False)

    # ------------------------------------------------------------------------------------------- handlers

    @staticmethod
    def _key_of(obj: Mapping[str, Any]) -> str | None:
        try:
            return ModelRef.from_object(obj).configmap_key
        except ValueError:
            return None

    def _on_model(self, obj: Mapping[str, Any]) -> None:
        key = self._key_of(obj)
        with self._lock:
            if self._ready.is_set():
                self._observe(obj)
            elif key is not None:
                self._seen[key] = obj

    def _on_model_update(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        self._on_model(new)

    def _on_model_delete(self, obj: Mapping[str, Any]) -> None:
        key = self._key_of(obj)
        with self._lock:
            if self._ready.is_set():
                self._forget(obj)
            elif key is not None:
                current = self._seen.get(key)
                if current is None or _dig(current, ("metadata", "uid")) == _dig(obj, ("metadata", "uid")):
                    self._seen.pop(key, None)

    def _on_node(self, node: Any) -> None:
        node = node_to_dict(node)
        if _dig(node, ("metadata", "name")) != self.node_name:
            return
        with self._lock:
            before = self._node
            self._node = node
            self._node_seen.set()
            if not self._ready.is_set():
                return
            if _placement_labels(before) != _placement_labels(node):
                log.info('node "%s" labels changed; re-evaluating %d models', self.node_name, len(self._tracked))
                self._reevaluate()
                self._reshape(before, node)

    def _on_node_update(self, old: Any, new: Any) -> None:
        self._on_node(new)

    def _on_node_delete(self, node: Any) -> None:
        log.warning('node "%s" was deleted; keeping its last known labels', self.node_name)


KubernetesModelSource = Scout
"""The design's name for the Kubernetes model source."""
