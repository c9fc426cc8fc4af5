"""The TensorRT-LLM shape filter's Python side: INSTANCE_TYPE_MAP, node labels, when it applies, path_filter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelagent import DownloadError
from modelagent.agent.config import ConfigError, resolve
from modelagent.agent.shape_filter import (
    InstanceTypeMap,
    InstanceTypeMapError,
    ShapeFilterError,
    instance_type_of,
    load_instance_type_map,
    shape_filter_applies,
    shape_path_filter,
)

URI = "oci://n/ns/b/models/o/llama-trt"
LISTING = [
    "config.json",
    "tokenizer.json",
    "H100/config.json",
    "H100/rank0.engine",
    "A100-80G/rank0.engine",
    "L40/rank0.engine",
    "H1000/rank0.engine",
]


def test_defaults_and_unknown_types():
    table = InstanceTypeMap()
    assert table.alias("BM.GPU.H100.8") == "H100"
    assert table.alias("p5.48xlarge") == "H100"
    assert table.alias("BM.GPU.A100-v2.8") == "A100-80G"
    assert table.alias("BM.GPU.MI300X.8") == "BM.GPU.MI300X.8"
    assert table.known_aliases() == ["A10", "A100-40G", "A100-80G", "H100", "H200", "L40"]


def test_map_from_json_value_extends_and_overrides():
    table = load_instance_type_map(' {"BM.GPU.H100.8": "H100-SXM", "BM.GPU.GB200.4": "GB200"}')
    assert table.origin == "INSTANCE_TYPE_MAP"
    assert table.alias("BM.GPU.H100.8") == "H100-SXM"
    assert table.alias("BM.GPU.GB200.4") == "GB200"
    assert table.alias("a3-highgpu-8g") == "H100"
    assert "GB200" in table.known_aliases()


def test_map_from_mounted_file(tmp_path: Path):
    path = tmp_path / "instance-type-map.json"
    path.write_text(json.dumps({"VM.GPU.L40S.1": "L40S"}))
    table = load_instance_type_map(str(path))
    assert table.alias("VM.GPU.L40S.1") == "L40S"
    assert str(path) in table.origin


def test_blank_map_is_the_defaults():
    assert load_instance_type_map(None).extension == {}
    assert load_instance_type_map("  ").extension == {}


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ('{"BM.GPU.H100.8": ', "not valid JSON"),
        ('{"BM.GPU.H100.8": 5}', '"BM.GPU.H100.8" must be a string'),
        ('{"BM.GPU.H100.8": "a/b"}', "non-empty directory name"),
    ],
)
def test_malformed_json_value_names_the_variable(value: str, needle: str):
    with pytest.raises(InstanceTypeMapError) as info:
        load_instance_type_map(value)
    assert "INSTANCE_TYPE_MAP" in str(info.value) and needle in str(info.value)


def test_unreadable_or_malformed_file_names_the_file(tmp_path: Path):
    missing = tmp_path / "absent.json"
    with pytest.raises(InstanceTypeMapError, match=f"{missing}.*cannot read it"):
        load_instance_type_map(str(missing))
    bad = tmp_path / "bad.json"
    bad.write_text('["H100"]')
    with pytest.raises(InstanceTypeMapError, match=f"{bad}.*must be a JSON object"):
        load_instance_type_map(str(bad))


def test_agent_settings_refuse_a_malformed_map(tmp_path: Path):
    base = {"node_name": "n1"}
    ok = resolve(base, {"INSTANCE_TYPE_MAP": '{"x": "X"}'})
    assert ok.instance_type_map == '{"x": "X"}'
    assert ok.sources["instance_type_map"] == "env INSTANCE_TYPE_MAP"
    with pytest.raises(ConfigError, match=r"--instance-type-map \(from \$INSTANCE_TYPE_MAP\): not valid JSON"):
        resolve(base, {"INSTANCE_TYPE_MAP": "{oops"})
    with pytest.raises(ConfigError, match=r"--instance-type-map file .*absent\.json: cannot read it"):
        resolve({**base, "instance_type_map": str(tmp_path / "absent.json")}, {})
    assert resolve(base, {}).instance_type_map is None


def test_instance_type_label_and_fallback():
    assert instance_type_of({"node.kubernetes.io/instance-type": "BM.GPU.H100.8",
                             "beta.kubernetes.io/instance-type": "old"}) == "BM.GPU.H100.8"
    assert instance_type_of({"beta.kubernetes.io/instance-type": "p5.48xlarge"}) == "p5.48xlarge"
    assert instance_type_of({"node.kubernetes.io/instance-type": "", "beta.kubernetes.io/instance-type": "x"}) == "x"
    assert instance_type_of({}) == "" and instance_type_of(None) == ""


def _model(fmt: str | None = "tensorrtllm", model_type: str | None = None) -> dict:
    spec: dict = {"storage": {"storageUri": URI}}
    if fmt is not None:
        spec["modelFormat"] = {"name": fmt}
    if model_type is not None:
        spec["additionalMetadata"] = {"type": model_type}
    return {"spec": spec}


def test_applies_to_tensorrtllm_serving_models_of_object_stores_only():
    assert shape_filter_applies(_model(), "oci")
    assert shape_filter_applies(_model(), "s3")
    assert shape_filter_applies(_model(model_type="Serving"), "oci")
    assert not shape_filter_applies(_model(), "hf")
    assert not shape_filter_applies(_model(model_type="Training"), "oci")
    assert not shape_filter_applies(_model("TensorRTLLM"), "oci")  # exact, as OME
    assert not shape_filter_applies(_model("safetensors"), "oci")
    assert not shape_filter_applies(_model(None), "s3")


def test_path_filter_drops_other_shapes_with_reasons():
    path_filter = shape_path_filter("H100", InstanceTypeMap().known_aliases(), URI)
    dropped = path_filter(LISTING)
    assert dropped == {
        "A100-80G/rank0.engine": "under shape directory A100-80G/, this node is H100",
        "L40/rank0.engine": "under shape directory L40/, this node is H100",
    }


def test_path_filter_zero_matches_is_a_download_error_naming_uri_and_shapes():
    path_filter = shape_path_filter("H200", InstanceTypeMap().known_aliases(), URI,
                                    instance_type="gd-8xh200ib-i128")
    with pytest.raises(ShapeFilterError) as info:
        path_filter(LISTING)
    assert isinstance(info.value, DownloadError)
    assert str(info.value) == (f"no files for shape H200 (instance type gd-8xh200ib-i128) under {URI}; "
                               "shapes present: A100-80G, H100, L40")


def test_path_filter_without_instance_type_says_so():
    path_filter = shape_path_filter("", InstanceTypeMap().known_aliases(), URI)
    with pytest.raises(ShapeFilterError, match="no node.kubernetes.io/instance-type label.*shapes present: A100-80G"):
        path_filter(LISTING)
