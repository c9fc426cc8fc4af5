"""modelagent.inspect_model, ModelMetadata and `model-agent inspect`."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import modelagent
import numpy as np
import pytest
from conftest import MODEL_CONFIGS_DIR, REPO_ROOT
from modelagent import ModelConfigError, ModelEntry, ModelMetadata, SafetensorsError, inspect_model
from safetensors import safe_open
from safetensors.numpy import save_file

EXAMPLE_PARAMETERS = 213_568  # scripts/make-example-model.py: 1024*64 + 4*(64*64*2 + 32*64*2 + 3*128*64 + 128) + 64

TO_DICT_KEYS = [
    "modelType",
    "modelArchitecture",
    "modelFramework",
    "modelFormat",
    "modelParameterSize",
    "maxTokens",
    "modelCapabilities",
    "decodedModelConfiguration",
    "parameterCount",
    "torchDtype",
    "modelSizeBytes",
]
SUMMARY_KEYS = {
    "model_type",
    "architecture",
    "context_length",
    "parameter_count",
    "has_vision",
    "transformers_version",
    "torch_dtype",
    "model_size_bytes",
}


def llama_config(**overrides: Any) -> dict[str, Any]:
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "vocab_size": 128,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": False,
        "torch_dtype": "float16",
        "transformers_version": "4.46.0",
        "eos_token_id": [1, 2],
    }
    config.update(overrides)
    return config


def llama_tensors(config: dict[str, Any]) -> dict[str, np.ndarray]:
    h, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    tensors = {
        "model.embed_tokens.weight": np.zeros((v, h), np.float16),
        "model.norm.weight": np.ones((h,), np.float16),
        "lm_head.weight": np.zeros((v, h), np.float16),
    }
    for n in range(config["num_hidden_layers"]):
        p = f"model.layers.{n}."
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            tensors[p + f"self_attn.{proj}.weight"] = np.zeros((h, h), np.float16)
        tensors[p + "mlp.gate_proj.weight"] = np.zeros((i, h), np.float16)
        tensors[p + "mlp.up_proj.weight"] = np.zeros((i, h), np.float16)
        tensors[p + "mlp.down_proj.weight"] = np.zeros((h, i), np.float16)
        tensors[p + "input_layernorm.weight"] = np.ones((h,), np.float16)
        tensors[p + "post_attention_layernorm.weight"] = np.ones((h,), np.float16)
    return tensors


def write_model(directory: Path, config: dict[str, Any], weights: bool = True) -> int:
    """A model directory; returns the exact parameter count of the weights written."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    if not weights:
        return 0
    tensors = llama_tensors(config)
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    return sum(t.size for t in tensors.values())


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelagent", "inspect", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# ---------------------------------------------------------------- the bundled example model


def test_example_model_is_installed_package_data() -> None:
    path = modelagent.example_model_path()
    assert path.parent.parent == Path(modelagent.__file__).resolve().parent
    assert sorted(p.name for p in path.iterdir() if p.is_file()) == ["config.json", "model.safetensors"]
    assert (path / "model.safetensors").stat().st_size < 500_000


def test_example_model_metadata() -> None:
    path = modelagent.example_model_path()
    meta = inspect_model(path)
    assert meta.model_type == "llama"
    assert meta.architecture == "LlamaForCausalLM"
    assert meta.parameter_count == EXAMPLE_PARAMETERS
    assert meta.parameter_size == "213.57K"
    assert meta.parameter_count_source == "safetensors"
    assert meta.context_length == 2048
    assert meta.capabilities == ("CHAT",)
    assert meta.has_vision is False
    assert meta.quantization == ""
    assert meta.quantization_detail is None
    assert meta.torch_dtype == "bfloat16"
    assert meta.transformers_version == "4.44.0"
    assert meta.framework == modelagent.NameVersion("transformers", "4.44.0")
    assert meta.format == modelagent.NameVersion("safetensors", "1.0.0")
    assert meta.weight_files == (path / "model.safetensors",)
    assert meta.model_size_bytes == (path / "model.safetensors").stat().st_size
    assert meta.config_path == path / "config.json"
    assert meta.model_dir == path


def test_example_model_count_agrees_with_the_safetensors_library() -> None:
    weights = modelagent.example_model_path() / "model.safetensors"
    with safe_open(str(weights), "np") as f:
        total = sum(math.prod(f.get_slice(name).get_shape()) for name in f.keys())  # noqa: SIM118 - safe_open is not iterable
        dtypes = {f.get_slice(name).get_dtype() for name in f.keys()}  # noqa: SIM118
    assert total == EXAMPLE_PARAMETERS
    assert dtypes == {"BF16"}


def test_example_model_regenerates_byte_for_byte(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "make-example-model.py"), "--output", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    shipped = modelagent.example_model_path()
    for name in ("config.json", "model.safetensors"):
        assert (tmp_path / name).read_bytes() == (shipped / name).read_bytes(), name


# ---------------------------------------------------------------- inspect_model


def test_exact_count_from_weights_written_by_the_safetensors_library(tmp_path: Path) -> None:
    config = llama_config()
    exact = write_model(tmp_path, config)
    meta = inspect_model(tmp_path)
    assert meta.parameter_count == exact
    assert meta.parameter_count_source == "safetensors"
    assert meta.parameter_size == modelagent.format_parameter_size(exact)
    assert meta.model_size_bytes == (tmp_path / "model.safetensors").stat().st_size


def test_estimate_without_weights(tmp_path: Path) -> None:
    write_model(tmp_path, llama_config(), weights=False)
    meta = inspect_model(tmp_path)
    assert meta.parameter_count_source == "estimate"
    assert meta.parameter_count > 0
    assert meta.format is None
    assert meta.weight_files == ()
    assert meta.model_size_bytes == 0


def test_accepts_str_path_and_config_file(tmp_path: Path) -> None:
    write_model(tmp_path, llama_config(), weights=False)
    assert inspect_model(str(tmp_path)).config_path == tmp_path / "config.json"
    assert inspect_model(tmp_path / "config.json").architecture == "LlamaForCausalLM"


def test_to_dict_has_exactly_the_configmap_keys_plus_three(tmp_path: Path) -> None:
    write_model(tmp_path, llama_config())
    meta = inspect_model(tmp_path)
    d = meta.to_dict()
    assert list(d) == TO_DICT_KEYS
    assert d["modelType"] == "llama"
    assert d["modelArchitecture"] == "LlamaForCausalLM"
    assert d["modelFramework"] == {"name": "transformers", "version": "4.46.0"}
    assert d["modelFormat"] == {"name": "safetensors", "version": "1.0.0"}
    assert d["modelParameterSize"] == meta.parameter_size
    assert d["maxTokens"] == 4096
    assert d["modelCapabilities"] == ["CHAT"]
    assert set(d["decodedModelConfiguration"]) == SUMMARY_KEYS
    assert d["decodedModelConfiguration"]["model_size_bytes"] == meta.model_size_bytes
    assert d["decodedModelConfiguration"]["parameter_count"] == meta.parameter_size
    assert d["parameterCount"] == meta.parameter_count
    assert isinstance(d["parameterCount"], int)
    assert d["torchDtype"] == "float16"
    assert d["modelSizeBytes"] == meta.model_size_bytes
    assert json.loads(json.dumps(d)) == d


def test_to_dict_of_a_quantized_model(tmp_path: Path) -> None:
    quant = {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]}
    write_model(tmp_path, llama_config(quantization_config=quant), weights=False)
    meta = inspect_model(tmp_path)
    assert meta.quantization == "fp8"
    assert meta.quantization_detail == modelagent.QuantizationDetail("fp8", "e4m3", 8, "config.json quantization_config")
    d = meta.to_dict()
    assert list(d) == TO_DICT_KEYS[:7] + ["quantization"] + TO_DICT_KEYS[7:]
    assert d["quantization"] == "fp8"
    assert d["decodedModelConfiguration"]["quantization"] == {"method": "fp8", "scheme": "e4m3", "bits": 8}


def test_quantization_without_crd_value_stays_in_the_detail(tmp_path: Path) -> None:
    write_model(tmp_path, llama_config(quantization_config={"quant_method": "mxfp4"}), weights=False)
    d = inspect_model(tmp_path).to_dict()
    assert "quantization" not in d
    assert d["decodedModelConfiguration"]["quantization"]["method"] == "mxfp4"


def test_max_tokens_is_capped_to_int32(tmp_path: Path) -> None:
    write_model(tmp_path, llama_config(max_position_embeddings=10**10), weights=False)
    meta = inspect_model(tmp_path)
    assert meta.context_length == 10**10
    assert meta.to_dict()["maxTokens"] == 2**31 - 1


def test_to_model_config_writes_a_configmap_entry(tmp_path: Path) -> None:
    write_model(tmp_path, llama_config())
    meta = inspect_model(tmp_path)
    entry = ModelEntry("tiny", "Ready", meta.to_model_config())
    written = json.loads(entry.to_json())
    expected = {k: v for k, v in meta.to_dict().items() if k not in ("parameterCount", "torchDtype", "modelSizeBytes")}
    assert written["config"] == expected


def test_repr_and_html(tmp_path: Path) -> None:
    model = tmp_path / "a<b>&c"
    write_model(model, llama_config())
    meta = inspect_model(model)
    text = repr(meta)
    assert text.startswith("ModelMetadata(model_type='llama', architecture='LlamaForCausalLM'")
    assert f"parameters='{meta.parameter_size}'" in text
    assert "context_length=4096" in text
    assert "capabilities=['CHAT']" in text
    page = meta._repr_html_()
    assert page.startswith("<table") and page.endswith("</table>")
    assert page.count("<tr>") == len(meta.summary_rows())
    assert "a&lt;b&gt;&amp;c" in page
    assert "a<b>" not in page
    assert "<td style='text-align:left'>LlamaForCausalLM</td>" in page


def test_metadata_is_immutable(tmp_path: Path) -> None:
    write_model(tmp_path, llama_config(), weights=False)
    meta = inspect_model(tmp_path)
    with pytest.raises(AttributeError):
        meta.model_type = "other"  # type: ignore[misc]


# ---------------------------------------------------------------- errors


def test_missing_directory_is_a_model_config_error(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match="does not exist") as info:
        inspect_model(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value)
    assert isinstance(info.value, modelagent.ModelAgentError)


@pytest.mark.parametrize(("path", "message"), [("", "the model path is empty"), ("a\0b", "contains a NUL character")])
def test_unusable_paths_are_model_config_errors(path: str, message: str) -> None:
    with pytest.raises(ModelConfigError, match=message):
        inspect_model(path)


def test_directory_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError) as info:
        inspect_model(tmp_path)
    assert str(info.value) == f"config.json not found in {tmp_path}"


def test_malformed_config_names_file_and_position(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{\n  "model_type": "llama",\n  "hidden_size": 32 33\n}\n')
    with pytest.raises(ModelConfigError) as info:
        inspect_model(tmp_path)
    assert f"malformed JSON in {tmp_path / 'config.json'} at line 3, column 22 (byte 48)" in str(info.value)


def test_hostile_safetensors_header_is_a_safetensors_error(tmp_path: Path) -> None:
    write_model(tmp_path, llama_config(), weights=False)
    header = b'{"w": {"dtype": "F16", "shape": [4], "data_offsets": [0, 4096]}}'
    (tmp_path / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(8))
    with pytest.raises(SafetensorsError) as info:
        inspect_model(tmp_path)
    assert str(tmp_path / "model.safetensors") in str(info.value)


# ---------------------------------------------------------------- every shared config fixture

FIXTURE_FILES = sorted(p.name for p in MODEL_CONFIGS_DIR.glob("*.json"))


def test_fixture_list_is_complete() -> None:
    assert len(FIXTURE_FILES) == 49  # plus tiny-random-PhiModel/, tested below


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_every_fixture_parses(tmp_path: Path, name: str) -> None:
    shutil.copy(MODEL_CONFIGS_DIR / name, tmp_path / "config.json")
    config = json.loads((tmp_path / "config.json").read_text())
    meta = inspect_model(tmp_path)
    assert meta.model_type == config["model_type"]
    assert len(meta.capabilities) == 1
    d = meta.to_dict()
    assert json.loads(json.dumps(d)) == d
    summary = d["decodedModelConfiguration"]
    assert set(summary) == SUMMARY_KEYS | ({"quantization"} if meta.quantization_detail else set())
    assert summary["context_length"] == meta.context_length


@pytest.mark.parametrize(
    ("name", "capability", "quantization", "max_tokens"),
    [
        ("mistral.json", "TEXT_EMBEDDINGS", "", 32768),  # e5-mistral-7b-instruct, despite the name
        ("gte_qwen2_7b.json", "TEXT_EMBEDDINGS", "", 131072),  # is_causal: false
        ("skywork_reward_llama.json", "TEXT_RERANK", "", 131072),
        ("llama4.json", "VISION", "fp8", 1048576),  # compressed-tensors FP8
        ("llama3_1_405b.json", "CHAT", "fbgemm_fp8", 131072),
        ("kimi_k2_instruct.json", "CHAT", "fp8", 131072),
        ("deepseek_v3.json", "CHAT", "", 163840),  # this copy lacks the hub repo's FP8 config
        ("chatglm3_6b.json", "CHAT", "", 8192),  # seq_length
    ],
)
def test_fixture_traps(tmp_path: Path, name: str, capability: str, quantization: str, max_tokens: int) -> None:
    shutil.copy(MODEL_CONFIGS_DIR / name, tmp_path / "config.json")
    d = inspect_model(tmp_path).to_dict()
    assert d["modelCapabilities"] == [capability]
    assert d.get("quantization", "") == quantization
    assert d["maxTokens"] == max_tokens


def test_tiny_random_phi_fixture_counts_duplicate_shards_once() -> None:
    meta = inspect_model(MODEL_CONFIGS_DIR / "tiny-random-PhiModel")
    assert meta.parameter_count == 46_282
    assert meta.parameter_count_source == "safetensors"
    assert len(meta.weight_files) == 2


# ---------------------------------------------------------------- the CLI


def test_cli_table_for_the_bundled_example() -> None:
    result = run_cli()
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    rows = {line.split("  ", 1)[0]: line.split("  ", 1)[1].strip() for line in lines}
    assert rows["Type"] == "llama"
    assert rows["Architecture"] == "LlamaForCausalLM"
    assert rows["Parameters"] == "213.57K (213,568, exact, from safetensors)"
    assert rows["Context length"] == "2,048 tokens"
    assert rows["Capabilities"] == "CHAT"
    assert rows["Quantization"] == "none"
    assert rows["Format"] == "safetensors 1.0.0"
    assert rows["Size on disk"].endswith("bytes in 1 file)")


def test_cli_json_is_one_object_with_exact_keys() -> None:
    result = run_cli("--json")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    d = json.loads(result.stdout)
    assert list(d) == TO_DICT_KEYS
    assert d["parameterCount"] == EXAMPLE_PARAMETERS
    assert d == inspect_model(modelagent.example_model_path()).to_dict()


def test_cli_json_for_a_fixture_file_path() -> None:
    result = run_cli(str(MODEL_CONFIGS_DIR / "llama3_1_405b.json"), "--json")
    assert result.returncode == 0, result.stderr
    d = json.loads(result.stdout)
    assert d["modelType"] == "llama"
    assert d["quantization"] == "fbgemm_fp8"
    assert list(d) == TO_DICT_KEYS[:7] + ["quantization"] + TO_DICT_KEYS[7:]


@pytest.mark.parametrize("case", ["missing", "no-config", "malformed", "bad-safetensors"])
def test_cli_errors_exit_2_with_one_line(tmp_path: Path, case: str) -> None:
    target = tmp_path / "model"
    expected = ""
    if case == "missing":
        expected = f"model directory {target} does not exist"
    elif case == "no-config":
        target.mkdir()
        expected = f"config.json not found in {target}"
    elif case == "malformed":
        target.mkdir()
        (target / "config.json").write_text('{"model_type": "llama",\n\n "x": }')
        expected = f"malformed JSON in {target / 'config.json'} at line 3, column 7"
    else:
        write_model(target, llama_config(), weights=False)
        (target / "model.safetensors").write_bytes((10**12).to_bytes(8, "little") + b"{}")
        expected = str(target / "model.safetensors")
    for args in ((str(target),), (str(target), "--json")):
        result = run_cli(*args)
        assert result.returncode == 2
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("model-agent inspect: error: ")
        assert expected in result.stderr
        assert "Traceback" not in result.stderr


def test_metadata_class_is_the_public_one() -> None:
    assert modelagent.ModelMetadata is ModelMetadata
    assert modelagent.inspect_model is inspect_model
