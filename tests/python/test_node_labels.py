"""NodeLabelReconciler through the real kubernetes client against the fake API server."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from kubernetes import client
from modelagent.agent.model_ref import ModelRef
from modelagent.agent.node_labels import (
    NodeLabelError,
    NodeLabelReconciler,
    escape_pointer,
    is_model_label,
    label_patch,
)

NODE = "test-node"
BM = ModelRef("BaseModel", "default", "test-model", "uid-1")
CBM = ModelRef("ClusterBaseModel", None, "test-cluster-model", "uid-2")


@pytest.fixture
def core(kube_api_client: Any) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api_client)


@pytest.fixture
def node(fake_kube: Any) -> str:
    fake_kube.add_node(NODE, labels={"kubernetes.io/hostname": NODE})
    return NODE


def labels_of(fake_kube: Any, name: str = NODE) -> dict[str, str]:
    return fake_kube.get("nodes", name)["metadata"].get("labels") or {}


def patches(fake_kube: Any) -> list[Any]:
    return [r for r in fake_kube.find_requests(verb="patch", resource="nodes")]


def test_label_keys_are_omes() -> None:
    assert BM.label_key == "models.ome.io/default.basemodel.test-model"
    assert CBM.label_key == "models.ome.io/clusterbasemodel.test-cluster-model"


def test_patch_payload_add_and_remove() -> None:
    add = label_patch({}, {BM.label_key: "Ready"})
    assert add == [{"op": "add", "path": "/metadata/labels/models.ome.io~1default.basemodel.test-model",
                    "value": "Ready"}]
    remove = label_patch({BM.label_key: "Ready"}, {BM.label_key: None})
    assert remove == [{"op": "remove", "path": "/metadata/labels/models.ome.io~1default.basemodel.test-model"}]
    assert "value" not in json.loads(json.dumps(remove))[0]
    assert label_patch({BM.label_key: "Ready"}, {BM.label_key: "Ready"}) == []
    assert label_patch({}, {BM.label_key: None}) == []
    assert escape_pointer("a/b~c") == "a~1b~0c"


@pytest.mark.parametrize("status", ["Ready", "Updating", "Failed"])
def test_each_state_is_written(fake_kube: Any, core: client.CoreV1Api, node: str, status: str) -> None:
    labeler = NodeLabelReconciler(core, node)
    assert labeler.reconcile(BM, status) is True
    assert labels_of(fake_kube)[BM.label_key] == status
    assert labels_of(fake_kube)["kubernetes.io/hostname"] == NODE
    (request,) = patches(fake_kube)
    assert request.content_type == "application/json-patch+json"


def test_deleted_removes_the_label(fake_kube: Any, core: client.CoreV1Api, node: str) -> None:
    labeler = NodeLabelReconciler(core, node)
    labeler.reconcile(CBM, "Ready")
    labeler.reconcile(CBM, "Deleted")
    assert CBM.label_key not in labels_of(fake_kube)
    assert labels_of(fake_kube) == {"kubernetes.io/hostname": NODE}


def test_idempotent_no_patch_when_already_there(fake_kube: Any, core: client.CoreV1Api, node: str) -> None:
    labeler = NodeLabelReconciler(core, node)
    labeler.set_label(BM, "Ready")
    fake_kube.clear_requests()
    labeler.set_label(BM, "Ready")
    labeler.remove_label(CBM)  # absent: nothing to remove, no "path not found" patch sent
    assert patches(fake_kube) == []
    assert len(fake_kube.find_requests(verb="get", resource="nodes")) == 2


def test_node_without_labels_map(fake_kube: Any, core: client.CoreV1Api) -> None:
    fake_kube.create("nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "bare"}})
    labeler = NodeLabelReconciler(core, "bare")
    assert labeler.set_label(BM, "Updating") is True
    assert labels_of(fake_kube, "bare") == {BM.label_key: "Updating"}
    labeler.set_label(CBM, "Ready")
    assert labels_of(fake_kube, "bare") == {BM.label_key: "Updating", CBM.label_key: "Ready"}


def test_labels_map_added_concurrently_is_not_overwritten(fake_kube: Any, core: client.CoreV1Api) -> None:
    fake_kube.create("nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "bare"}})
    real_read = core.read_node
    calls = {"n": 0}

    def racing_read(name: str, **kwargs: Any) -> Any:
        node = real_read(name, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:  # someone labels the node between our read and our patch
            fake_kube.patch("nodes", "bare", {"metadata": {"labels": {"team": "a"}}})
        return node

    core.read_node = racing_read  # type: ignore[method-assign]
    NodeLabelReconciler(core, "bare", backoff=0).set_label(BM, "Ready")
    assert labels_of(fake_kube, "bare") == {"team": "a", BM.label_key: "Ready"}
    assert calls["n"] == 2


def test_conflicts_and_server_errors_are_retried(fake_kube: Any, core: client.CoreV1Api, node: str) -> None:
    fake_kube.fail_next(2, 409, verb="patch", path="/nodes/")
    fake_kube.fail_next(1, 500, verb="patch", path="/nodes/")
    NodeLabelReconciler(core, node, retries=5, backoff=0).set_label(BM, "Failed")
    assert labels_of(fake_kube)[BM.label_key] == "Failed"
    assert len(fake_kube.find_requests(verb="get", resource="nodes")) == 4  # re-read before every attempt


def test_permanent_failure_names_node_and_label(fake_kube: Any, core: client.CoreV1Api, node: str) -> None:
    fake_kube.fail_next(3, 500, verb="patch", path="/nodes/")
    with pytest.raises(NodeLabelError) as info:
        NodeLabelReconciler(core, node, retries=3, backoff=0).set_label(BM, "Ready")
    message = str(info.value)
    assert NODE in message and BM.label_key in message and "after 3 attempts" in message and "500" in message
    assert BM.label_key not in labels_of(fake_kube)


def test_forbidden_is_not_retried(fake_kube: Any, core: client.CoreV1Api, node: str) -> None:
    fake_kube.fail_next(1, 403, verb="patch", path="/nodes/")
    with pytest.raises(NodeLabelError, match="403"):
        NodeLabelReconciler(core, node, retries=5, backoff=0).set_label(BM, "Ready")
    assert len(patches(fake_kube)) == 1


def test_missing_node_gives_up_quietly(fake_kube: Any, core: client.CoreV1Api,
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "modelagent.agent.node_labels")
    assert NodeLabelReconciler(core, "ghost").set_label(BM, "Ready") is False
    assert "ghost" in caplog.text and "not found" in caplog.text
    assert patches(fake_kube) == []


def test_invalid_label_key_and_value(core: client.CoreV1Api, node: str) -> None:
    labeler = NodeLabelReconciler(core, node)
    with pytest.raises(ValueError, match="invalid node label key 'bad key!'"):
        labeler.apply({"bad key!": "Ready"})
    with pytest.raises(ValueError, match="invalid value"):
        labeler.apply({BM.label_key: "not ok!"})
    with pytest.raises(ValueError):
        labeler.reconcile(BM, "Bogus")
    with pytest.raises(ValueError, match="remove_label"):
        labeler.set_label(BM, "Deleted")


def test_stale_model_labels_removed_others_kept(fake_kube: Any, core: client.CoreV1Api, node: str) -> None:
    fake_kube.patch("nodes", node, {"metadata": {"labels": {
        BM.label_key: "Ready", CBM.label_key: "Ready", "models.ome.io/other": "x"}}})
    labeler = NodeLabelReconciler(core, node)
    labeler.apply({}, remove_unless={CBM.label_key})
    assert labels_of(fake_kube) == {"kubernetes.io/hostname": NODE, CBM.label_key: "Ready",
                                    "models.ome.io/other": "x"}
    assert labeler.labels() == {CBM.label_key: "Ready"}


def test_is_model_label() -> None:
    assert is_model_label(BM.label_key, "Ready")
    assert is_model_label(CBM.label_key)
    assert not is_model_label("models.ome.io/other")
    assert not is_model_label(BM.label_key, "whatever")
    assert not is_model_label("example.com/default.basemodel.x")


def test_truncated_keys_of_long_names(fake_kube: Any, core: client.CoreV1Api, node: str) -> None:
    long_cbm = ModelRef("ClusterBaseModel", None, "meta-llama-3-1-405b-instruct-fp8-dynamic")
    long_bm = ModelRef("BaseModel", "production-inference", "meta-llama-3-1-70b-instruct")
    labeler = NodeLabelReconciler(core, node)
    labeler.set_label(long_cbm, "Ready")
    labeler.set_label(long_bm, "Updating")
    labels = labels_of(fake_kube)
    assert labels["models.ome.io/clusterbasemodel.d30d2100-5b-instruct-fp8-dynamic"] == "Ready"
    assert labels["models.ome.io/ea4a9b32.basemodel.meta-llama-3-1-70b-instruct"] == "Updating"
    labeler.remove_label(long_cbm)
    assert "models.ome.io/clusterbasemodel.d30d2100-5b-instruct-fp8-dynamic" not in labels_of(fake_kube)
