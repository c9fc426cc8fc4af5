"""Is a BaseModel / ClusterBaseModel meant for this node?

The placement fields of a model live in ``spec.storage``: ``nodeSelector`` (every key must be a node
label with exactly that value) and ``nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution``
(a ``NodeSelector``). Both are evaluated exactly the way the Kubernetes scheduler evaluates a pod's
``nodeSelector`` and required node affinity (``k8s.io/component-helpers/scheduling/corev1/nodeaffinity``
and ``k8s.io/apimachinery/pkg/labels``), not the way OME v0.1.3's own matcher did:

* terms are ORed; within a term every ``matchExpressions`` and ``matchFields`` entry must hold;
* a term with neither expressions nor fields matches nothing, and so does a ``nodeSelectorTerms`` list
  that is empty or missing;
* a term with an invalid requirement (unknown operator, wrong number of values, a ``Gt``/``Lt`` value that
  is not an integer, an invalid label key or value, a field other than ``metadata.name``) never matches;
  the other terms are still evaluated;
* ``NotIn`` and ``DoesNotExist`` match a node that lacks the label; ``Gt``/``Lt`` compare 64-bit integers
  and never match a missing or non-integer label.

Storage URIs starting with ``pvc://`` are never eligible (the OME controller serves PVC models in place).
A model without ``spec`` / ``spec.storage`` has no placement constraints and is eligible; the agent then
reports the missing ``storageUri`` as ``Failed`` (see docs/eligibility.md).

Malformed models (a selector that is not a map, a term that is not an object...) are never an exception:
they are not eligible and the reason names the field at fault.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelagent._core import label_key_problem, label_value_problem

__all__ = ["Eligibility", "is_eligible", "match_node_selector", "node_to_dict"]

STORAGE_PATH = "spec.storage"
AFFINITY_PATH = "spec.storage.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"

_LABEL_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
_FIELD_OPERATORS = ("In", "NotIn")
_NODE_FIELDS = ("metadata.name",)
_INT64 = re.compile(r"[+-]?[0-9]+", re.ASCII)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Eligibility:
    """The outcome of :func:`is_eligible`: ``eligible`` and a human-readable ``reason``.

    Truthy exactly when eligible, so ``if is_eligible(model, node):`` reads naturally.
    """

    eligible: bool
    reason: str

    def __bool__(self) -> bool:
        return self.eligible


class _Invalid(Exception):
    """A requirement the scheduler would refuse to parse; the message names the field."""


def node_to_dict(node: Any) -> dict[str, Any]:
    """A Node as the API's JSON dict (camelCase keys).

    Accepts a dict (returned as is) or a model object of the ``kubernetes`` client such as ``V1Node``
    (converted like ``ApiClient.sanitize_for_serialization`` does, without needing an ApiClient).
    """
    if isinstance(node, Mapping):
        return dict(node)
    if hasattr(node, "attribute_map"):
        converted = _sanitize(node)
        if isinstance(converted, dict):
            return converted
    raise TypeError(f"node must be a dict or a kubernetes client model such as V1Node, got {type(node).__name__}")


def _sanitize(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_sanitize(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _sanitize(v) for k, v in value.items()}
    if hasattr(value, "isoformat"):
        return value.isoformat()
    attribute_map = getattr(value, "attribute_map", None)
    if isinstance(attribute_map, Mapping):
        out = {}
        for attr, json_key in attribute_map.items():
            attr_value = getattr(value, attr, None)
            if attr_value is not None:
                out[json_key] = _sanitize(attr_value)
        return out
    raise TypeError(f"cannot convert {type(value).__name__} to JSON")


def _node_identity(node: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    metadata = node.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise ValueError(f"node metadata must be an object, got {type(metadata).__name__}")
    name = metadata.get("name") or ""
    if not isinstance(name, str):
        raise ValueError(f"node metadata.name must be a string, got {type(name).__name__}")
    labels = metadata.get("labels") or {}
    if not isinstance(labels, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in labels.items()):
        raise ValueError(f'node "{name}" metadata.labels must be a map of strings')
    return name, dict(labels)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def is_eligible(model: Mapping[str, Any], node: Any) -> Eligibility:
    """Whether ``model`` (a BaseModel or ClusterBaseModel as a dict) should be on ``node``.

    ``node`` is a Node dict (API JSON form) or a ``V1Node``. Raises ``TypeError`` when ``model`` is not a
    mapping and ``ValueError`` when the node's metadata is malformed; problems in the model itself
    give a not-eligible result whose reason names the field.
    """
    if not isinstance(model, Mapping):
        raise TypeError(f"model must be a dict, got {type(model).__name__}")
    node_name, labels = _node_identity(node_to_dict(node))

    spec = model.get("spec")
    if spec is None:
        return Eligibility(True, "the model has no spec, hence no placement constraints "
                                 "(its missing spec.storage.storageUri is reported as Failed)")
    if not isinstance(spec, Mapping):
        return Eligibility(False, f"spec: must be an object, got {_type_name(spec)}")
    storage = spec.get("storage")
    if storage is None:
        return Eligibility(True, f"{STORAGE_PATH} is not set, hence no placement constraints "
                                 "(its missing storageUri is reported as Failed)")
    if not isinstance(storage, Mapping):
        return Eligibility(False, f"{STORAGE_PATH}: must be an object, got {_type_name(storage)}")

    uri = storage.get("storageUri")
    if isinstance(uri, str) and uri.startswith("pvc://"):
        return Eligibility(False, f"{STORAGE_PATH}.storageUri {uri!r} is a PVC: PVC models are served from the "
                                  "volume by the OME controller, the agent never downloads them")

    matched: list[str] = []
    selector = storage.get("nodeSelector")
    if selector is not None:
        outcome = _match_node_selector_map(selector, node_name, labels)
        if not outcome.eligible:
            return outcome
        matched.append(f"{STORAGE_PATH}.nodeSelector")

    affinity = storage.get("nodeAffinity")
    if affinity is not None:
        if not isinstance(affinity, Mapping):
            return Eligibility(False, f"{STORAGE_PATH}.nodeAffinity: must be an object, got {_type_name(affinity)}")
        required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        if required is not None:
            outcome = _match_required(required, node_name, labels, AFFINITY_PATH)
            if not outcome.eligible:
                return outcome
            matched.append(outcome.reason)

    if not matched:
        return Eligibility(True, f'no placement constraints in {STORAGE_PATH}: eligible on every node')
    return Eligibility(True, f'node "{node_name}" matches ' + " and ".join(matched))


def match_node_selector(selector: Mapping[str, Any], node: Any, path: str = "nodeSelector") -> Eligibility:
    """Evaluate a ``NodeSelector`` (``{"nodeSelectorTerms": [...]}``) against ``node`` like the scheduler.

    ``path`` prefixes the field names in the reason.
    """
    node_name, labels = _node_identity(node_to_dict(node))
    return _match_required(selector, node_name, labels, path)


def _match_node_selector_map(selector: Any, node_name: str, labels: Mapping[str, str]) -> Eligibility:
    path = f"{STORAGE_PATH}.nodeSelector"
    if not isinstance(selector, Mapping):
        return Eligibility(False, f"{path}: must be a map of strings, got {_type_name(selector)}")
    for key in sorted(selector, key=str):
        value = selector[key]
        if not isinstance(value, str):
            return Eligibility(False, f"{path}[{key!r}]: must be a string, got {_type_name(value)}")
        if key not in labels:
            return Eligibility(False, f'{path}: node "{node_name}" has no label {key!r} (wanted {value!r})')
        if labels[key] != value:
            return Eligibility(False, f'{path}: node "{node_name}" has {key}={labels[key]!r}, wanted {value!r}')
    return Eligibility(True, path)


def _match_required(required: Any, node_name: str, labels: Mapping[str, str], path: str) -> Eligibility:
    if not isinstance(required, Mapping):
        return Eligibility(False, f"{path}: must be an object, got {_type_name(required)}")
    terms = required.get("nodeSelectorTerms")
    if terms is None:
        terms = []
    if not isinstance(terms, list):
        return Eligibility(False, f"{path}.nodeSelectorTerms: must be a list, got {_type_name(terms)}")
    if not terms:
        return Eligibility(False, f"{path}.nodeSelectorTerms is empty: a required node affinity without terms "
                                  "matches no node")
    failures: list[str] = []
    for index, term in enumerate(terms):
        term_path = f"nodeSelectorTerms[{index}]"
        try:
            problem = _term_mismatch(term, node_name, labels, f"{path}.{term_path}")
        except _Invalid as exc:
            failures.append(f"{term_path} is invalid and matches nothing: {exc}")
            continue
        if problem is None:
            return Eligibility(True, f"{path}.{term_path}")
        failures.append(f"{term_path}: {problem}")
    return Eligibility(False, f'{path}: no term matches node "{node_name}" ({"; ".join(failures)})')


def _term_mismatch(term: Any, node_name: str, labels: Mapping[str, str], path: str) -> str | None:
    """None when the term matches; otherwise why not. Raises _Invalid for a term the scheduler rejects."""
    if term is None:
        return "an empty term matches no node"
    if not isinstance(term, Mapping):
        raise _Invalid(f"{path}: must be an object, got {_type_name(term)}")
    expressions = _requirement_list(term.get("matchExpressions"), f"{path}.matchExpressions")
    fields = _requirement_list(term.get("matchFields"), f"{path}.matchFields")
    if not expressions and not fields:
        return "an empty term matches no node"
    # Every requirement is parsed before any is matched: one invalid requirement voids the whole term.
    parsed_expressions = [_parse_expression(r, f"{path}.matchExpressions[{i}]") for i, r in enumerate(expressions)]
    parsed_fields = [_parse_field(r, f"{path}.matchFields[{i}]") for i, r in enumerate(fields)]
    for index, (key, operator, values) in enumerate(parsed_expressions):
        if not _label_requirement_matches(key, operator, values, labels):
            actual = f"{key}={labels[key]!r}" if key in labels else f"no label {key!r}"
            return f"matchExpressions[{index}] {key} {operator} {values}: node has {actual}"
    # Nodes are matched on fields only when they have a name (extractNodeFields yields an empty set otherwise).
    if node_name:
        for index, (key, operator, value) in enumerate(parsed_fields):
            if (node_name == value) != (operator == "In"):
                return f"matchFields[{index}] {key} {operator} [{value!r}]: node name is {node_name!r}"
    return None


def _requirement_list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Invalid(f"{path}: must be a list, got {_type_name(value)}")
    return value


def _requirement_parts(requirement: Any, path: str) -> tuple[str, str, list[str]]:
    if not isinstance(requirement, Mapping):
        raise _Invalid(f"{path}: must be an object, got {_type_name(requirement)}")
    key = requirement.get("key", "")
    operator = requirement.get("operator", "")
    values = requirement.get("values")
    if not isinstance(key, str):
        raise _Invalid(f"{path}.key: must be a string, got {_type_name(key)}")
    if not isinstance(operator, str):
        raise _Invalid(f"{path}.operator: must be a string, got {_type_name(operator)}")
    if values is None:
        values = []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise _Invalid(f"{path}.values: must be a list of strings")
    return key, operator, list(values)


def _parse_expression(requirement: Any, path: str) -> tuple[str, str, list[str]]:
    key, operator, values = _requirement_parts(requirement, path)
    if operator not in _LABEL_OPERATORS:
        raise _Invalid(f"{path}.operator: unsupported value {operator!r} (supported: {', '.join(_LABEL_OPERATORS)})")
    problem = label_key_problem(key)
    if problem:
        raise _Invalid(f"{path}.key {key!r}: {problem}")
    if operator in ("In", "NotIn") and not values:
        raise _Invalid(f"{path}.values: must not be empty for operator {operator}")
    if operator in ("Exists", "DoesNotExist") and values:
        raise _Invalid(f"{path}.values: must be empty for operator {operator}")
    if operator in ("Gt", "Lt"):
        if len(values) != 1:
            raise _Invalid(f"{path}.values: operator {operator} needs exactly one value, got {len(values)}")
        if _parse_int64(values[0]) is None:
            raise _Invalid(f"{path}.values[0] {values[0]!r}: operator {operator} needs an integer")
    for index, value in enumerate(values):
        problem = label_value_problem(value)
        if problem:
            raise _Invalid(f"{path}.values[{index}] {value!r}: {problem}")
    return key, operator, values


def _parse_field(requirement: Any, path: str) -> tuple[str, str, str]:
    key, operator, values = _requirement_parts(requirement, path)
    if key not in _NODE_FIELDS:
        raise _Invalid(f"{path}.key: unsupported node field {key!r} (supported: {', '.join(_NODE_FIELDS)})")
    if operator not in _FIELD_OPERATORS:
        raise _Invalid(f"{path}.operator: unsupported value {operator!r} for a field (supported: In, NotIn)")
    if len(values) != 1:
        raise _Invalid(f"{path}.values: a field requirement needs exactly one value, got {len(values)}")
    return key, operator, values[0]


def _parse_int64(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64): optional sign, ASCII digits, within int64; None otherwise."""
    if not _INT64.fullmatch(text):
        return None
    number = int(text)
    return number if _INT64_MIN <= number <= _INT64_MAX else None


def _label_requirement_matches(key: str, operator: str, values: list[str], labels: Mapping[str, str]) -> bool:
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if not present:
        return False
    node_value = _parse_int64(labels[key])
    if node_value is None:
        return False
    wanted = _parse_int64(values[0])
    if wanted is None:
        return False
    return node_value > wanted if operator == "Gt" else node_value < wanted
