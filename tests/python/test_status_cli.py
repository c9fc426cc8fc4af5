"""``model-agent status``: the node's model table from its ConfigMap (fake API server) or the standalone file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelagent import ModelConfig, ModelEntry, ModelProgress, NameVersion, configmap_key
from modelagent.cli import main
from modelagent.status_table import COLUMNS, format_progress, format_rate

NODE = "gpu-node-1"


def sample_data() -> dict[str, str]:
    """A ConfigMap data map: Ready with metadata, Updating with progress, Failed with a reason."""
    ready = ModelEntry("llama-3-1-8b", "Ready", ModelConfig(
        model_type="llama", model_architecture="LlamaForCausalLM", model_parameter_size="8.03B",
        max_tokens=131072, model_capabilities=["CHAT"], model_framework=NameVersion("transformers", "4.43.0")))
    updating = ModelEntry("qwen", "Updating", progress=ModelProgress(
        phase="Downloading", total_bytes=4 * 2**30, completed_bytes=2**30, total_files=4, completed_files=1,
        speed_bytes_per_sec=52428800.0, last_updated="2024-05-01T12:00:00Z"))
    failed = ModelEntry.from_dict({"name": "big", "status": "Failed",
                                   "reason": "storage type s3:// is not supported by this agent yet"})
    return {
        configmap_key("BaseModel", "llama-3-1-8b", "default"): ready.to_json(),
        configmap_key("BaseModel", "qwen", "team-a"): updating.to_json(),
        configmap_key("ClusterBaseModel", "big"): failed.to_json(),
    }


def write_status_file(root: Path, data: Any) -> Path:
    path = root / ".modelagent" / "status.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def put_configmap(fake_kube: Any, data: dict[str, str], namespace: str = "ome", node: str = NODE) -> None:
    fake_kube.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": node, "namespace": namespace,
                                                 "labels": {"models.ome/basemodel-status": "true"}},
                                    "data": data}, namespace=namespace)


def status(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["status", *args])
    out, err = capsys.readouterr()
    return code, out, err


def table(out: str) -> list[dict[str, str]]:
    """Parse the rendered table back into dicts using the header's column offsets."""
    lines = out.splitlines()
    header = lines[0]
    starts: list[int] = []
    for column in COLUMNS:
        starts.append(header.index(column, starts[-1] + 1 if starts else 0))
    rows = []
    for line in lines[1:]:
        cells = [line[s:e].strip() for s, e in zip(starts, starts[1:] + [None])]
        rows.append(dict(zip(COLUMNS, cells)))
    return rows


EXPECTED_ROWS = [
    {"KIND": "ClusterBaseModel", "NAMESPACE": "-", "NAME": "big", "STATUS": "Failed", "SIZE": "-", "ARCH": "-",
     "MAX TOKENS": "-", "PROGRESS": "-", "REASON": "storage type s3:// is not supported by this agent yet"},
    {"KIND": "BaseModel", "NAMESPACE": "default", "NAME": "llama-3-1-8b", "STATUS": "Ready", "SIZE": "8.03B",
     "ARCH": "LlamaForCausalLM", "MAX TOKENS": "131072", "PROGRESS": "-", "REASON": "-"},
    {"KIND": "BaseModel", "NAMESPACE": "team-a", "NAME": "qwen", "STATUS": "Updating", "SIZE": "-", "ARCH": "-",
     "MAX TOKENS": "-", "PROGRESS": "25% 50.0MiB/s", "REASON": "-"},
]


# -------------------------------------------------------------------------------------- standalone

def test_standalone_table(capsys, tmp_path):
    write_status_file(tmp_path, sample_data())
    code, out, err = status(capsys, "--standalone", "--models-root-dir", str(tmp_path))
    assert code == 0 and err == ""
    assert out.splitlines()[0].split() == ["KIND", "NAMESPACE", "NAME", "STATUS", "SIZE", "ARCH", "MAX", "TOKENS",
                                           "PROGRESS", "REASON"]
    assert table(out) == EXPECTED_ROWS


def test_standalone_root_from_the_environment(capsys, tmp_path, monkeypatch):
    write_status_file(tmp_path, sample_data())
    monkeypatch.setenv("MODEL_AGENT_MODELS_ROOT_DIR", str(tmp_path))
    code, out, _ = status(capsys, "--standalone")
    assert code == 0 and table(out) == EXPECTED_ROWS


def test_standalone_json_is_the_data_map_parsed(capsys, tmp_path):
    data = sample_data()
    write_status_file(tmp_path, data)
    code, out, _ = status(capsys, "--standalone", "--models-root-dir", str(tmp_path), "--json")
    assert code == 0
    printed = json.loads(out)
    assert printed == {key: json.loads(value) for key, value in data.items()}
    assert list(printed) == sorted(data)
    assert printed["clusterbasemodel.big"]["reason"] == "storage type s3:// is not supported by this agent yet"


def test_empty_status_file(capsys, tmp_path):
    path = write_status_file(tmp_path, {})
    code, out, _ = status(capsys, "--standalone", "--models-root-dir", str(tmp_path))
    assert code == 0 and out == f"no models in status file {path}\n"
    code, out, _ = status(capsys, "--standalone", "--models-root-dir", str(tmp_path), "--json")
    assert code == 0 and json.loads(out) == {}


@pytest.mark.parametrize("content,message", [
    (None, "no status file"),
    ("{not json", "is not valid JSON: Expecting property name"),
    ("[]", "must hold a JSON object (ConfigMap key -> entry JSON string), got list"),
    ({"clusterbasemodel.m": {"name": "m", "status": "Ready"}}, "entry 'clusterbasemodel.m' must be a string"),
])
def test_standalone_errors_exit_2_with_one_line(capsys, tmp_path, content, message):
    if content is not None:
        write_status_file(tmp_path, content)
    code, out, err = status(capsys, "--standalone", "--models-root-dir", str(tmp_path))
    assert code == 2 and out == ""
    assert err.startswith("model-agent status: error: ") and message in err
    assert err.count("\n") == 1
    assert str(tmp_path / ".modelagent" / "status.json") in err


def test_unparseable_entry_is_a_row_in_the_table_and_an_error_in_json(capsys, tmp_path):
    data = sample_data()
    data["default.basemodel.broken"] = '{"name": "broken"'
    data["default.basemodel.typed"] = '{"name": "typed", "status": "Ready", "config": {"maxTokens": "4k"}}'
    write_status_file(tmp_path, data)
    code, out, _ = status(capsys, "--standalone", "--models-root-dir", str(tmp_path))
    assert code == 0
    rows = {r["NAME"]: r for r in table(out)}
    assert rows["broken"]["STATUS"] == "<invalid>" and "default.basemodel.broken" in rows["broken"]["REASON"]
    assert rows["typed"]["STATUS"] == "<invalid>" and "config.maxTokens" in rows["typed"]["REASON"]
    assert rows["qwen"]["STATUS"] == "Updating"
    code, out, err = status(capsys, "--standalone", "--models-root-dir", str(tmp_path), "--json")
    assert code == 2 and out == ""
    assert "entry 'default.basemodel.broken' is not valid JSON" in err and err.count("\n") == 1


@pytest.mark.parametrize("flag", [["--node", "n"], ["--namespace", "x"], ["--kubeconfig", "/k"]])
def test_kubernetes_flags_are_refused_in_standalone_mode(capsys, tmp_path, flag):
    code, _, err = status(capsys, "--standalone", "--models-root-dir", str(tmp_path), *flag)
    assert code == 2 and f"{flag[0]} has no effect with --standalone" in err


# -------------------------------------------------------------------------------------- Kubernetes

def test_kubernetes_table_from_the_node_configmap(capsys, fake_kube, kube_config_file):
    put_configmap(fake_kube, sample_data())
    code, out, err = status(capsys, "--node", NODE, "--kubeconfig", str(kube_config_file))
    assert code == 0 and err == ""
    assert table(out) == EXPECTED_ROWS


def test_json_is_identical_in_both_modes(capsys, fake_kube, kube_config_file, tmp_path):
    data = sample_data()
    put_configmap(fake_kube, data)
    write_status_file(tmp_path, dict(reversed(list(data.items()))))
    code, from_cluster, _ = status(capsys, "--node", NODE, "--kubeconfig", str(kube_config_file), "--json")
    assert code == 0
    code, from_file, _ = status(capsys, "--standalone", "--models-root-dir", str(tmp_path), "--json")
    assert code == 0
    assert from_cluster == from_file
    assert json.loads(from_cluster) == {k: json.loads(v) for k, v in data.items()}


def test_node_namespace_and_kubeconfig_from_the_environment(capsys, fake_kube, kube_config_file, monkeypatch):
    fake_kube.add_namespace("models")
    put_configmap(fake_kube, sample_data(), namespace="models", node="n2")
    monkeypatch.setenv("NODE_NAME", "n2")
    monkeypatch.setenv("MODEL_AGENT_NAMESPACE", "models")
    monkeypatch.setenv("KUBECONFIG", str(kube_config_file))
    code, out, err = status(capsys)
    assert code == 0, err
    assert table(out) == EXPECTED_ROWS


def test_configmap_without_data(capsys, fake_kube, kube_config_file):
    fake_kube.create("configmaps", {"metadata": {"name": NODE, "namespace": "ome"}}, namespace="ome")
    code, out, _ = status(capsys, "--node", NODE, "--kubeconfig", str(kube_config_file))
    assert code == 0 and out == f"no models in ConfigMap ome/{NODE}\n"


def test_missing_configmap_exits_2(capsys, fake_kube, kube_config_file):
    put_configmap(fake_kube, sample_data())
    code, out, err = status(capsys, "--node", "other-node", "--kubeconfig", str(kube_config_file))
    assert code == 2 and out == ""
    assert err == ("model-agent status: error: ConfigMap ome/other-node not found: no agent has reported on node "
                   "'other-node' (check --node and --namespace)\n")


def test_wrong_namespace_exits_2(capsys, fake_kube, kube_config_file):
    put_configmap(fake_kube, sample_data())
    code, _, err = status(capsys, "--node", NODE, "--namespace", "default", "--kubeconfig", str(kube_config_file))
    assert code == 2 and "ConfigMap default/gpu-node-1 not found" in err


def test_forbidden_exits_2_with_the_server_message(capsys, fake_kube, kube_config_file):
    put_configmap(fake_kube, sample_data())
    fake_kube.fail_next(1, 403, verb="get", path="/configmaps/", message="configmaps is forbidden: no")
    code, _, err = status(capsys, "--node", NODE, "--kubeconfig", str(kube_config_file))
    assert code == 2
    assert err.startswith("model-agent status: error: cannot read ConfigMap ome/gpu-node-1: HTTP 403 ")
    assert "forbidden" in err and err.count("\n") == 1


def test_unreachable_api_server_exits_2(capsys, fake_kube, tmp_path, refused_port):
    port = refused_port
    kubeconfig = fake_kube.write_kubeconfig(tmp_path / "kc")
    text = kubeconfig.read_text().replace(f":{fake_kube.port}", f":{port}")
    kubeconfig.write_text(text)
    code, _, err = status(capsys, "--node", NODE, "--kubeconfig", str(kubeconfig))
    assert code == 2
    assert err.startswith(f"model-agent status: error: cannot read ConfigMap ome/{NODE} from http://127.0.0.1:{port}")
    assert err.count("\n") == 1


def test_bad_kubeconfig_exits_2(capsys, tmp_path):
    missing = tmp_path / "nope"
    code, _, err = status(capsys, "--node", NODE, "--kubeconfig", str(missing))
    assert code == 2 and err.startswith(f"model-agent status: error: cannot load Kubernetes credentials from {missing}")
    assert err.count("\n") == 1


def test_node_name_is_required(capsys, monkeypatch):
    monkeypatch.delenv("NODE_NAME", raising=False)
    code, _, err = status(capsys)
    assert code == 2 and err == "model-agent status: error: the node name is required: pass --node NAME or set NODE_NAME\n"


def test_models_root_needs_standalone(capsys):
    code, _, err = status(capsys, "--node", NODE, "--models-root-dir", "/x")
    assert code == 2 and "--models-root-dir needs --standalone" in err


# -------------------------------------------------------------------------------------- formatting

@pytest.mark.parametrize("progress,text", [
    (None, "-"),
    ({"phase": "Scanning", "totalBytes": 0, "completedBytes": 0, "speedBytesPerSec": 0}, "Scanning"),
    ({"phase": "Downloading", "totalBytes": 200, "completedBytes": 1, "speedBytesPerSec": 900}, "0% 900B/s"),
    ({"phase": "Verifying", "totalBytes": 10, "completedBytes": 10, "speedBytesPerSec": 0}, "100%"),
    ({"phase": "Downloading", "totalBytes": 3, "completedBytes": 2, "speedBytesPerSec": 1536}, "66% 1.5KiB/s"),
])
def test_progress_cell(progress, text):
    assert format_progress(progress) == text


def test_rate_units():
    assert format_rate(0) == "0B/s"
    assert format_rate(1023) == "1023B/s"
    assert format_rate(3 * 2**30) == "3.0GiB/s"
    assert format_rate(5 * 2**40) == "5120.0GiB/s"


def test_operator_docs_show_the_real_table(capsys, tmp_path):
    write_status_file(tmp_path, sample_data())
    code, out, _ = status(capsys, "--standalone", "--models-root-dir", str(tmp_path))
    assert code == 0
    docs = (Path(__file__).resolve().parents[2] / "docs" / "operators.md").read_text(encoding="utf-8")
    assert "```\n" + out + "```\n" in docs


def drive_sink(sink: Any) -> None:
    """The same sequence of agent writes on any StatusSink: Ready with config, downloading, Failed, removed."""
    from modelagent.agent.model_ref import ModelRef

    ready = ModelRef("BaseModel", "default", "llama-3-1-8b", "u1")
    downloading = ModelRef("BaseModel", "team-a", "qwen", "u2")
    failed = ModelRef("ClusterBaseModel", None, "big", "u3")
    gone = ModelRef("ClusterBaseModel", None, "gone", "u4")
    sink.set_status(ready, "Updating")
    sink.set_config(ready, {"modelType": "llama", "modelArchitecture": "LlamaForCausalLM",
                            "modelParameterSize": "8.03B", "maxTokens": 131072})
    sink.set_status(ready, "Ready")
    sink.set_status(downloading, "Updating")
    sink.set_progress(downloading, {"phase": "Downloading", "totalBytes": 4 * 2**30, "completedBytes": 2**30,
                                    "totalFiles": 4, "completedFiles": 1, "speedBytesPerSec": 52428800.0,
                                    "lastUpdated": "2024-05-01T12:00:00Z"})
    sink.set_status(failed, "Failed", reason="storage type s3:// is not supported by this agent yet")
    sink.set_status(gone, "Ready")
    sink.remove(gone)


def test_both_real_sinks_read_back_identically(capsys, fake_kube, kube_api_client, kube_config_file, tmp_path):
    from kubernetes import client

    from modelagent.agent.file_sink import FileStatusSink
    from modelagent.agent.kubernetes_sink import KubernetesStatusSink

    fake_kube.add_node(NODE)
    drive_sink(KubernetesStatusSink(client.CoreV1Api(kube_api_client), NODE, "ome"))
    drive_sink(FileStatusSink(tmp_path))

    code, from_cluster, _ = status(capsys, "--node", NODE, "--kubeconfig", str(kube_config_file), "--json")
    assert code == 0
    code, from_file, _ = status(capsys, "--standalone", "--models-root-dir", str(tmp_path), "--json")
    assert code == 0
    assert from_cluster == from_file
    assert set(json.loads(from_file)) == {"clusterbasemodel.big", "default.basemodel.llama-3-1-8b",
                                          "team-a.basemodel.qwen"}

    code, table_cluster, _ = status(capsys, "--node", NODE, "--kubeconfig", str(kube_config_file))
    code, table_file, _ = status(capsys, "--standalone", "--models-root-dir", str(tmp_path))
    assert table_cluster == table_file
    assert table(table_file) == EXPECTED_ROWS
