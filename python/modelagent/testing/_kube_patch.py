"""The three PATCH flavours of the Kubernetes API: JSON patch, JSON merge patch, strategic merge."""

from __future__ import annotations

import copy
from typing import Any

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH_YAML = "application/apply-patch+yaml"


class PatchError(ValueError):
    """A patch that cannot be applied to the document."""


# ---------------------------------------------------------------- RFC 6902 JSON patch


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer must be empty or start with a \"/\": {path!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _index(token: str, length: int, allow_end: bool, path: str) -> int:
    if allow_end and token == "-":
        return length
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r} in path {path!r}")
    idx = int(token)
    if idx > length or (idx == length and not allow_end):
        raise PatchError(f"array index out of bounds: {idx} in path {path!r}")
    return idx


def _parent(doc: Any, tokens: list[str], path: str, op: str) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(token, len(node), False, path)]
        else:
            raise PatchError(f"{op} operation does not apply: doc is missing path: \"{path}\": missing value")
    if not isinstance(node, (dict, list)):
        raise PatchError(f"{op} operation does not apply: doc is missing path: \"{path}\": missing value")
    return node


def _get(doc: Any, path: str, op: str) -> Any:
    node = doc
    for token in _pointer(path):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(token, len(node), False, path)]
        else:
            raise PatchError(f"{op} operation does not apply: doc is missing path: \"{path}\": missing value")
    return node


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path, "add")
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    else:
        parent.insert(_index(tokens[-1], len(parent), True, path), value)
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("error in remove for path: '': cannot remove the document root")
    parent = _parent(doc, tokens, path, "remove")
    key = tokens[-1]
    if isinstance(parent, dict):
        if key not in parent:
            raise PatchError(
                f"error in remove for path: '{path}': Unable to remove nonexistent key: {key}: missing value"
            )
        return doc, parent.pop(key)
    return doc, parent.pop(_index(key, len(parent), False, path))


def apply_json_patch(doc: Any, operations: Any) -> Any:
    """Apply an RFC 6902 operation list (add, remove, replace, move, copy, test) to a copy of doc."""
    if not isinstance(operations, list):
        raise PatchError("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)
    for i, op in enumerate(operations):
        if not isinstance(op, dict):
            raise PatchError(f"operation {i} is not a JSON object")
        kind = op.get("op")
        path = op.get("path")
        if not isinstance(path, str):
            raise PatchError(f"operation {i} ({kind}) is missing its \"path\"")
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"operation {i} ({kind}) is missing its \"value\"")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc, _ = _remove(doc, path)
        elif kind == "replace":
            tokens = _pointer(path)
            if tokens:
                parent = _parent(doc, tokens, path, "replace")
                if isinstance(parent, dict):
                    if tokens[-1] not in parent:
                        raise PatchError(
                            f"replace operation does not apply: doc is missing key: {path}: missing value"
                        )
                    parent[tokens[-1]] = copy.deepcopy(op["value"])
                else:
                    parent[_index(tokens[-1], len(parent), False, path)] = copy.deepcopy(op["value"])
            else:
                doc = copy.deepcopy(op["value"])
        elif kind in ("move", "copy"):
            source = op.get("from")
            if not isinstance(source, str):
                raise PatchError(f"operation {i} ({kind}) is missing its \"from\"")
            if kind == "move":
                if path.startswith(source + "/"):
                    raise PatchError(f"move operation cannot move {source!r} into its own child {path!r}")
                try:
                    doc, value = _remove(doc, source)
                except PatchError:
                    raise PatchError(
                        f"move operation does not apply: doc is missing from path: {source}: missing value"
                    ) from None
            else:
                value = copy.deepcopy(_get(doc, source, "copy"))
            doc = _add(doc, path, value)
        elif kind == "test":
            try:
                current = _get(doc, path, "test")
            except PatchError:
                current = _MISSING
            if current is _MISSING or not _json_equal(current, op["value"]):
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchError(f"Unexpected kind: {kind}")
    return doc


_MISSING = object()


def _json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: booleans are not numbers, 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    return bool(a == b)


# ---------------------------------------------------------------- RFC 7386 merge patch


def apply_merge_patch(doc: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


# ---------------------------------------------------------------- strategic merge patch

# Lists that built-in types merge instead of replacing: path -> merge key ("" = list of scalars).
_COMMON_MERGE_LISTS = {
    ("metadata", "finalizers"): "",
    ("metadata", "ownerReferences"): "uid",
}
MERGE_LISTS: dict[str, dict[tuple[str, ...], str]] = {
    "nodes": {
        **_COMMON_MERGE_LISTS,
        ("spec", "taints"): "key",
        ("spec", "podCIDRs"): "",
        ("status", "conditions"): "type",
        ("status", "addresses"): "type",
    },
    "namespaces": {**_COMMON_MERGE_LISTS, ("status", "conditions"): "type"},
    "configmaps": dict(_COMMON_MERGE_LISTS),
    "secrets": dict(_COMMON_MERGE_LISTS),
}


def apply_strategic_merge_patch(doc: Any, patch: Any, merge_lists: dict[tuple[str, ...], str]) -> Any:
    """Strategic merge: maps merge like RFC 7386; the listed lists merge by key; others replace.

    Supports the ``$patch: replace|delete`` map directive, ``$deleteFromPrimitiveList/<field>``
    and ignores ``$setElementOrder/<field>`` and ``$retainKeys``.
    """
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    return _smp_map(copy.deepcopy(doc) if isinstance(doc, dict) else {}, patch, (), merge_lists)


def _smp_map(
    target: dict[str, Any], patch: dict[str, Any], path: tuple[str, ...], lists: dict[tuple[str, ...], str]
) -> Any:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    if directive is not None:
        raise PatchError(f"Unknown patch type: {directive}")
    for key, value in patch.items():
        if key in ("$retainKeys",) or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if not isinstance(value, list):
                raise PatchError(f"invalid value for {key}: expected a list")
            if isinstance(target.get(field), list):
                target[field] = [v for v in target[field] if v not in value]
            continue
        sub = path + (key,)
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            current = target.get(key)
            merged = _smp_map(current if isinstance(current, dict) else {}, value, sub, lists)
            if merged is None:
                target.pop(key, None)
            else:
                target[key] = merged
        elif isinstance(value, list) and sub in lists and isinstance(target.get(key), list):
            target[key] = _smp_list(target[key], value, lists[sub], sub, lists)
        else:
            target[key] = _strip_directives(copy.deepcopy(value))
    return target


def _smp_list(
    current: list[Any], patch: list[Any], merge_key: str, path: tuple[str, ...], lists: dict[tuple[str, ...], str]
) -> list[Any]:
    result = copy.deepcopy(current)
    if not merge_key:
        for item in patch:
            if item not in result:
                result.append(copy.deepcopy(item))
        return result
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {merge_key}")
        matches = [i for i, existing in enumerate(result) if isinstance(existing, dict)
                   and existing.get(merge_key) == item[merge_key]]
        if item.get("$patch") == "delete":
            result = [e for i, e in enumerate(result) if i not in matches]
        elif matches:
            merged = _smp_map(result[matches[0]], item, path, lists)
            result[matches[0]] = merged
        else:
            result.append(_strip_directives(copy.deepcopy(item)))
    return result


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value
