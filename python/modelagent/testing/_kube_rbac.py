"""RBAC authorisation for the fake API server: ClusterRoles, Roles and their bindings, evaluated the
way kube-apiserver's RBAC authorizer does for the requests the fake serves.

Only users that are service accounts (``system:serviceaccount:<namespace>:<name>``) are authorised;
other users (the fake's admin tokens) are unrestricted, as ``system:masters`` is on a real cluster. A
service account belongs to the groups ``system:serviceaccounts``, ``system:serviceaccounts:<namespace>``
and ``system:authenticated``. Discovery and ``/version`` are open to every authenticated user (a real
cluster grants them through ``system:discovery``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from modelagent.testing._kube_store import ApiError

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
RBAC_KINDS = frozenset({"ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding"})


def _groups(user: str) -> set[str]:
    groups = {"system:authenticated"}
    if user.startswith(SERVICE_ACCOUNT_PREFIX):
        namespace = user[len(SERVICE_ACCOUNT_PREFIX):].split(":", 1)[0]
        groups |= {"system:serviceaccounts", f"system:serviceaccounts:{namespace}"}
    return groups


def _subject_matches(subject: Mapping[str, Any], user: str, groups: set[str], binding_ns: str | None) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return subject.get("name") == user
    if kind == "Group":
        return subject.get("name") in groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_ns
        return user == f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{subject.get('name')}"
    return False


def _rule_allows(rule: Mapping[str, Any], verb: str, group: str, resource: str, name: str | None) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and verb not in verbs:
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and group not in groups:
        return False
    resources = rule.get("resources") or []
    base = resource.split("/", 1)[0]
    if "*" not in resources and resource not in resources and f"{base}/*" not in resources:
        return False
    names = rule.get("resourceNames") or []
    return not names or (name is not None and name in names)


class RBACAuthorizer:
    """Holds RBAC objects (see :meth:`load`) and answers whether a request is allowed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cluster_roles: dict[str, list[dict[str, Any]]] = {}
        self._roles: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._cluster_bindings: dict[str, dict[str, Any]] = {}
        self._bindings: dict[tuple[str, str], dict[str, Any]] = {}

    def load(self, objects: Iterable[Mapping[str, Any]]) -> int:
        """Add (or replace, by kind and name) the RBAC objects among ``objects``; returns how many."""
        count = 0
        with self._lock:
            for obj in objects:
                kind = obj.get("kind")
                if kind not in RBAC_KINDS:
                    continue
                meta = obj.get("metadata") or {}
                name, namespace = meta.get("name"), meta.get("namespace")
                if not name or (kind in ("Role", "RoleBinding") and not namespace):
                    raise ValueError(f"{kind} needs metadata.name{' and metadata.namespace' if kind[0] == 'R' else ''}")
                if kind == "ClusterRole":
                    self._cluster_roles[name] = [dict(r) for r in obj.get("rules") or []]
                elif kind == "Role":
                    self._roles[(namespace, name)] = [dict(r) for r in obj.get("rules") or []]
                elif kind == "ClusterRoleBinding":
                    self._cluster_bindings[name] = dict(obj)
                else:
                    self._bindings[(namespace, name)] = dict(obj)
                count += 1
        return count

    def remove(self, objects: Iterable[Mapping[str, Any]]) -> None:
        """Forget the RBAC objects among ``objects`` (matched by kind, namespace and name)."""
        with self._lock:
            for obj in objects:
                meta = obj.get("metadata") or {}
                name, namespace = meta.get("name"), meta.get("namespace")
                {"ClusterRole": self._cluster_roles, "ClusterRoleBinding": self._cluster_bindings}.get(
                    obj.get("kind"), {}).pop(name, None)
                {"Role": self._roles, "RoleBinding": self._bindings}.get(
                    obj.get("kind"), {}).pop((namespace, name), None)

    def _role_rules(self, ref: Mapping[str, Any], namespace: str | None) -> list[dict[str, Any]]:
        if ref.get("kind") == "ClusterRole":
            return self._cluster_roles.get(ref.get("name", ""), [])
        if ref.get("kind") == "Role" and namespace is not None:
            return self._roles.get((namespace, ref.get("name", "")), [])
        return []

    def allowed(self, user: str, verb: str, group: str, resource: str, namespace: str | None,
                name: str | None) -> bool:
        """Whether ``user`` may ``verb`` the resource (``resource`` may be ``plural/subresource``)."""
        if not user.startswith(SERVICE_ACCOUNT_PREFIX):
            return True
        groups = _groups(user)
        with self._lock:
            for binding in self._cluster_bindings.values():
                if any(_subject_matches(s, user, groups, None) for s in binding.get("subjects") or []):
                    if any(_rule_allows(r, verb, group, resource, name)
                           for r in self._role_rules(binding.get("roleRef") or {}, None)):
                        return True
            if namespace is None:
                return False
            for (binding_ns, _), binding in self._bindings.items():
                if binding_ns != namespace:
                    continue
                if any(_subject_matches(s, user, groups, binding_ns) for s in binding.get("subjects") or []):
                    if any(_rule_allows(r, verb, group, resource, name)
                           for r in self._role_rules(binding.get("roleRef") or {}, binding_ns)):
                        return True
        return False


def forbidden(user: str, verb: str, group: str, plural: str, subresource: str, namespace: str | None,
              name: str | None) -> ApiError:
    """The real server's 403 for a request RBAC denies (same message and details)."""
    resource = f"{plural}/{subresource}" if subresource else plural
    group_resource = f"{plural}.{group}" if group else plural
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    reason = f'User "{user}" cannot {verb} resource "{resource}" in API group "{group}" {scope}'
    subject = f'{group_resource} "{name}"' if name else group_resource
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = plural
    return ApiError(403, "Forbidden", f"{subject} is forbidden: {reason}", details)


__all__ = ["RBACAuthorizer", "forbidden"]
