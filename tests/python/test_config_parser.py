"""ModelConfigParser: the ConfigMap config object and the spec back-fill, against the fake API server."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from conftest import MODEL_CONFIGS_DIR
from modelagent import inspect_model
from modelagent.agent.config_parser import (
    ModelConfigParser,
    skips_config_parsing,
    spec_backfill,
)
from modelagent.agent.model_ref import ModelRef
from modelagent.testing.model_factory import DEFAULT_CONFIG, write_synthetic_model

FIXTURES = MODEL_CONFIGS_DIR
CONFIG_KEYS = {"modelType", "modelArchitecture", "modelFramework", "modelFormat", "modelParameterSize",
               "maxTokens", "modelCapabilities", "decodedModelConfiguration", "quantization"}
BM = ModelRef("BaseModel", "default", "llama", "u1")
CBM = ModelRef("ClusterBaseModel", None, "llama-c", "u2")


def model_object(ref: ModelRef, spec: dict[str, Any] | None = None,
                 annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": ref.name}
    if ref.namespace:
        meta["namespace"] = ref.namespace
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "ome.io/v1beta1", "kind": ref.kind, "metadata": meta,
            "spec": spec if spec is not None else {"storage": {"storageUri": "hf://org/llama"}}}


def plural(ref: ModelRef) -> str:
    return "basemodels" if ref.kind == "BaseModel" else "clusterbasemodels"


def live_spec(fake_kube: Any, ref: ModelRef) -> dict[str, Any]:
    return fake_kube.get(plural(ref), ref.name, ref.namespace)["spec"]


def spec_patches(fake_kube: Any) -> list[Any]:
    return [r for r in fake_kube.requests if r.verb == "patch" and r.resource in ("basemodels", "clusterbasemodels")]


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    write_synthetic_model(folder, shard_sizes=(8192,),
                          config={**DEFAULT_CONFIG, "quantization_config": {"quant_method": "fp8"}})
    return folder


@pytest.fixture
def custom(kube_api_client: Any) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api_client)


@pytest.mark.parametrize("name", ["llama3_1.json", "bge_large.json", "clip_vision_model.json", "mixtral.json",
                                  "qwen2_vl_7b.json"])
def test_config_is_exactly_the_configmap_config(tmp_path: Path, name: str) -> None:
    shutil.copy(FIXTURES / name, tmp_path / "config.json")
    config = ModelConfigParser(None).parse(BM, model_object(BM), tmp_path)
    assert config is not None
    assert set(config) <= CONFIG_KEYS
    assert config == inspect_model(tmp_path).to_model_config().to_dict()
    assert len(config["modelCapabilities"]) == 1


def test_capabilities_of_known_fixtures(tmp_path: Path) -> None:
    expected = {"llama3_1.json": "CHAT", "bge_large.json": "TEXT_EMBEDDINGS", "clip_vision_model.json": "VISION"}
    for name, capability in expected.items():
        folder = tmp_path / name
        folder.mkdir()
        shutil.copy(FIXTURES / name, folder / "config.json")
        config = ModelConfigParser(None).parse(BM, model_object(BM), folder)
        assert config is not None and config["modelCapabilities"] == [capability]


def test_config_in_model_subfolder(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    shutil.copy(FIXTURES / "llama3_1.json", tmp_path / "model" / "config.json")
    config = ModelConfigParser(None).parse(BM, model_object(BM), tmp_path)
    assert config is not None and config["modelType"] == "llama"


@pytest.mark.parametrize("ref", [BM, CBM])
@pytest.mark.parametrize("value", ["true", "TRUE", "True"])
def test_skip_annotation(fake_kube: Any, custom: client.CustomObjectsApi, model_dir: Path, ref: ModelRef,
                         value: str) -> None:
    obj = model_object(ref, annotations={"ome.oracle.com/skip-config-parsing": value})
    assert skips_config_parsing(obj)
    assert ModelConfigParser(custom).parse(ref, obj, model_dir) is None
    assert spec_patches(fake_kube) == []


def test_no_skip_without_annotation_or_other_value() -> None:
    assert not skips_config_parsing(model_object(BM))
    assert not skips_config_parsing(model_object(BM, annotations={"ome.oracle.com/skip-config-parsing": "false"}))
    assert not skips_config_parsing({"metadata": None})


def test_missing_folder_is_no_metadata(tmp_path: Path) -> None:
    assert ModelConfigParser(None).parse(BM, model_object(BM), tmp_path / "absent") is None


def test_unreadable_model_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "modelagent.agent.config_parser")
    assert ModelConfigParser(None).parse(BM, model_object(BM), tmp_path) is None
    assert "config.json" in caplog.text and "BaseModel default/llama" in caplog.text
    caplog.clear()
    (tmp_path / "config.json").write_text("{broken")
    assert ModelConfigParser(None).parse(BM, model_object(BM), tmp_path) is None
    assert "config.json" in caplog.text


@pytest.mark.parametrize("ref", [BM, CBM])
def test_backfill_fills_empty_spec_and_second_run_patches_nothing(
        fake_kube: Any, custom: client.CustomObjectsApi, model_dir: Path, ref: ModelRef) -> None:
    obj = fake_kube.create(plural(ref), model_object(ref), ref.namespace)
    before = copy.deepcopy(obj)
    parser = ModelConfigParser(custom)
    config = parser.parse(ref, obj, model_dir)
    assert obj == before  # the caller's object is never modified
    spec = live_spec(fake_kube, ref)
    assert spec["storage"] == {"storageUri": "hf://org/llama"}
    assert spec["modelType"] == "llama"
    assert spec["modelArchitecture"] == "LlamaForCausalLM"
    assert spec["modelFramework"] == {"name": "transformers", "version": "4.44.0"}
    assert spec["modelFormat"] == {"name": "safetensors", "version": "1.0.0"}
    assert spec["modelParameterSize"] == config["modelParameterSize"]
    assert spec["maxTokens"] == 512
    assert spec["modelCapabilities"] == ["CHAT"]
    assert spec["quantization"] == "fp8"
    assert spec["modelConfiguration"] == config["decodedModelConfiguration"]
    (request,) = spec_patches(fake_kube)
    assert request.content_type == "application/merge-patch+json"
    assert request.body["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    parser.parse(ref, fake_kube.get(plural(ref), ref.name, ref.namespace), model_dir)
    assert len(spec_patches(fake_kube)) == 1


def test_backfill_never_overwrites(fake_kube: Any, custom: client.CustomObjectsApi, model_dir: Path) -> None:
    spec = {"storage": {"storageUri": "hf://org/llama"}, "modelType": "custom", "modelArchitecture": "Mine",
            "modelCapabilities": ["TEXT_EMBEDDINGS"], "modelConfiguration": {"user": "set"},
            "modelFormat": {"name": "", "version": "9"}, "quantization": "int4"}
    fake_kube.create("basemodels", model_object(BM, spec), "default")
    written = ModelConfigParser(custom).backfill(BM, model_object(BM), inspect_model(model_dir))
    assert set(written) == {"modelFramework", "modelFormat", "modelParameterSize", "maxTokens"}
    got = live_spec(fake_kube, BM)
    assert got["modelType"] == "custom" and got["modelArchitecture"] == "Mine"
    assert got["modelCapabilities"] == ["TEXT_EMBEDDINGS"] and got["modelConfiguration"] == {"user": "set"}
    assert got["modelFormat"] == {"name": "safetensors", "version": "9"}
    assert got["quantization"] == "int4"


def test_backfill_conflict_rereads(fake_kube: Any, custom: client.CustomObjectsApi, model_dir: Path) -> None:
    fake_kube.create("basemodels", model_object(BM), "default")
    real_get = custom.get_namespaced_custom_object
    calls = {"n": 0}

    def racing_get(*args: Any, **kwargs: Any) -> Any:
        got = real_get(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:  # a user sets modelType between our read and our patch
            fake_kube.patch("basemodels", "llama", {"spec": {"modelType": "user-set"}}, "default")
        return got

    custom.get_namespaced_custom_object = racing_get  # type: ignore[method-assign]
    written = ModelConfigParser(custom).backfill(BM, model_object(BM), inspect_model(model_dir))
    assert written is not None and "modelType" not in written
    assert live_spec(fake_kube, BM)["modelType"] == "user-set"
    assert calls["n"] == 2
    assert [r.status for r in spec_patches(fake_kube)] == [409, 200]


def test_backfill_injected_conflicts_then_gives_up(fake_kube: Any, custom: client.CustomObjectsApi,
                                                   model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    fake_kube.create("basemodels", model_object(BM), "default")
    fake_kube.fail_next(2, 409, verb="patch", path="/basemodels/")
    assert ModelConfigParser(custom).backfill(BM, model_object(BM), inspect_model(model_dir))
    assert live_spec(fake_kube, BM)["modelType"] == "llama"
    fake_kube.patch("basemodels", "llama", {"spec": {"modelType": None}}, "default")
    fake_kube.fail_next(3, 409, verb="patch", path="/basemodels/")
    parser = ModelConfigParser(custom, retries=3)
    with pytest.raises(RuntimeError, match="BaseModel default/llama.*3 attempts"):
        parser.backfill(BM, model_object(BM), inspect_model(model_dir))
    caplog.set_level(logging.WARNING, "modelagent.agent.config_parser")
    fake_kube.fail_next(3, 409, verb="patch", path="/basemodels/")
    config = parser.parse(BM, model_object(BM), model_dir)  # back-fill failure does not fail parsing
    assert config is not None and "spec back-fill failed" in caplog.text


def test_backfill_of_deleted_model_is_quiet(custom: client.CustomObjectsApi, model_dir: Path) -> None:
    assert ModelConfigParser(custom).backfill(CBM, model_object(CBM), inspect_model(model_dir)) is None


def test_standalone_parser_sends_nothing(fake_kube: Any, model_dir: Path) -> None:
    parser = ModelConfigParser(None)
    assert parser.parse(BM, model_object(BM), model_dir) is not None
    assert parser.backfill(BM, model_object(BM), inspect_model(model_dir)) is None
    assert spec_patches(fake_kube) == []


def test_spec_backfill_rules(model_dir: Path) -> None:
    found = inspect_model(model_dir)
    full = spec_backfill({}, found)
    assert set(full) == {"modelType", "modelArchitecture", "modelFramework", "modelFormat", "modelParameterSize",
                         "maxTokens", "modelCapabilities", "quantization", "modelConfiguration"}
    assert spec_backfill(full, found) == {}
    assert "maxTokens" in spec_backfill({**full, "maxTokens": 0}, found)
    assert "modelCapabilities" in spec_backfill({**full, "modelCapabilities": []}, found)
    assert "modelType" in spec_backfill({**full, "modelType": None}, found)
    # only the CRD's quantization values reach the spec
    other = dataclasses.replace(found, quantization="mxfp4")
    assert "quantization" not in spec_backfill({}, other)
    for value in ("fp8", "fbgemm_fp8", "int4"):
        assert spec_backfill({}, dataclasses.replace(found, quantization=value))["quantization"] == value
    # nothing known -> nothing written (no empty strings that would stay "empty" forever)
    blank = dataclasses.replace(found, model_type="", architecture="", framework=None, format=None,
                                parameter_size="", context_length=0, capabilities=(), quantization="",
                                decoded_configuration={})
    assert spec_backfill({}, blank) == {}
    assert json.dumps(full)  # JSON-serialisable as sent


def test_gopher_pipeline_writes_labels_configmap_and_spec(fake_kube: Any, kube_api_client: Any,
                                                          tmp_path: Path) -> None:
    """A local:// model through the real Gopher: Ready label and entry with config, spec back-filled
    once; deleting it removes label and entry."""
    from modelagent.agent.gopher import Gopher
    from modelagent.agent.kubernetes_sink import KubernetesStatusSink
    from modelagent.agent.tasks import GopherTask, TaskType

    fake_kube.add_node("n1", labels={"kubernetes.io/hostname": "n1"})
    folder = tmp_path / "models" / "llama"
    write_synthetic_model(folder, shard_sizes=(8192,))
    obj = fake_kube.create("basemodels", model_object(BM, {"storage": {"storageUri": f"local://{folder}"}}),
                           "default")
    sink = KubernetesStatusSink(client.CoreV1Api(kube_api_client), "n1", "ome", backoff=0)
    parser = ModelConfigParser(client.CustomObjectsApi(kube_api_client))
    gopher = Gopher(sink, models_root=tmp_path / "models", workers=1, parse_config=parser.parse).start()
    try:
        gopher.submit(GopherTask.for_object(TaskType.DOWNLOAD, obj))
        assert gopher.wait_idle(timeout=30)
        labels = fake_kube.get("nodes", "n1")["metadata"]["labels"]
        assert labels[BM.label_key] == "Ready"
        cm = fake_kube.get("configmaps", "n1", "ome")
        entry = json.loads(cm["data"][BM.configmap_key])
        assert entry["status"] == "Ready" and entry["config"]["modelType"] == "llama"
        assert cm["metadata"]["labels"]["models.ome/basemodel-status"] == "true"
        spec = live_spec(fake_kube, BM)
        assert spec["maxTokens"] == 512 and spec["storage"] == {"storageUri": f"local://{folder}"}
        assert len(spec_patches(fake_kube)) == 1
        gopher.submit(GopherTask.for_object(TaskType.DELETE, obj))
        assert gopher.wait_idle(timeout=30)
        assert BM.configmap_key not in (fake_kube.get("configmaps", "n1", "ome").get("data") or {})
        assert BM.label_key not in fake_kube.get("nodes", "n1")["metadata"]["labels"]
        assert folder.is_dir()  # local:// models are used in place, never deleted
    finally:
        gopher.stop()
