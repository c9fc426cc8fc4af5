"""Object store of the fake Kubernetes API server: resource types, resourceVersions, events, watchers.

Everything here runs under one lock, so every write gets the next global resourceVersion and
its watch event is queued to every matching watcher atomically with the write (no gaps, no
reordering). HTTP lives in ``kube_api``; this module knows nothing of sockets.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import queue
import random
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from modelagent.testing import _kube_patch as patches
from modelagent.testing import _kube_validation as v
from modelagent.testing._kube_selectors import FieldSelector, LabelSelector, SelectorError


@dataclass(frozen=True)
class ResourceType:
    """One served resource (plural name, kind, scope and how the real server treats it)."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    status_subresource: bool = False
    custom: bool = False
    extra_fields: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def verbs(self) -> list[str]:
        return ["create", "delete", "get", "list", "patch", "update", "watch"]


OME_GROUP = "ome.io"
OME_VERSION = "v1beta1"

RESOURCE_TYPES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "nodes", "node", "Node", False, ("no",), True, extra_fields=("spec.unschedulable",)),
    ResourceType("", "v1", "namespaces", "namespace", "Namespace", False, ("ns",), True),
    ResourceType("", "v1", "configmaps", "configmap", "ConfigMap", True, ("cm",)),
    ResourceType("", "v1", "secrets", "secret", "Secret", True, extra_fields=("type",)),
    ResourceType(OME_GROUP, OME_VERSION, "basemodels", "basemodel", "BaseModel", True, (), True, True),
    ResourceType(OME_GROUP, OME_VERSION, "clusterbasemodels", "clusterbasemodel", "ClusterBaseModel", False,
                 (), True, True),
)


class ApiError(Exception):
    """An error answered as a Kubernetes ``Status`` object."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            out["details"] = self.details
        out["code"] = self.code
        return out


def _details(rt: ResourceType, name: str, kind: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    if rt.group:
        out["group"] = rt.group
    out["kind"] = kind or rt.plural
    out.update(extra)
    return out


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.group_resource} "{name}" not found', _details(rt, name))


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{rt.group_resource} "{name}" already exists', _details(rt, name))


def conflict(rt: ResourceType, name: str, why: str) -> ApiError:
    return ApiError(
        409, "Conflict", f'Operation cannot be fulfilled on {rt.group_resource} "{name}": {why}', _details(rt, name)
    )


MODIFIED_CONFLICT = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(rt: ResourceType, name: str, errors: list[v.FieldError]) -> ApiError:
    # The message lists each distinct error once (Go's ToAggregate); the causes keep repeats.
    distinct = list(dict.fromkeys(str(e) for e in errors))
    text = distinct[0] if len(distinct) == 1 else "[" + ", ".join(distinct) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{rt.group_kind} "{name}" is invalid: {text}',
        _details(rt, name, rt.kind, causes=[e.cause() for e in errors]),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def internal_error(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]})


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Event:
    rv: int
    plural: str
    type: str  # ADDED / MODIFIED / DELETED
    obj: dict[str, Any]
    prev: dict[str, Any] | None = None


def object_fields(rt: ResourceType, obj: dict[str, Any]) -> dict[str, str]:
    """The field set a fieldSelector is matched against."""
    meta = obj.get("metadata", {})
    out = {"metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", "")}
    if "type" in rt.extra_fields:
        out["type"] = str(obj.get("type", ""))
    if "spec.unschedulable" in rt.extra_fields:
        out["spec.unschedulable"] = "true" if (obj.get("spec") or {}).get("unschedulable") else "false"
    return out


def parse_field_selector(rt: ResourceType, text: str | None) -> FieldSelector:
    try:
        selector = FieldSelector.parse(text)
    except SelectorError as exc:
        raise bad_request(str(exc)) from None
    allowed = {"metadata.name", "metadata.namespace", *rt.extra_fields}
    for name in sorted(selector.fields() - allowed):
        if rt.custom:
            raise bad_request(f'"{name}" is not a known field selector: only "metadata.name", "metadata.namespace"')
        raise bad_request(f"field label not supported: {name}")
    return selector


def parse_label_selector(text: str | None) -> LabelSelector:
    try:
        return LabelSelector.parse(text)
    except SelectorError as exc:
        raise bad_request(str(exc)) from None


_watcher_ids = itertools.count(1)


@dataclass
class Watcher:
    """One open watch: its filters and the queue its HTTP handler drains."""

    rt: ResourceType
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    path: str = ""
    id: int = field(default_factory=lambda: next(_watcher_ids))
    queue: "queue.Queue[tuple[str, Any]]" = field(default_factory=queue.Queue)
    silent: bool = False

    def passes(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        return self.labels.matches(obj.get("metadata", {}).get("labels")) and self.fields.matches(
            object_fields(self.rt, obj)
        )

    def convert(self, ev: Event) -> tuple[str, dict[str, Any]] | None:
        """Turn a store event into what this watcher sees (selectors can turn MODIFIED into ADDED/DELETED)."""
        if ev.plural != self.rt.plural:
            return None
        if self.namespace is not None and ev.obj.get("metadata", {}).get("namespace") != self.namespace:
            return None
        if ev.type in ("ADDED", "DELETED"):
            return (ev.type, ev.obj) if self.passes(ev.obj) else None
        now, before = self.passes(ev.obj), self.passes(ev.prev)
        if now and before:
            return ("MODIFIED", ev.obj)
        if now:
            return ("ADDED", ev.obj)
        if before:
            assert ev.prev is not None
            gone = copy.deepcopy(ev.prev)
            gone["metadata"]["resourceVersion"] = str(ev.rv)
            return ("DELETED", gone)
        return None


def _go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "null"
    return "object"


class Store:
    """All objects, the global resourceVersion counter, the event history and open watchers."""

    def __init__(self, history_size: int = 1000) -> None:
        if history_size < 1:
            raise ValueError(f"history_size must be at least 1, got {history_size}")
        self.lock = threading.RLock()
        self.types = {rt.plural: rt for rt in RESOURCE_TYPES}
        self.rv = 0
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {rt.plural: {} for rt in RESOURCE_TYPES}
        self.history: deque[Event] = deque()
        self.history_size = history_size
        self.compacted_rv = 0
        self.watchers: dict[int, Watcher] = {}
        self._cascading: set[str] = set()

    # ------------------------------------------------------------------ helpers

    def _emit(self, rt: ResourceType, etype: str, obj: dict[str, Any], prev: dict[str, Any] | None) -> None:
        ev = Event(int(obj["metadata"]["resourceVersion"]), rt.plural, etype, copy.deepcopy(obj),
                   copy.deepcopy(prev) if prev is not None else None)
        self.history.append(ev)
        while len(self.history) > self.history_size:
            self.compacted_rv = self.history.popleft().rv
        for watcher in self.watchers.values():
            seen = watcher.convert(ev)
            if seen is not None:
                watcher.queue.put(("event", seen))

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def compact(self) -> int:
        """Forget all history: any watch from an older resourceVersion now gets 410 Expired."""
        with self.lock:
            self.history.clear()
            self.compacted_rv = self.rv
            return self.rv

    def _key(self, rt: ResourceType, namespace: str | None, name: str) -> tuple[str, str]:
        return ((namespace or "") if rt.namespaced else "", name)

    def _require_namespace(self, rt: ResourceType, namespace: str | None, creating: bool, name: str) -> None:
        if not rt.namespaced:
            return
        ns = self.objects["namespaces"].get(("", namespace or ""))
        if ns is None:
            raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                           {"name": namespace, "kind": "namespaces"})
        if creating and ns["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403, "Forbidden",
                f'{rt.group_resource} "{name}" is forbidden: unable to create new content in namespace '
                f"{namespace} because it is being terminated",
                _details(rt, name, causes=[{"reason": "NamespaceTerminating",
                                            "message": f"namespace {namespace} is being terminated",
                                            "field": "metadata.namespace"}]),
            )

    def get_current(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.objects[rt.plural].get(self._key(rt, namespace, name))
        if obj is None:
            raise not_found(rt, name)
        return obj

    # ------------------------------------------------------------------ decoding and validation

    def _decode(self, rt: ResourceType, body: Any) -> dict[str, Any]:
        where = f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}'
        if not isinstance(body, dict):
            raise bad_request(f"{where}: json: cannot unmarshal {_go_type(body)} into Go value of type "
                              f"struct {{ APIVersion string; Kind string }}")
        if rt.custom:
            if not body.get("kind"):
                raise bad_request(f"Object 'Kind' is missing in '{json.dumps(body, separators=(',', ':'))}'")
            if not body.get("apiVersion"):
                raise bad_request(f"Object 'apiVersion' is missing in '{json.dumps(body, separators=(',', ':'))}'")
        api_version = body.get("apiVersion")
        if api_version and api_version != rt.api_version:
            raise bad_request(f"the API version in the data ({api_version}) does not match the expected "
                              f"API version ({rt.api_version})")
        kind = body.get("kind")
        if kind and kind != rt.kind:
            raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise bad_request(f"{where}: json: cannot unmarshal {_go_type(meta)} into Go struct field "
                              f"{rt.kind}.metadata of type v1.ObjectMeta")

        def want_map(container: dict[str, Any], key: str, gofield: str) -> None:
            value = container.get(key)
            if value is None:
                container.pop(key, None)
                return
            if not isinstance(value, dict):
                raise bad_request(f"{where}: json: cannot unmarshal {_go_type(value)} into Go struct field "
                                  f"{gofield} of type map[string]string")
            for item in value.values():
                if not isinstance(item, str):
                    raise bad_request(f"{where}: json: cannot unmarshal {_go_type(item)} into Go struct field "
                                      f"{gofield} of type string")

        for name in ("name", "namespace", "generateName", "resourceVersion", "uid"):
            if name in meta and meta[name] is not None and not isinstance(meta[name], str):
                raise bad_request(f"{where}: json: cannot unmarshal {_go_type(meta[name])} into Go struct field "
                                  f"ObjectMeta.metadata.{name} of type string")
        want_map(meta, "labels", "ObjectMeta.metadata.labels")
        want_map(meta, "annotations", "ObjectMeta.metadata.annotations")
        finalizers = meta.get("finalizers")
        if finalizers is None:
            meta.pop("finalizers", None)
        elif not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers):
            raise bad_request(f"{where}: json: cannot unmarshal {_go_type(finalizers)} into Go struct field "
                              f"ObjectMeta.metadata.finalizers of type []string")
        if rt.plural == "configmaps":
            want_map(obj, "data", "ConfigMap.data")
            want_map(obj, "binaryData", "ConfigMap.binaryData")
            for value in (obj.get("binaryData") or {}).values():
                problem = v.base64_error(value)
                if problem:
                    raise bad_request(f"{where}: {problem}")
        elif rt.plural == "secrets":
            want_map(obj, "data", "Secret.data")
            want_map(obj, "stringData", "Secret.stringData")
            for value in (obj.get("data") or {}).values():
                problem = v.base64_error(value)
                if problem:
                    raise bad_request(f"{where}: {problem}")
            string_data = obj.pop("stringData", None) or {}
            if string_data:
                data = obj.setdefault("data", {})
                for key, value in string_data.items():
                    data[key] = base64.b64encode(value.encode()).decode()
        return obj

    def _validate(self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        meta = obj["metadata"]
        errors: list[v.FieldError] = []
        if old is None:
            errors += v.validate_name(meta.get("name"), meta.get("generateName"), rt.plural == "namespaces")
        # A real update validates the labels four times over (object meta, update, and the kind's own
        # checks), so each label error appears four times among the causes.
        errors += v.validate_labels(meta.get("labels") or {}) * (1 if old is None else 4)
        errors += v.validate_annotations(meta.get("annotations") or {})
        if rt.plural == "configmaps":
            errors += v.validate_config_map(obj)
        elif rt.plural == "secrets":
            errors += v.validate_secret(obj)
        if old is not None and old["metadata"].get("deletionTimestamp"):
            added = [f for f in meta.get("finalizers") or [] if f not in (old["metadata"].get("finalizers") or [])]
            if added:
                listing = ", ".join(json.dumps(f) for f in added)
                errors.append(v.FieldError(
                    "Forbidden", "metadata.finalizers",
                    f"no new finalizers can be added if the object is being deleted, found new finalizers "
                    f"[]string{{{listing}}}"))
        if errors:
            raise invalid(rt, meta.get("name") or meta.get("generateName") or "", errors)

    # ------------------------------------------------------------------ verbs

    def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> dict[str, Any]:
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(rt, field_selector)
        start = ""
        if continue_token:
            try:
                start = json.loads(base64.urlsafe_b64decode(continue_token.encode()))["start"]
            except (ValueError, KeyError, TypeError):
                raise bad_request(f"continue key is not valid: {continue_token}") from None
        with self.lock:
            matched = []
            for (ns, name), obj in sorted(self.objects[rt.plural].items()):
                if namespace is not None and rt.namespaced and ns != namespace:
                    continue
                if start and f"{ns}/{name}" <= start:
                    continue
                if labels.matches(obj["metadata"].get("labels")) and fields.matches(object_fields(rt, obj)):
                    matched.append(obj)
            meta: dict[str, Any] = {"resourceVersion": str(self.rv)}
            if limit and limit > 0 and len(matched) > limit:
                last = matched[limit - 1]["metadata"]
                meta["continue"] = base64.urlsafe_b64encode(json.dumps(
                    {"rv": self.rv, "start": f"{last.get('namespace', '')}/{last['name']}"}).encode()).decode()
                if labels.empty() and fields.empty():
                    meta["remainingItemCount"] = len(matched) - limit
                matched = matched[:limit]
            items = []
            for obj in matched:
                item = copy.deepcopy(obj)
                if not rt.custom:
                    item.pop("kind", None)
                    item.pop("apiVersion", None)
                items.append(item)
            return {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta, "items": items}

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.get_current(rt, namespace, name))

    def create(self, rt: ResourceType, namespace: str | None, body: Any, dry_run: bool = False) -> dict[str, Any]:
        obj = self._decode(rt, body)
        meta = obj["metadata"]
        if rt.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise bad_request("the namespace of the provided object does not match the namespace sent on "
                                  "the request")
            meta["namespace"] = namespace or meta.get("namespace") or ""
        else:
            meta.pop("namespace", None)
        with self.lock:
            if not meta.get("name") and meta.get("generateName"):
                suffix = "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
                meta["name"] = meta["generateName"] + suffix
            name = meta.get("name") or ""
            self._require_namespace(rt, meta.get("namespace"), True, name)
            self._validate(rt, obj, None)
            if meta.get("resourceVersion"):
                raise internal_error("resourceVersion should not be set on objects to be created")
            key = self._key(rt, meta.get("namespace"), name)
            if key in self.objects[rt.plural]:
                raise already_exists(rt, name)
            obj["apiVersion"] = rt.api_version
            obj["kind"] = rt.kind
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            for system in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields"):
                meta.pop(system, None)
            if rt.custom:
                meta["generation"] = 1
                if rt.status_subresource:
                    obj.pop("status", None)
            else:
                meta.pop("generation", None)
            if rt.plural == "namespaces":
                meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
                obj["spec"] = {"finalizers": ["kubernetes"]}
                obj["status"] = {"phase": "Active"}
            if rt.plural == "secrets":
                obj.setdefault("type", "Opaque")
            if dry_run:
                return copy.deepcopy(obj)
            meta["resourceVersion"] = self._next_rv()
            self.objects[rt.plural][key] = obj
            self._emit(rt, "ADDED", obj, None)
            return copy.deepcopy(obj)

    def _prepare_update(
        self, rt: ResourceType, current: dict[str, Any], obj: dict[str, Any], subresource: str | None
    ) -> dict[str, Any]:
        if subresource == "status" and rt.custom:
            new = copy.deepcopy(current)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
        elif subresource == "status":
            # built-in status strategies only reset spec; metadata changes go through
            new = obj
            if "spec" in current:
                new["spec"] = copy.deepcopy(current["spec"])
            else:
                new.pop("spec", None)
        else:
            new = obj
            if rt.status_subresource:
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
                else:
                    new.pop("status", None)
            if rt.plural == "namespaces":
                new["spec"] = copy.deepcopy(current.get("spec", {}))
        meta, old_meta = new["metadata"], current["metadata"]
        for system in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation",
                       "namespace", "resourceVersion"):
            if system in old_meta:
                meta[system] = old_meta[system]
            else:
                meta.pop(system, None)
        for dropped in ("selfLink", "managedFields"):
            meta.pop(dropped, None)
        new["apiVersion"] = rt.api_version
        new["kind"] = rt.kind
        if rt.custom and _spec_part(new) != _spec_part(current):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        return new

    def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        obj = self._decode(rt, body)
        with self.lock:
            return self._update_locked(rt, namespace, name, obj, subresource, dry_run)

    def _update_locked(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        obj: dict[str, Any],
        subresource: str | None,
        dry_run: bool,
    ) -> dict[str, Any]:
        meta = obj["metadata"]
        if meta.get("name") and meta["name"] != name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        self._require_namespace(rt, namespace, False, name)
        current = self.get_current(rt, namespace, name)
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
            raise conflict(rt, name, MODIFIED_CONFLICT)
        wanted_uid = meta.get("uid")
        if wanted_uid and wanted_uid != current["metadata"]["uid"]:
            raise conflict(rt, name, f"Precondition failed: UID in precondition: {wanted_uid}, "
                                     f"UID in object meta: {current['metadata']['uid']}")
        meta["name"] = name
        new = self._prepare_update(rt, current, obj, subresource)
        self._validate(rt, new, current)
        if new == current or dry_run:
            return copy.deepcopy(new)
        rv = self._next_rv()
        new["metadata"]["resourceVersion"] = rv
        key = self._key(rt, namespace, name)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            gone = copy.deepcopy(current)
            gone["metadata"]["resourceVersion"] = rv
            del self.objects[rt.plural][key]
            self._emit(rt, "DELETED", gone, None)
            self._maybe_finish_namespace(namespace)
            return copy.deepcopy(new)
        self.objects[rt.plural][key] = new
        self._emit(rt, "MODIFIED", new, current)
        return copy.deepcopy(new)

    def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        content_type: str,
        raw: bytes,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        accepted = [patches.JSON_PATCH, patches.MERGE_PATCH]
        if not rt.custom:
            accepted.append(patches.STRATEGIC_MERGE_PATCH)
        if content_type not in accepted:
            raise ApiError(415, "UnsupportedMediaType",
                           "the body of the request was in an unknown format - accepted media types include: "
                           + ", ".join(accepted + [patches.APPLY_PATCH_YAML]))
        try:
            document = json.loads(raw.decode("utf-8") or "null")
        except (UnicodeDecodeError, ValueError) as exc:
            raise bad_request(f"error decoding patch: {exc}") from None
        with self.lock:
            current = self.get_current(rt, namespace, name)
            try:
                if content_type == patches.JSON_PATCH:
                    patched = patches.apply_json_patch(current, document)
                elif content_type == patches.MERGE_PATCH:
                    if not isinstance(document, dict):
                        raise bad_request("invalid JSON merge patch: the patch must be a JSON object")
                    patched = patches.apply_merge_patch(current, document)
                else:
                    patched = patches.apply_strategic_merge_patch(
                        current, document, patches.MERGE_LISTS.get(rt.plural, {}))
            except patches.PatchError as exc:
                if content_type == patches.JSON_PATCH:
                    raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request",
                                   {"causes": [{"reason": "FieldValueInvalid", "message": str(exc), "field": "patch"}]}
                                   ) from None
                raise bad_request(str(exc)) from None
            obj = self._decode(rt, patched)
            if obj["metadata"].get("name") != name:
                raise bad_request(f"the name of the object ({obj['metadata'].get('name')}) does not match the "
                                  f"name on the URL ({name})")
            return self._update_locked(rt, namespace, name, obj, subresource, dry_run)

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        options: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Delete (or start deleting) an object; returns (object, deleted_now)."""
        options = options or {}
        with self.lock:
            current = self.get_current(rt, namespace, name)
            pre = options.get("preconditions") or {}
            meta = current["metadata"]
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
                raise conflict(rt, name, f"Precondition failed: ResourceVersion in precondition: "
                                         f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                         f"{meta['resourceVersion']}")
            if pre.get("uid") and pre["uid"] != meta["uid"]:
                raise conflict(rt, name, f"Precondition failed: UID in precondition: {pre['uid']}, "
                                         f"UID in object meta: {meta['uid']}")
            if dry_run:
                return copy.deepcopy(current), not meta.get("finalizers")
            if rt.plural == "namespaces":
                return self._delete_namespace(name)
            key = self._key(rt, namespace, name)
            if meta.get("finalizers"):
                if meta.get("deletionTimestamp"):
                    return copy.deepcopy(current), False
                new = copy.deepcopy(current)
                new["metadata"]["deletionTimestamp"] = now_rfc3339()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                if int(new["metadata"].get("generation", 0)) > 0:
                    new["metadata"]["generation"] += 1
                new["metadata"]["resourceVersion"] = self._next_rv()
                self.objects[rt.plural][key] = new
                self._emit(rt, "MODIFIED", new, current)
                return copy.deepcopy(new), False
            gone = copy.deepcopy(current)
            gone["metadata"]["resourceVersion"] = self._next_rv()
            del self.objects[rt.plural][key]
            self._emit(rt, "DELETED", gone, None)
            self._maybe_finish_namespace(namespace if rt.namespaced else None)
            return gone, True

    def _delete_namespace(self, name: str) -> tuple[dict[str, Any], bool]:
        rt = self.types["namespaces"]
        current = self.objects["namespaces"][("", name)]
        if not current["metadata"].get("deletionTimestamp"):
            new = copy.deepcopy(current)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["status"] = {"phase": "Terminating"}
            new["metadata"]["resourceVersion"] = self._next_rv()
            self.objects["namespaces"][("", name)] = new
            self._emit(rt, "MODIFIED", new, current)
            self._cascading.add(name)
            try:
                for other in RESOURCE_TYPES:
                    if other.namespaced:
                        for ns, obj_name in sorted(k for k in self.objects[other.plural] if k[0] == name):
                            self.delete(other, ns, obj_name)
            finally:
                self._cascading.discard(name)
        done = self._maybe_finish_namespace(name)
        return (done, True) if done else (copy.deepcopy(self.objects["namespaces"][("", name)]), False)

    def _maybe_finish_namespace(self, namespace: str | None) -> dict[str, Any] | None:
        if not namespace or namespace in self._cascading:
            return None
        ns = self.objects["namespaces"].get(("", namespace))
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return None
        for other in RESOURCE_TYPES:
            if other.namespaced and any(k[0] == namespace for k in self.objects[other.plural]):
                return None
        gone = copy.deepcopy(ns)
        gone["metadata"]["resourceVersion"] = self._next_rv()
        del self.objects["namespaces"][("", namespace)]
        self._emit(self.types["namespaces"], "DELETED", gone, None)
        return gone

    # ------------------------------------------------------------------ watch

    def open_watch(
        self,
        rt: ResourceType,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
        resource_version: str | None,
        path: str = "",
        silent: bool = False,
    ) -> Watcher:
        """Register a watcher; its queue already holds the initial events (or a 410 ERROR)."""
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(rt, field_selector)
        watcher = Watcher(rt, namespace if rt.namespaced else None, labels, fields, path, silent=silent)
        with self.lock:
            if resource_version in (None, "", "0"):
                for (ns, _), obj in sorted(self.objects[rt.plural].items()):
                    if watcher.namespace is not None and ns != watcher.namespace:
                        continue
                    if watcher.passes(obj):
                        watcher.queue.put(("event", ("ADDED", copy.deepcopy(obj))))
                watcher.queue.put(("initial-done", None))
            else:
                try:
                    since = int(resource_version)
                except ValueError:
                    raise bad_request(f'invalid resource version "{resource_version}"') from None
                if since > self.rv:
                    raise ApiError(504, "Timeout", f"Timeout: Too large resource version: {since}, current: {self.rv}",
                                   {"causes": [{"reason": "ResourceVersionTooLarge",
                                                "message": "Too large resource version"}],
                                    "retryAfterSeconds": 1},
                                   headers={"Retry-After": "1"})
                if since < self.compacted_rv:
                    watcher.queue.put(("error", expired(
                        f"too old resource version: {since} ({self.compacted_rv})").status()))
                    return watcher
                for ev in self.history:
                    if ev.rv > since:
                        seen = watcher.convert(ev)
                        if seen is not None:
                            watcher.queue.put(("event", seen))
            self.watchers[watcher.id] = watcher
        return watcher

    def close_watch(self, watcher: Watcher) -> None:
        with self.lock:
            self.watchers.pop(watcher.id, None)

    def bookmark_rv(self, watcher: Watcher) -> str | None:
        """The current resourceVersion when everything up to it has been handed to this watcher."""
        with self.lock:
            return str(self.rv) if watcher.queue.empty() else None

    def signal_watchers(self, message: tuple[str, Any], path_regex: Any = None) -> int:
        with self.lock:
            count = 0
            for watcher in self.watchers.values():
                if path_regex is None or path_regex.search(watcher.path):
                    watcher.queue.put(message)
                    count += 1
            return count

    def all_objects(self, plural: str) -> Iterable[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(o) for _, o in sorted(self.objects[plural].items())]


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: val for k, val in obj.items() if k not in ("metadata", "status", "kind", "apiVersion")}

