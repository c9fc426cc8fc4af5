"""ConfigMapReconciler and KubernetesStatusSink through the real kubernetes client against the fake API."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from kubernetes import client
from modelagent import ModelEntry, ModelEntryError, configmap_key
from modelagent.agent.configmap import (
    MAX_DATA_BYTES,
    ConfigMapError,
    ConfigMapReconciler,
    data_size,
)
from modelagent.agent.kubernetes_sink import KubernetesStatusSink
from modelagent.agent.model_ref import ModelRef
from modelagent.agent.node_labels import NodeLabelError
from modelagent.agent.status_sink import StatusSink

NODE = "test-node"
NS = "test-namespace"
BM = ModelRef("BaseModel", "default", "test-model", "uid-1")
CBM = ModelRef("ClusterBaseModel", None, "test-cluster-model", "uid-2")
LABELS = {"models.ome/basemodel-status": "true", "node": NODE}
ANNOTATIONS = {"models.ome.io/node-name": NODE, "models.ome.io/managed-by": "model-agent"}

CONFIG = {
    "modelType": "llama",
    "modelArchitecture": "LlamaForCausalLM",
    "modelFramework": {"name": "transformers", "version": "4.33.2"},
    "modelFormat": {"name": "safetensors", "version": "1.0.0"},
    "modelParameterSize": "7B",
    "maxTokens": 4096,
    "modelCapabilities": ["CHAT"],
    "decodedModelConfiguration": {"model_type": "llama", "context_length": 4096, "has_vision": False},
}
PROGRESS = {"phase": "Downloading", "totalBytes": 100, "completedBytes": 40, "totalFiles": 3,
            "completedFiles": 1, "speedBytesPerSec": 12.5, "lastUpdated": "2026-01-01T00:00:00Z"}


@pytest.fixture
def core(fake_kube: Any, kube_api_client: Any) -> client.CoreV1Api:
    fake_kube.add_namespace(NS)
    fake_kube.add_node(NODE, labels={"kubernetes.io/hostname": NODE})
    return client.CoreV1Api(kube_api_client)


@pytest.fixture
def rec(core: client.CoreV1Api) -> ConfigMapReconciler:
    return ConfigMapReconciler(core, NODE, NS, backoff=0)


def stored(fake_kube: Any) -> dict[str, Any]:
    return fake_kube.get("configmaps", NODE, NS)


def entry(fake_kube: Any, ref: ModelRef) -> dict[str, Any]:
    return json.loads(stored(fake_kube)["data"][ref.configmap_key])


def test_key_matches_ome(rec: ConfigMapReconciler) -> None:
    assert BM.configmap_key == configmap_key("BaseModel", "test-model", "default") == "default.basemodel.test-model"
    assert CBM.configmap_key == "clusterbasemodel.test-cluster-model"
    assert rec.name == NODE


def test_first_write_creates_configmap_with_labels_and_annotations(fake_kube: Any, rec: ConfigMapReconciler) -> None:
    rec.set_status(BM, "Ready")
    cm = stored(fake_kube)
    assert cm["metadata"]["labels"] == LABELS
    assert cm["metadata"]["annotations"] == ANNOTATIONS
    text = cm["data"][BM.configmap_key]
    assert text == '{"name":"test-model","status":"Ready"}'
    assert ModelEntry.from_json(text).config is None


def test_metadata_write_defaults_to_ready_and_keeps_existing_status(fake_kube: Any, rec: ConfigMapReconciler) -> None:
    rec.set_config(CBM, CONFIG)
    got = entry(fake_kube, CBM)
    assert got["status"] == "Ready"
    assert got["config"]["modelType"] == "llama"
    assert got["config"]["modelFramework"] == {"name": "transformers", "version": "4.33.2"}
    assert got["config"]["modelFormat"]["name"] == "safetensors"
    rec.set_status(BM, "Failed", reason="boom")
    rec.set_config(BM, CONFIG)
    got = entry(fake_kube, BM)
    assert got["status"] == "Failed" and got["reason"] == "boom" and got["config"]["maxTokens"] == 4096


def test_status_keeps_config_and_entry_is_go_identical(fake_kube: Any, rec: ConfigMapReconciler) -> None:
    rec.set_status(BM, "Updating")
    rec.set_config(BM, CONFIG)
    rec.set_status(BM, "Ready")
    text = stored(fake_kube)["data"][BM.configmap_key]
    assert text == ModelEntry.from_dict({"name": "test-model", "status": "Ready", "config": CONFIG}).to_json()
    assert text.startswith('{"name":"test-model","status":"Ready","config":{"modelType":"llama"')


def test_failed_reason_set_and_cleared(fake_kube: Any, rec: ConfigMapReconciler) -> None:
    rec.set_status(BM, "Failed", reason="storage type s3 is not supported by this agent yet")
    assert entry(fake_kube, BM)["reason"] == "storage type s3 is not supported by this agent yet"
    rec.set_status(BM, "Updating")
    assert "reason" not in entry(fake_kube, BM)


def test_progress_set_cleared_and_never_after_final(fake_kube: Any, rec: ConfigMapReconciler) -> None:
    rec.set_progress(BM, PROGRESS)  # no entry yet: nothing written
    assert not fake_kube.exists("configmaps", NODE, NS)
    rec.set_status(BM, "Updating")
    rec.set_progress(BM, PROGRESS)
    assert entry(fake_kube, BM)["progress"] == PROGRESS
    rec.set_progress(BM, None)
    assert "progress" not in entry(fake_kube, BM)
    rec.set_progress(BM, PROGRESS)
    rec.set_status(BM, "Ready")
    assert "progress" not in entry(fake_kube, BM)
    rec.set_progress(BM, PROGRESS)
    assert "progress" not in entry(fake_kube, BM)


def test_bad_progress_and_config_rejected_naming_the_field(rec: ConfigMapReconciler) -> None:
    rec.set_status(BM, "Updating")
    with pytest.raises(ModelEntryError, match="default.basemodel.test-model.*totalBytes"):
        rec.set_progress(BM, {**PROGRESS, "totalBytes": -1})
    with pytest.raises(ModelEntryError, match="maxTokens"):
        rec.set_config(BM, {"maxTokens": "many"})
    with pytest.raises(ValueError, match="Deleted"):
        rec.set_status(BM, "Deleted")


def test_invalid_existing_json_is_replaced(fake_kube: Any, rec: ConfigMapReconciler) -> None:
    fake_kube.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": NODE, "namespace": NS},
                                    "data": {BM.configmap_key: "{not json", "other": "kept"}}, NS)
    rec.set_config(BM, CONFIG)
    cm = stored(fake_kube)
    assert json.loads(cm["data"][BM.configmap_key])["status"] == "Ready"
    assert cm["data"]["other"] == "kept"
    assert cm["metadata"]["labels"] == LABELS and cm["metadata"]["annotations"] == ANNOTATIONS


def test_existing_entry_fields_from_newer_agents_survive(fake_kube: Any, rec: ConfigMapReconciler) -> None:
    newer = {"name": "test-model", "status": "Ready", "config": {"modelType": "llama", "apiCapabilities": ["x"]},
             "artifact": {"sha": "abc"}}
    fake_kube.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": NODE, "namespace": NS, "labels": LABELS},
                                    "data": {BM.configmap_key: json.dumps(newer)}}, NS)
    rec.set_status(BM, "Updating")
    got = entry(fake_kube, BM)
    assert got["status"] == "Updating"
    assert got["artifact"] == {"sha": "abc"} and got["config"]["apiCapabilities"] == ["x"]


def test_remove_and_remove_again(fake_kube: Any, rec: ConfigMapReconciler) -> None:
    rec.set_status(BM, "Ready")
    rec.set_status(CBM, "Ready")
    rec.remove(BM)
    assert list(stored(fake_kube)["data"]) == [CBM.configmap_key]
    assert BM.configmap_key not in rec.known()
    rec.remove(BM)
    fake_kube.delete("configmaps", NODE, NS)
    rec.remove(CBM)  # no ConfigMap: nothing to do, nothing created
    assert not fake_kube.exists("configmaps", NODE, NS)


def test_conflicts_are_retried_with_resource_version(fake_kube: Any, rec: ConfigMapReconciler) -> None:
    rec.set_status(BM, "Updating")
    fake_kube.fail_next(2, 409, verb="update", path="/configmaps/")
    rec.set_status(BM, "Ready")
    assert entry(fake_kube, BM)["status"] == "Ready"
    updates = fake_kube.find_requests(verb="update", resource="configmaps")
    assert len(updates) == 3
    assert all(r.body["metadata"]["resourceVersion"] for r in updates)


def test_concurrent_writer_is_not_lost(fake_kube: Any, core: client.CoreV1Api) -> None:
    rec = ConfigMapReconciler(core, NODE, NS, backoff=0)
    rec.set_status(BM, "Updating")
    real_read = core.read_namespaced_config_map
    calls = {"n": 0}

    def racing_read(name: str, namespace: str, **kwargs: Any) -> Any:
        got = real_read(name, namespace, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:  # another writer (the controller, a human) changes it after our read
            cm = fake_kube.get("configmaps", NODE, NS)
            cm["data"]["someone.basemodel.else"] = '{"name":"else","status":"Ready"}'
            fake_kube.update("configmaps", cm, NS)
        return got

    core.read_namespaced_config_map = racing_read  # type: ignore[method-assign]
    rec.set_status(BM, "Ready")
    data = stored(fake_kube)["data"]
    assert json.loads(data[BM.configmap_key])["status"] == "Ready"
    assert "someone.basemodel.else" in data
    assert calls["n"] == 2


def test_persistent_conflict_gives_clear_error(fake_kube: Any, rec: ConfigMapReconciler) -> None:
    rec.set_status(BM, "Updating")
    fake_kube.fail_next(5, 409, verb="update", path="/configmaps/")
    with pytest.raises(ConfigMapError, match=f"{NS}/{NODE}.*after 5 attempts.*409"):
        rec.set_status(BM, "Ready")
    # the intent is remembered: the next heal writes it
    rec.heal()
    assert entry(fake_kube, BM)["status"] == "Ready"


def test_parallel_writers_serialise(fake_kube: Any, rec: ConfigMapReconciler) -> None:
    refs = [ModelRef("BaseModel", "default", f"m{i}") for i in range(8)]
    threads = [threading.Thread(target=rec.set_status, args=(r, "Ready")) for r in refs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert set(stored(fake_kube)["data"]) == {r.configmap_key for r in refs}


def test_heal_recreates_deleted_configmap_with_everything(fake_kube: Any, rec: ConfigMapReconciler) -> None:
    rec.set_status(BM, "Ready")
    rec.set_config(BM, CONFIG)
    rec.set_status(CBM, "Failed", reason="nope")
    before = stored(fake_kube)["data"]
    fake_kube.delete("configmaps", NODE, NS)
    rec.heal()
    cm = stored(fake_kube)
    assert cm["data"] == before  # config (framework, format, decoded) kept, unlike OME
    assert cm["metadata"]["labels"] == LABELS and cm["metadata"]["annotations"] == ANNOTATIONS


def test_heal_restores_removed_and_edited_entries(fake_kube: Any, rec: ConfigMapReconciler) -> None:
    rec.set_status(BM, "Ready")
    rec.set_status(CBM, "Ready")
    good = stored(fake_kube)["data"]
    cm = stored(fake_kube)
    del cm["data"][BM.configmap_key]
    cm["data"][CBM.configmap_key] = "{garbage"
    fake_kube.update("configmaps", cm, NS)
    rec.heal()
    assert stored(fake_kube)["data"] == good


def test_heal_restores_stripped_labels_and_annotations(fake_kube: Any, rec: ConfigMapReconciler) -> None:
    rec.set_status(BM, "Ready")
    cm = stored(fake_kube)
    cm["metadata"]["labels"] = {"extra": "x"}
    cm["metadata"]["annotations"] = {"models.ome.io/managed-by": "someone"}
    fake_kube.update("configmaps", cm, NS)
    rec.heal()
    meta = stored(fake_kube)["metadata"]
    assert meta["labels"] == {**LABELS, "extra": "x"}
    assert meta["annotations"] == ANNOTATIONS


def test_heal_removes_stale_entries_only_with_live_keys(fake_kube: Any, rec: ConfigMapReconciler) -> None:
    rec.set_status(BM, "Ready")
    cm = stored(fake_kube)
    cm["data"]["old.basemodel.gone"] = '{"name":"gone","status":"Ready"}'
    fake_kube.update("configmaps", cm, NS)
    rec.heal()
    assert "old.basemodel.gone" in stored(fake_kube)["data"]
    rec.heal({BM.configmap_key})
    assert list(stored(fake_kube)["data"]) == [BM.configmap_key]
    rec.heal(set())
    assert stored(fake_kube)["data"] in (None, {})
    assert rec.desired() == {}


def test_heal_keeps_keys_that_are_not_model_entries(fake_kube: Any, rec: ConfigMapReconciler) -> None:
    rec.set_status(BM, "Ready")
    cm = stored(fake_kube)
    cm["data"]["filler"] = "someone else's data"
    cm["data"]["old.basemodel.gone"] = '{"name":"gone","status":"Ready"}'
    fake_kube.update("configmaps", cm, NS)
    rec.heal({BM.configmap_key})
    assert stored(fake_kube)["data"] == {BM.configmap_key: stored(fake_kube)["data"][BM.configmap_key],
                                         "filler": "someone else's data"}


def test_heal_is_a_no_op_when_in_sync(fake_kube: Any, rec: ConfigMapReconciler) -> None:
    rec.set_status(BM, "Ready")
    fake_kube.clear_requests()
    rec.heal({BM.configmap_key})
    assert fake_kube.find_requests(verb="update") == [] and fake_kube.find_requests(verb="create") == []


def test_heal_when_configmap_vanishes_mid_write(fake_kube: Any, core: client.CoreV1Api) -> None:
    rec = ConfigMapReconciler(core, NODE, NS, backoff=0)
    rec.set_status(BM, "Ready")
    cm = stored(fake_kube)
    del cm["data"][BM.configmap_key]
    fake_kube.update("configmaps", cm, NS)
    real_read = core.read_namespaced_config_map
    calls = {"n": 0}

    def vanishing_read(name: str, namespace: str, **kwargs: Any) -> Any:
        got = real_read(name, namespace, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:
            fake_kube.delete("configmaps", NODE, NS)
        return got

    core.read_namespaced_config_map = vanishing_read  # type: ignore[method-assign]
    done = threading.Event()
    worker = threading.Thread(target=lambda: (rec.heal(), done.set()))
    worker.start()
    worker.join(30)
    assert done.is_set()  # no deadlock
    cm = stored(fake_kube)
    assert json.loads(cm["data"][BM.configmap_key])["status"] == "Ready"
    assert cm["metadata"]["labels"] == LABELS


def test_size_guard_drops_decoded_configuration_largest_first(fake_kube: Any, rec: ConfigMapReconciler,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    refs = [ModelRef("BaseModel", "default", f"big{i}") for i in range(5)]
    for i, ref in enumerate(refs):
        config = {**CONFIG, "decodedModelConfiguration": {"blob": "x" * (200_000 + i * 10_000)}}
        rec.set_status(ref, "Updating")
        rec.set_config(ref, config)
    data = stored(fake_kube)["data"]
    assert data_size(data) <= MAX_DATA_BYTES
    decoded = {k: "decodedModelConfiguration" in json.loads(v)["config"] for k, v in data.items()}
    assert decoded[refs[4].configmap_key] is False  # the largest went first
    assert decoded[refs[0].configmap_key] is True
    assert all(json.loads(v)["config"]["modelType"] == "llama" for v in data.values())
    assert "decodedModelConfiguration" in caplog.text
    fake_kube.clear_requests()
    rec.heal()  # the desired state was trimmed too: healing does not overflow again
    assert fake_kube.find_requests(verb="update") == []


def test_oversized_single_entry_error_is_clear(fake_kube: Any, core: client.CoreV1Api) -> None:
    rec = ConfigMapReconciler(core, NODE, NS, backoff=0)
    rec.set_status(BM, "Updating")
    with pytest.raises(ConfigMapError, match="422"):
        rec.set_config(BM, {**CONFIG, "modelType": "y" * (MAX_DATA_BYTES + 1)})


def test_known_reads_configmap_and_overlays_own_writes(fake_kube: Any, rec: ConfigMapReconciler) -> None:
    fake_kube.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": NODE, "namespace": NS},
                                    "data": {"a.basemodel.x": '{"name":"x","status":"Ready"}', "junk": "{"}}, NS)
    rec.set_status(BM, "Updating")
    known = rec.known()
    assert set(known) == {"a.basemodel.x", BM.configmap_key}
    assert known[BM.configmap_key].status == "Updating"


# ------------------------------------------------------------------------------------------ the Kubernetes sink


@pytest.fixture
def sink(core: client.CoreV1Api) -> KubernetesStatusSink:
    return KubernetesStatusSink(core, NODE, NS, backoff=0)


def node_labels(fake_kube: Any) -> dict[str, str]:
    return fake_kube.get("nodes", NODE)["metadata"].get("labels") or {}


def test_sink_implements_protocol(sink: KubernetesStatusSink) -> None:
    assert isinstance(sink, StatusSink)


def test_sink_status_label_then_entry(fake_kube: Any, sink: KubernetesStatusSink) -> None:
    sink.set_status(BM, "Updating")
    writes = [(r.resource, r.verb) for r in fake_kube.requests if r.verb in ("patch", "create", "update")]
    assert writes == [("nodes", "patch"), ("configmaps", "create")]
    assert node_labels(fake_kube)[BM.label_key] == "Updating"
    assert entry(fake_kube, BM)["status"] == "Updating"


def test_sink_first_final_status_writes_updating_entry_first(fake_kube: Any, sink: KubernetesStatusSink) -> None:
    sink.set_status(CBM, "Ready")
    writes = [(r.resource, r.body.get("data", {}).get(CBM.configmap_key) if r.resource == "configmaps" else None)
              for r in fake_kube.requests if r.verb in ("patch", "create", "update")]
    assert writes[0][0] == "configmaps" and '"status":"Updating"' in writes[0][1]
    assert writes[1][0] == "nodes"
    assert writes[2][0] == "configmaps" and '"status":"Ready"' in writes[2][1]


def test_sink_remove_order(fake_kube: Any, sink: KubernetesStatusSink) -> None:
    sink.set_status(BM, "Updating")
    sink.set_status(BM, "Ready")
    fake_kube.clear_requests()
    sink.remove(BM)
    steps = []
    for r in fake_kube.requests:
        if r.resource == "configmaps" and r.verb == "update":
            text = r.body["data"].get(BM.configmap_key)
            steps.append("entry " + (json.loads(text)["status"] if text else "removed"))
        elif r.resource == "nodes" and r.verb == "patch":
            steps.append("label " + r.body[0]["op"])
    assert steps == ["entry Updating", "label remove", "entry removed"]
    assert BM.label_key not in node_labels(fake_kube)
    assert BM.configmap_key not in (stored(fake_kube).get("data") or {})


def test_sink_heal_restores_labels_and_removes_stale(fake_kube: Any, sink: KubernetesStatusSink) -> None:
    sink.set_status(BM, "Ready")
    sink.set_status(CBM, "Ready")
    stale = ModelRef("BaseModel", "old", "gone").label_key
    fake_kube.patch("nodes", NODE, {"metadata": {"labels": {BM.label_key: "Failed", CBM.label_key: None,
                                                            stale: "Ready"}}})
    sink.heal()
    labels = node_labels(fake_kube)
    assert labels[BM.label_key] == "Ready" and labels[CBM.label_key] == "Ready" and labels[stale] == "Ready"
    sink.heal({BM.configmap_key})
    labels = node_labels(fake_kube)
    assert labels == {"kubernetes.io/hostname": NODE, BM.label_key: "Ready"}
    assert list(stored(fake_kube)["data"]) == [BM.configmap_key]


def test_sink_config_and_progress(fake_kube: Any, sink: KubernetesStatusSink) -> None:
    sink.set_status(BM, "Updating")
    sink.set_progress(BM, PROGRESS)
    sink.set_config(BM, CONFIG)
    sink.set_status(BM, "Ready")
    got = entry(fake_kube, BM)
    assert got["status"] == "Ready" and "progress" not in got and got["config"]["modelType"] == "llama"
    assert set(sink.known()) == {BM.configmap_key}


def test_sink_label_failure_keeps_entry_behind_until_heal(fake_kube: Any, core: client.CoreV1Api) -> None:
    sink = KubernetesStatusSink(core, NODE, NS, label_retries=2, backoff=0)
    sink.set_status(BM, "Updating")
    sink.set_config(BM, CONFIG)
    fake_kube.fail_next(2, 503, verb="patch", path="/nodes/")
    with pytest.raises(NodeLabelError, match="after 2 attempts"):
        sink.set_status(BM, "Ready")
    assert node_labels(fake_kube)[BM.label_key] == "Updating"
    assert entry(fake_kube, BM)["status"] == "Updating"  # not ahead of the label
    sink.heal()
    assert node_labels(fake_kube)[BM.label_key] == "Ready"
    got = entry(fake_kube, BM)
    assert got["status"] == "Ready" and got["config"]["modelType"] == "llama"


def test_transient_read_errors_are_retried(fake_kube: Any, rec: ConfigMapReconciler) -> None:
    rec.set_status(BM, "Ready")
    fake_kube.delete("configmaps", NODE, NS)
    fake_kube.fail_next(2, 500, verb="get", path="/configmaps/")
    rec.heal()
    assert entry(fake_kube, BM)["status"] == "Ready"


def test_unreachable_api_error_names_configmap(core: client.CoreV1Api, refused_port: int) -> None:
    core.api_client.configuration.host = f"http://127.0.0.1:{refused_port}"
    core.api_client.rest_client.pool_manager.clear()
    rec = ConfigMapReconciler(core, NODE, NS, retries=2, backoff=0)
    with pytest.raises(ConfigMapError, match=f"ConfigMap {NS}/{NODE}: writing BaseModel default/test-model "
                                             "failed after 2 attempts"):
        rec.set_status(BM, "Ready")
    assert rec.desired()[BM.configmap_key]["status"] == "Ready"  # remembered for healing


def test_restarted_sink_knows_previous_entries(fake_kube: Any, core: client.CoreV1Api) -> None:
    first = KubernetesStatusSink(core, NODE, NS, backoff=0)
    first.set_status(BM, "Updating")
    first.set_config(BM, CONFIG)
    first.set_status(BM, "Ready")
    second = KubernetesStatusSink(core, NODE, NS, backoff=0)
    known = second.known()
    assert set(known) == {BM.configmap_key}
    assert known[BM.configmap_key].status == "Ready" and known[BM.configmap_key].config.model_type == "llama"
    fake_kube.clear_requests()
    second.set_status(BM, "Ready")  # existing entry: no extra Updating write, config kept
    updates = fake_kube.find_requests(verb="update", resource="configmaps")
    assert updates == []
    assert entry(fake_kube, BM)["config"]["modelType"] == "llama"
