"""Node eligibility of BaseModels with the Kubernetes scheduler's semantics.

The tables cover every case of OME v0.1.3's scout_test.go (reference §11), corrected where the
reference §10 (defect 19) says OME differs from the scheduler, plus the scheduler's own rules for empty
and invalid selectors.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from modelagent.eligibility import Eligibility, is_eligible, match_node_selector, node_to_dict

NODE_NAME = "test-node"
NODE_LABELS = {
    "gpu-model": "a10",
    "region": "us-chicago-1",
    "memory": "32Gi",
    "cpu": "8",
    "empty": "",
    "literal-null": "null",
    "literal-true": "true",
    "zero-padded": "08",
    "huge": "99999999999999999999",
    "negative": "-3",
}


def make_node(name: str = NODE_NAME, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": dict(NODE_LABELS if labels is None else labels)}}


def make_model(storage: Any = None, *, spec: Any = "default", annotations: dict[str, str] | None = None,
               kind: str = "BaseModel") -> dict[str, Any]:
    model: dict[str, Any] = {"apiVersion": "ome.io/v1beta1", "kind": kind,
                             "metadata": {"name": "m", "namespace": "default"}}
    if annotations:
        model["metadata"]["annotations"] = annotations
    if spec == "default":
        model["spec"] = {"storage": storage} if storage is not None else {}
    elif spec is not None:
        model["spec"] = spec
    return model


def affinity(*terms: Any) -> dict[str, Any]:
    return {"storageUri": "hf://org/model",
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    requirement: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        requirement["values"] = list(values)
    return requirement


def term(*expressions: dict[str, Any], fields: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if expressions:
        out["matchExpressions"] = list(expressions)
    if fields is not None:
        out["matchFields"] = fields
    return out


# ---------------------------------------------------------------- shouldDownloadModel (scout_test.go)

SHOULD_DOWNLOAD = [
    ("nil spec", make_model(spec=None), True),
    ("empty spec", make_model(spec={}), True),
    ("empty storage", make_model({}), True),
    ("matching nodeSelector", make_model({"storageUri": "hf://a/b", "nodeSelector": {"gpu-model": "a10"}}), True),
    ("non-matching nodeSelector value", make_model({"nodeSelector": {"gpu-model": "h100"}}), False),
    ("nodeSelector key missing on node", make_model({"nodeSelector": {"rack": "r1"}}), False),
    ("nodeSelector all keys must match", make_model({"nodeSelector": {"gpu-model": "a10", "cpu": "16"}}), False),
    ("empty-string nodeSelector value matches empty label", make_model({"nodeSelector": {"empty": ""}}), True),
    ("affinity In match", make_model(affinity(term(expr("gpu-model", "In", "a10", "h100")))), True),
    ("affinity In non-match", make_model(affinity(term(expr("gpu-model", "In", "h100")))), False),
    ("affinity Exists present", make_model(affinity(term(expr("gpu-model", "Exists")))), True),
    ("affinity Exists absent", make_model(affinity(term(expr("rack", "Exists")))), False),
    ("multiple terms are ORed", make_model(affinity(term(expr("gpu-model", "In", "h100")),
                                                    term(expr("region", "In", "us-chicago-1")))), True),
    ("multiple terms none matching", make_model(affinity(term(expr("gpu-model", "In", "h100")),
                                                         term(expr("region", "In", "eu-frankfurt-1")))), False),
    ("expressions are ANDed, all match", make_model(affinity(term(expr("gpu-model", "In", "a10"),
                                                                  expr("cpu", "Gt", "4")))), True),
    ("expressions are ANDed, first fails", make_model(affinity(term(expr("gpu-model", "In", "h100"),
                                                                    expr("cpu", "Gt", "4")))), False),
    ("expressions are ANDed, second fails", make_model(affinity(term(expr("gpu-model", "In", "a10"),
                                                                     expr("cpu", "Gt", "16")))), False),
    ("selector and affinity both match",
     make_model({**affinity(term(expr("gpu-model", "In", "a10"))), "nodeSelector": {"region": "us-chicago-1"}}), True),
    ("selector mismatch wins over matching affinity",
     make_model({**affinity(term(expr("gpu-model", "In", "a10"))), "nodeSelector": {"region": "x"}}), False),
    ("affinity mismatch wins over matching selector",
     make_model({**affinity(term(expr("gpu-model", "In", "x"))), "nodeSelector": {"region": "us-chicago-1"}}), False),
    ("oci URI without selectors", make_model({"storageUri": "oci://foo/bar"}), True),
    ("hf URI without selectors", make_model({"storageUri": "hf://meta-llama/Llama-2-7b-hf"}), True),
    ("pvc URI", make_model({"storageUri": "pvc://my-pvc/models/llama2"}), False),
    ("pvc URI with namespace", make_model({"storageUri": "pvc://ns:my-pvc/models/llama2"}), False),
    ("pvc URI even when the node matches", make_model({"storageUri": "pvc://p/x", "nodeSelector": {"cpu": "8"}}), False),
    ("scheme match is exact: PVC:// is not a PVC", make_model({"storageUri": "PVC://p/x"}), True),
    ("missing storageUri with matching placement", make_model({"nodeSelector": {"cpu": "8"}}), True),
    ("preferred affinity terms are ignored",
     make_model({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
         {"weight": 1, "preference": term(expr("gpu-model", "In", "h100"))}]}}), True),
    ("required affinity null", make_model({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": None}}),
     True),
    # "Fallback" cases: the target-instance-shapes annotation is never consulted.
    ("no annotations", make_model({}), True),
    ("target-shapes annotation present", make_model({}, annotations={"models.ome.io/target-instance-shapes": "BM.GPU.A10.4"}),
     True),
    ("target-shapes annotation empty", make_model({}, annotations={"models.ome.io/target-instance-shapes": ""}), True),
    ("nodeSelector over non-matching annotation",
     make_model({"nodeSelector": {"gpu-model": "a10"}},
                annotations={"models.ome.io/target-instance-shapes": "BM.GPU.H100.8"}), True),
    ("ClusterBaseModel", make_model({"nodeSelector": {"cpu": "8"}}, kind="ClusterBaseModel"), True),
]


@pytest.mark.parametrize(("model", "expected"), [c[1:] for c in SHOULD_DOWNLOAD], ids=[c[0] for c in SHOULD_DOWNLOAD])
def test_should_download(model: dict[str, Any], expected: bool) -> None:
    result = is_eligible(model, make_node())
    assert isinstance(result, Eligibility)
    assert result.eligible is expected, result.reason
    assert bool(result) is expected
    assert result.reason


# ---------------------------------------------------------------- single expressions

EXPRESSIONS = [
    # nodeMatchesExpression cases of scout_test.go
    ("In match", expr("gpu-model", "In", "a10", "a100"), True),
    ("In mismatch", expr("gpu-model", "In", "h100"), False),
    ("NotIn match", expr("gpu-model", "NotIn", "h100"), True),
    ("NotIn mismatch", expr("gpu-model", "NotIn", "a10"), False),
    ("Exists present", expr("region", "Exists"), True),
    ("Exists absent", expr("zone", "Exists"), False),
    ("DoesNotExist absent", expr("zone", "DoesNotExist"), True),
    ("DoesNotExist present", expr("region", "DoesNotExist"), False),
    ("Gt 4", expr("cpu", "Gt", "4"), True),
    ("Gt 16", expr("cpu", "Gt", "16"), False),
    ("Lt 16", expr("cpu", "Lt", "16"), True),
    ("Lt 4", expr("cpu", "Lt", "4"), False),
    ("Gt equal is false", expr("cpu", "Gt", "8"), False),
    ("Lt equal is false", expr("cpu", "Lt", "8"), False),
    ("Gt on missing label", expr("gpus", "Gt", "1"), False),
    ("Lt on missing label", expr("gpus", "Lt", "1"), False),
    ("Gt with no values is invalid", expr("cpu", "Gt"), False),
    ("Lt with no values is invalid", expr("cpu", "Lt"), False),
    ("unknown operator", expr("cpu", "Equals", "8"), False),
    ("operators are case-sensitive", expr("gpu-model", "in", "a10"), False),
    # Edge values
    ("empty-string label In ['']", expr("empty", "In", ""), True),
    ("empty-string label NotIn ['x']", expr("empty", "NotIn", "x"), True),
    ("'null' matches literally", expr("literal-null", "In", "null"), True),
    ("'true' matches literally", expr("literal-true", "In", "true"), True),
    ("'true' is not a boolean", expr("literal-true", "In", "True"), False),
    # Corrected against OME (defect 19): the scheduler's semantics
    ("NotIn on a missing label matches", expr("zone", "NotIn", "a", "b"), True),
    ("Gt against a non-integer label is false (no string fallback)", expr("memory", "Gt", "16"), False),
    ("Lt against a non-integer label is false", expr("memory", "Lt", "64"), False),
    ("Gt with a non-integer value is invalid", expr("cpu", "Gt", "4Gi"), False),
    ("Gt with two values is invalid", expr("cpu", "Gt", "4", "5"), False),
    ("Gt compares integers, not strings", expr("cpu", "Gt", "10"), False),
    ("Lt compares integers, not strings", expr("cpu", "Lt", "10"), True),
    ("leading zeros are integers", expr("zero-padded", "Gt", "007"), True),
    ("label beyond int64 never matches", expr("huge", "Gt", "1"), False),
    ("negative label value parses", expr("negative", "Lt", "0"), True),
    ("value beyond int64 is invalid", expr("cpu", "Lt", "99999999999999999999"), False),
    ("negative requirement value is not a valid label value", expr("cpu", "Gt", "-1"), False),
    # Value-count and key validation (labels.NewRequirement)
    ("In with no values is invalid", expr("gpu-model", "In"), False),
    ("NotIn with no values is invalid (not 'matches everything')", expr("zone", "NotIn"), False),
    ("Exists with values is invalid", expr("region", "Exists", "us-chicago-1"), False),
    ("DoesNotExist with values is invalid", expr("zone", "DoesNotExist", "x"), False),
    ("invalid label key", expr("bad key!", "DoesNotExist"), False),
    ("invalid label value", expr("zone", "NotIn", "not a label value"), False),
    ("over-long label value", expr("zone", "NotIn", "x" * 64), False),
    ("prefixed key", expr("node.kubernetes.io/instance-type", "DoesNotExist"), True),
]


@pytest.mark.parametrize(("requirement", "expected"), [c[1:] for c in EXPRESSIONS], ids=[c[0] for c in EXPRESSIONS])
def test_single_expression(requirement: dict[str, Any], expected: bool) -> None:
    result = is_eligible(make_model(affinity(term(requirement))), make_node())
    assert result.eligible is expected, result.reason


# ---------------------------------------------------------------- terms and matchFields

TERMS = [
    # nodeMatchesSelectorTerm
    ("single expression match", [term(expr("gpu-model", "In", "a10"))], True),
    ("single expression mismatch", [term(expr("gpu-model", "In", "h100"))], False),
    ("AND: both hold", [term(expr("gpu-model", "Exists"), expr("region", "In", "us-chicago-1"))], True),
    ("AND: one fails", [term(expr("gpu-model", "Exists"), expr("region", "In", "eu"))], False),
    # MatchFields
    ("metadata.name In [test-node]", [term(fields=[expr("metadata.name", "In", NODE_NAME)])], True),
    ("metadata.name In [other-node]", [term(fields=[expr("metadata.name", "In", "other-node")])], False),
    ("metadata.name NotIn [other-node]", [term(fields=[expr("metadata.name", "NotIn", "other-node")])], True),
    ("metadata.name NotIn [test-node]", [term(fields=[expr("metadata.name", "NotIn", NODE_NAME)])], False),
    ("expressions and fields both match",
     [term(expr("gpu-model", "In", "a10"), fields=[expr("metadata.name", "In", NODE_NAME)])], True),
    ("fields match, expressions fail",
     [term(expr("gpu-model", "In", "h100"), fields=[expr("metadata.name", "In", NODE_NAME)])], False),
    ("expressions match, fields fail",
     [term(expr("gpu-model", "In", "a10"), fields=[expr("metadata.name", "In", "other")])], False),
    ("a label named metadata.name does not shadow the field",
     [term(fields=[expr("metadata.name", "In", "shadow")])], False),
    ("field other than metadata.name is invalid", [term(fields=[expr("metadata.namespace", "NotIn", "x")])], False),
    ("field with Exists is invalid", [term(fields=[expr("metadata.name", "Exists")])], False),
    ("field In with two values is invalid", [term(fields=[expr("metadata.name", "In", NODE_NAME, "other")])], False),
    ("field In with no values is invalid", [term(fields=[expr("metadata.name", "In")])], False),
    # Empty and invalid terms
    ("empty term list matches nothing", [], False),
    ("an empty term matches nothing", [{}], False),
    ("a term with empty lists matches nothing", [{"matchExpressions": [], "matchFields": []}], False),
    ("a null term matches nothing", [None], False),
    ("an empty term does not stop the next", [{}, term(expr("cpu", "In", "8"))], True),
    ("an invalid term does not stop the next", [term(expr("cpu", "Bogus", "8")), term(expr("cpu", "In", "8"))], True),
    ("an invalid requirement voids its whole term",
     [term(expr("cpu", "In", "8"), expr("cpu", "Gt", "x"))], False),
    ("an invalid field voids its term", [term(expr("cpu", "In", "8"), fields=[expr("spec.unschedulable", "In", "x")])],
     False),
]


@pytest.mark.parametrize(("terms", "expected"), [c[1:] for c in TERMS], ids=[c[0] for c in TERMS])
def test_terms(terms: list[Any], expected: bool) -> None:
    labels = dict(NODE_LABELS, **{"metadata.name": "shadow"}) if "shadow" in repr(terms) else NODE_LABELS
    result = is_eligible(make_model(affinity(*terms)), make_node(labels=labels))
    assert result.eligible is expected, result.reason


def test_missing_node_selector_terms_matches_nothing() -> None:
    storage = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}
    result = is_eligible(make_model(storage), make_node())
    assert not result.eligible
    assert "nodeSelectorTerms" in result.reason


def test_fields_are_ignored_for_a_nameless_node() -> None:
    # extractNodeFields gives an empty field set for a node without a name, and the scheduler only
    # evaluates matchFields against a non-empty set.
    model = make_model(affinity(term(fields=[expr("metadata.name", "In", "anything")])))
    assert is_eligible(model, {"metadata": {"labels": {}}}).eligible
    assert not is_eligible(model, make_node()).eligible


# ---------------------------------------------------------------- reasons name the field at fault

REASONS = [
    ("pvc", make_model({"storageUri": "pvc://ns:claim/sub"}), ["spec.storage.storageUri", "pvc://ns:claim/sub"]),
    ("selector value", make_model({"nodeSelector": {"gpu-model": "h100"}}),
     ["spec.storage.nodeSelector", "gpu-model", "'a10'", "'h100'"]),
    ("selector key", make_model({"nodeSelector": {"rack": "r1"}}), ["spec.storage.nodeSelector", "'rack'", NODE_NAME]),
    ("selector not a map", make_model({"nodeSelector": ["gpu"]}), ["spec.storage.nodeSelector", "list"]),
    ("selector value not a string", make_model({"nodeSelector": {"cpu": 8}}), ["spec.storage.nodeSelector['cpu']", "int"]),
    ("storage not an object", make_model("hf://x/y"), ["spec.storage", "must be an object", "str"]),
    ("spec not an object", make_model(spec=["x"]), ["spec", "must be an object"]),
    ("nodeAffinity not an object", make_model({"nodeAffinity": "gpu"}), ["spec.storage.nodeAffinity", "str"]),
    ("required not an object", make_model({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": []}}),
     ["requiredDuringSchedulingIgnoredDuringExecution", "must be an object"]),
    ("terms not a list", make_model({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                                                      {"nodeSelectorTerms": {"a": 1}}}}),
     ["nodeSelectorTerms", "must be a list"]),
    ("empty terms", make_model(affinity()), ["nodeSelectorTerms is empty"]),
    ("expression mismatch", make_model(affinity(term(expr("gpu-model", "In", "h100")))),
     ["nodeSelectorTerms[0]", "matchExpressions[0]", "gpu-model", "a10"]),
    ("unknown operator", make_model(affinity(term(expr("cpu", "Equals", "8")))),
     ["nodeSelectorTerms[0].matchExpressions[0].operator", "'Equals'", "invalid"]),
    ("Gt value", make_model(affinity(term(expr("cpu", "Gt", "4Gi")))), ["matchExpressions[0].values[0]", "'4Gi'", "integer"]),
    ("bad key", make_model(affinity(term(expr("bad key!", "Exists")))), ["matchExpressions[0].key", "'bad key!'"]),
    ("bad field", make_model(affinity(term(fields=[expr("metadata.uid", "In", "x")])))
     , ["matchFields[0].key", "'metadata.uid'"]),
    ("expressions not a list", make_model(affinity({"matchExpressions": "cpu"})), ["matchExpressions", "must be a list"]),
    ("values not strings", make_model(affinity(term({"key": "cpu", "operator": "In", "values": [8]}))),
     ["matchExpressions[0].values", "list of strings"]),
    ("requirement not an object", make_model(affinity({"matchExpressions": ["cpu"]})),
     ["matchExpressions[0]", "must be an object"]),
    ("second term reported too", make_model(affinity(term(expr("gpu-model", "In", "x")), term(expr("zone", "Exists")))),
     ["nodeSelectorTerms[0]", "nodeSelectorTerms[1]", "no label 'zone'"]),
]


@pytest.mark.parametrize(("model", "fragments"), [c[1:] for c in REASONS], ids=[c[0] for c in REASONS])
def test_reasons_name_the_field(model: dict[str, Any], fragments: list[str]) -> None:
    result = is_eligible(model, make_node())
    assert not result.eligible
    for fragment in fragments:
        assert fragment in result.reason, (fragment, result.reason)


def test_eligible_reasons() -> None:
    assert "no placement constraints" in is_eligible(make_model({"storageUri": "hf://a/b"}), make_node()).reason
    assert "storageUri" in is_eligible(make_model(spec=None), make_node()).reason
    assert "spec.storage is not set" in is_eligible(make_model(spec={}), make_node()).reason
    reason = is_eligible(make_model({**affinity(term(expr("cpu", "In", "7")), term(expr("cpu", "In", "8"))),
                                     "nodeSelector": {"gpu-model": "a10"}}), make_node()).reason
    assert "spec.storage.nodeSelector" in reason and "nodeSelectorTerms[1]" in reason and NODE_NAME in reason


# ---------------------------------------------------------------- node forms and argument errors


def test_v1node_objects_are_accepted() -> None:
    node = client.V1Node(metadata=client.V1ObjectMeta(name=NODE_NAME, labels={"gpu-model": "a10"}))
    assert node_to_dict(node)["metadata"] == {"name": NODE_NAME, "labels": {"gpu-model": "a10"}}
    assert is_eligible(make_model(affinity(term(expr("gpu-model", "In", "a10")))), node).eligible
    assert not is_eligible(make_model(affinity(term(expr("gpu-model", "In", "h100")))), node).eligible
    fields = make_model(affinity(term(fields=[expr("metadata.name", "In", NODE_NAME)])))
    assert is_eligible(fields, node).eligible


def test_node_without_labels() -> None:
    bare = {"metadata": {"name": NODE_NAME}}
    assert is_eligible(make_model(affinity(term(expr("gpu", "DoesNotExist")))), bare).eligible
    assert is_eligible(make_model(affinity(term(expr("gpu", "NotIn", "a10")))), bare).eligible
    assert not is_eligible(make_model({"nodeSelector": {"gpu": "a10"}}), bare).eligible


def test_argument_errors() -> None:
    with pytest.raises(TypeError, match="model must be a dict"):
        is_eligible(["not", "a", "model"], make_node())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="node must be a dict"):
        is_eligible(make_model({}), "node-1")
    with pytest.raises(ValueError, match="metadata.labels"):
        is_eligible(make_model({}), {"metadata": {"name": "n", "labels": {"a": 1}}})


def test_match_node_selector_directly() -> None:
    selector = {"nodeSelectorTerms": [term(expr("cpu", "Gt", "4")), term(expr("gpu-model", "In", "h100"))]}
    result = match_node_selector(selector, make_node(), path="pod.affinity")
    assert result.eligible and result.reason == "pod.affinity.nodeSelectorTerms[0]"
    result = match_node_selector({"nodeSelectorTerms": [term(expr("cpu", "Gt", "64"))]}, make_node())
    assert not result.eligible and result.reason.startswith("nodeSelector:")


def test_model_is_not_modified() -> None:
    model = make_model({**affinity(term(expr("cpu", "In", "8"))), "nodeSelector": {"cpu": "8"}})
    snapshot = repr(model)
    is_eligible(model, make_node())
    assert repr(model) == snapshot
