"""The ``model_agent`` / ``model_agent_factory`` fixtures and AgentProcess: a real agent driven from a test."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from modelagent import configmap_key
from modelagent.testing.agent_fixtures import MODEL_AGENT_NODE
from modelagent.testing.agent_process import AgentProcess, AgentProcessError

pytest_plugins = ["pytester"]


def base_model(name: str, uri: str, namespace: str = "team") -> dict[str, Any]:
    return {"apiVersion": "ome.io/v1beta1", "kind": "BaseModel", "metadata": {"name": name, "namespace": namespace},
            "spec": {"storage": {"storageUri": uri}}}


def write_models(path: Path, *names_and_uris: tuple[str, str]) -> None:
    text = "".join(f"---\nkind: BaseModel\nmetadata:\n  name: {name}\n  namespace: default\n"
                   f"spec:\n  storage:\n    storageUri: {uri}\n" for name, uri in names_and_uris)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_model_agent_takes_a_base_model_to_ready_and_removes_it(model_agent, fake_kube, fake_hub, synthetic_model):
    fake_kube.add_namespace("team")
    fake_hub.add_repo("org/m", synthetic_model(seed=3).repo_files())
    key = configmap_key("BaseModel", "m", "team")
    label = f"models.ome.io/{key}"

    fake_kube.create("basemodels", base_model("m", "hf://org/m"), namespace="team")
    entry = model_agent.wait_for_status(key, "Ready")
    assert entry is not None and entry["config"]["modelType"] == "llama"
    assert model_agent.node_labels()[label] == "Ready"
    folder = model_agent.models_root / "basemodels" / "team" / "m"
    assert (folder / "config.json").is_file()
    assert fake_hub.find_requests(path="org/m")
    assert 'model_agent_downloads_success_total{model_type="BaseModel",name="m",namespace="team"} 1' in (
        model_agent.metrics())
    ready_log = model_agent.wait_for_log(lambda r: r.get("model") == "BaseModel team/m" and r.get("status") == "Ready")
    assert ready_log["level"] == "info"

    fake_kube.delete("basemodels", "m", namespace="team")
    assert model_agent.wait_for_status(key, None) is None
    assert label not in model_agent.node_labels()
    assert not folder.exists()

    assert model_agent.stop() == 0  # 0, not -9: it ended on SIGTERM within stop()'s 10 s
    assert not model_agent.running
    assert model_agent.logs[-1]["msg"] == "model agent stopped"


def test_model_agent_runs_for_the_fixture_node(model_agent, fake_kube):
    assert model_agent.node_name == MODEL_AGENT_NODE
    assert fake_kube.get("nodes", MODEL_AGENT_NODE)["metadata"]["name"] == MODEL_AGENT_NODE
    status, body = model_agent.get("/readyz")
    assert status == 200, body
    assert model_agent.port > 0 and model_agent.url == f"http://127.0.0.1:{model_agent.port}"
    starting = next(r for r in model_agent.logs if r["msg"].startswith("model agent starting"))
    assert starting["settings"]["node_name"] == MODEL_AGENT_NODE


def test_standalone_agent_from_the_factory(model_agent_factory, fake_hub, synthetic_model, tmp_path):
    fake_hub.add_repo("org/a", synthetic_model(seed=1).repo_files())
    fake_hub.add_repo("org/b", synthetic_model(seed=2).repo_files())
    models = tmp_path / "models.yaml"
    write_models(models, ("a", "hf://org/a"))
    root = tmp_path / "root"
    agent = model_agent_factory(standalone=models, models_root=root, args=["--reconcile-interval", "1"])
    key_a, key_b = configmap_key("BaseModel", "a", "default"), configmap_key("BaseModel", "b", "default")

    assert agent.wait_for_status(key_a, "Ready")["config"]["modelType"] == "llama"
    assert (root / "basemodels" / "default" / "a" / "config.json").is_file()
    assert (root / ".modelagent" / "status.json").is_file()

    write_models(models, ("b", "hf://org/b"))
    agent.wait_for_status(key_b, "Ready")
    agent.wait_for_status(key_a, None)
    assert set(agent.entries()) == {key_b}
    with pytest.raises(RuntimeError, match="Kubernetes mode"):
        agent.node_labels()
    assert agent.stop() == 0
    assert agent.log_path is not None and "model agent stopped" in agent.log_path.read_text()


def test_an_agent_that_exits_fails_the_wait_with_its_log(model_agent_factory, tmp_path):
    bad = tmp_path / "models.yaml"
    bad.write_text("kind: BaseModel\nmetadata: {}\n")
    agent = model_agent_factory(standalone=bad, wait_ready=False)
    with pytest.raises(AgentProcessError) as info:
        agent.wait_ready()
    message = str(info.value)
    assert "exited with status 2" in message
    assert f"{bad} document 1: BaseModel has no metadata.name" in message
    assert agent.returncode == 2 and agent.stop() == 2


def test_wait_for_status_timeout_names_the_entry_and_its_last_state(model_agent_factory, fake_hub, tmp_path):
    models = tmp_path / "models.yaml"
    write_models(models, ("bad", "hf://org//nope"))
    agent = model_agent_factory(standalone=models)
    key = configmap_key("BaseModel", "bad", "default")
    agent.wait_for_status(key, "Failed")
    with pytest.raises(AgentProcessError) as info:
        agent.wait_for_status(key, "Ready", timeout=0)
    message = str(info.value)
    assert f"entry {key} status Ready" in message and '"status": "Failed"' in message
    assert "model agent starting" in message  # the log tail


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({}, "exactly one of kubeconfig= .* and standalone="),
        ({"kubeconfig": "k", "standalone": "m.yaml", "node_name": "n"}, "exactly one of"),
        ({"kubeconfig": "k"}, "needs node_name="),
        ({"standalone": "m.yaml", "port": 70000}, "port must be between 0 and 65535"),
    ],
)
def test_bad_agent_options_are_refused(options, error, tmp_path):
    with pytest.raises(ValueError, match=error):
        AgentProcess(models_root=tmp_path, **options)


def test_environment_is_isolated_from_the_callers_agent_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("MODEL_AGENT_PORT", "1")
    monkeypatch.setenv("NODE_NAME", "callers-node")
    agent = AgentProcess(models_root=tmp_path, kubeconfig=tmp_path / "k", node_name="n1", hf_endpoint="http://h",
                         env={"EXTRA": "1"})
    assert "MODEL_AGENT_PORT" not in agent.env
    assert (agent.env["NODE_NAME"], agent.env["HF_ENDPOINT"], agent.env["EXTRA"]) == ("n1", "http://h", "1")
    assert agent.env["MODEL_AGENT_LOG_FORMAT"] == "json"
    assert agent.argv[agent.argv.index("--kubeconfig") + 1] == str(tmp_path / "k")


def test_a_failing_test_reports_the_agent_log(pytester):
    pytester.makepyfile(
        test_inner="""
        def test_fails(model_agent_factory, tmp_path):
            models = tmp_path / "models.yaml"
            models.write_text("")
            model_agent_factory(standalone=models)
            assert False, "deliberate failure"

        def test_passes(model_agent_factory, tmp_path):
            models = tmp_path / "models.yaml"
            models.write_text("")
            model_agent_factory(standalone=models)
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str()
    assert "deliberate failure" in output
    assert output.count("model-agent 1 log (running, full log ") == 1
    assert "model agent starting (standalone mode)" in output
