"""`model-agent run` settings: every flag, its environment variable and default; NODE_NAME; bad values."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from modelagent.agent.config import OPTIONS, ConfigError, add_arguments, resolve
from modelagent.agent.logging import configure_logging, model_logger
from modelagent.agent.model_ref import ModelRef

REFERENCE_DEFAULTS = {
    "port": 8080,
    "models_root_dir": "/mnt/models",
    "node_label_retry": 5,
    "download_retry": 3,
    "concurrency": 4,
    "multipart_concurrency": 4,
    "num_download_worker": 5,
    "namespace": "ome",
    "log_level": "info",
    "log_format": "json",
    "reconcile_interval": 300.0,
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_match_the_reference():
    settings = resolve(parse(["--node-name", "n1"]), environ={})
    for name, value in REFERENCE_DEFAULTS.items():
        assert getattr(settings, name) == value, name
    assert settings.node_name == "n1"
    assert settings.standalone is None and settings.kubeconfig is None


def test_node_name_required_in_kubernetes_mode():
    with pytest.raises(ConfigError, match="NODE_NAME"):
        resolve(parse([]), environ={})
    assert resolve(parse([]), environ={"NODE_NAME": "from-env"}).node_name == "from-env"
    assert resolve(parse(["--node-name", "flag"]), environ={"NODE_NAME": "env"}).node_name == "flag"


def test_standalone_defaults_node_name_to_host_name():
    settings = resolve(parse(["--standalone", "m.yaml"]), environ={})
    assert settings.node_name == socket.gethostname()
    assert settings.is_standalone


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.kind in ("int", "float")], ids=lambda o: o.flag)
def test_every_numeric_flag_has_an_env_var(option):
    env = {option.env_names[0]: "7", "NODE_NAME": "n"}
    settings = resolve(parse([]), environ=env)
    assert getattr(settings, option.dest) == 7
    assert settings.sources[option.dest] == f"env {option.env_names[0]}"
    flagged = resolve(parse([option.flag, "9"]), environ=env)
    assert getattr(flagged, option.dest) == 9


def test_string_and_bool_env_vars():
    env = {
        "NODE_NAME": "n",
        "MODEL_AGENT_MODELS_ROOT_DIR": "/data/models",
        "MODEL_AGENT_NAMESPACE": "serving",
        "MODEL_AGENT_LOG_LEVEL": "debug",
        "MODEL_AGENT_LOG_FORMAT": "text",
        "KUBECONFIG": "/k/config",
    }
    settings = resolve(parse([]), environ=env)
    assert (settings.models_root_dir, settings.namespace, settings.log_level, settings.log_format,
            settings.kubeconfig) == ("/data/models", "serving", "debug", "text", "/k/config")
    once = resolve(parse(["--standalone", "m.yaml"]), environ={"MODEL_AGENT_ONCE": "true"})
    assert once.once is True


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--port", "eighty"], {}, "--port must be an integer"),
        (["--port", "70000"], {}, "at most 65535"),
        ([], {"MODEL_AGENT_NUM_DOWNLOAD_WORKER": "0"}, r"--num-download-worker \(from \$MODEL_AGENT_NUM_DOWNLOAD_WORKER\) must be at least 1"),
        (["--log-format", "xml"], {}, "--log-format must be one of json, text"),
        (["--log-level", "loud"], {}, "--log-level must be one of"),
        (["--once"], {}, "--once needs --standalone"),
        (["--demo-hub"], {}, "--demo-hub needs --standalone"),
    ],
)
def test_bad_values_name_the_setting(argv, env, message):
    with pytest.raises(ConfigError, match=message):
        resolve(parse(argv), environ={"NODE_NAME": "n", **env})


def test_cli_without_node_name_exits_2(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path), "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "modelagent", "run"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 2
    assert "NODE_NAME" in proc.stderr and "--node-name" in proc.stderr


def test_help_lists_every_flag_and_env_var():
    proc = subprocess.run([sys.executable, "-m", "modelagent", "run", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for option in OPTIONS:
        assert option.flag in text
        for name in option.env_names:
            assert name in text


def test_json_logs_carry_the_model_identity():
    stream = io.StringIO()
    handler = configure_logging("info", "json", stream=stream)
    try:
        log = model_logger(logging.getLogger("modelagent.agent.test"), ModelRef("BaseModel", "ns", "m", "u"))
        log.info("hello %s", "world", extra={"status": "Ready"})
        logging.getLogger("modelagent.agent.test").debug("hidden at info")
    finally:
        logging.getLogger("modelagent").removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["msg"] == "hello world" and line["level"] == "info"
    assert (line["model"], line["model_kind"], line["model_namespace"], line["model_name"]) == (
        "BaseModel ns/m", "BaseModel", "ns", "m")
    assert line["status"] == "Ready" and line["time"].endswith("Z")


# ---------------------------------------------------------------------------------------------------
# Kubernetes mode end to end: `model-agent run` against the fake API server and the fake hub


def _wait(predicate, what, proc, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"agent exited with {proc.returncode} while waiting for {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _base_model(name: str, uri: str) -> dict:
    return {"apiVersion": "ome.io/v1beta1", "kind": "BaseModel",
            "metadata": {"name": name, "namespace": "team"}, "spec": {"storage": {"storageUri": uri}}}


def test_kubernetes_mode_end_to_end(fake_kube, kube_config_file, fake_hub, synthetic_model, tmp_path):
    fake_kube.add_node("node-1", labels={"kubernetes.io/hostname": "node-1"})
    fake_kube.add_namespace("team")
    fake_hub.add_repo("org/a", synthetic_model(seed=1).repo_files())
    fake_hub.add_repo("org/b", synthetic_model(seed=2).repo_files())
    fake_hub.add_repo("org/big", synthetic_model(seed=3, shard_sizes=[32 << 20]).repo_files())
    root = tmp_path / "models"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_AGENT_") and k != "NODE_NAME"}
    env.update(PYTHONPATH=os.pathsep.join(sys.path), HF_ENDPOINT=fake_hub.url, NODE_NAME="node-1")
    log_path = tmp_path / "agent.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelagent", "run", "--kubeconfig", str(kube_config_file),
             "--models-root-dir", str(root), "--port", "0", "--num-download-worker", "1",
             "--progress-interval", "0.2"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    try:
        def label(name: str) -> str | None:
            labels = fake_kube.get("nodes", "node-1")["metadata"].get("labels") or {}
            return labels.get(f"models.ome.io/team.basemodel.{name}")

        def entry(name: str) -> dict | None:
            if not fake_kube.exists("configmaps", "node-1", namespace="ome"):
                return None
            data = fake_kube.get("configmaps", "node-1", namespace="ome").get("data") or {}
            text = data.get(f"team.basemodel.{name}")
            return None if text is None else json.loads(text)

        fake_kube.create("basemodels", _base_model("a", "hf://org/a"), namespace="team")
        _wait(lambda: label("a") == "Ready" and (entry("a") or {}).get("status") == "Ready", "a Ready", proc)
        assert entry("a")["config"]["modelType"] == "llama"
        assert (root / "basemodels" / "team" / "a" / "config.json").is_file()

        # A label-only change must not download again. With one worker, b being Ready means a's task
        # (had there been one) already ran.
        fake_hub.clear_requests()
        fake_kube.patch("basemodels", "a", {"metadata": {"labels": {"tier": "gold"}}}, namespace="team")
        fake_kube.create("basemodels", _base_model("b", "hf://org/b"), namespace="team")
        _wait(lambda: label("b") == "Ready", "b Ready", proc)
        assert not fake_hub.find_requests(path="org/a")

        # Delete during a download: cancelled within seconds, label/entry/folder gone, never resurrected.
        fake_hub.throttle(512 << 10, server="cdn")
        fake_kube.create("basemodels", _base_model("big", "hf://org/big"), namespace="team")
        _wait(lambda: ((entry("big") or {}).get("progress") or {}).get("completedBytes", 0) > 0,
              "big downloading", proc)
        assert label("big") == "Updating"
        fake_kube.delete("basemodels", "big", namespace="team")
        _wait(lambda: label("big") is None and entry("big") is None, "big's label and entry removed", proc)
        _wait(lambda: not (root / "basemodels" / "team" / "big").exists(), "big's folder removed", proc)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert label("big") is None and entry("big") is None
        assert label("a") == "Ready" and label("b") == "Ready"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_missing_kubeconfig_is_a_clear_startup_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_AGENT_")}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    missing = tmp_path / "no-such-kubeconfig"
    proc = subprocess.run(
        [sys.executable, "-m", "modelagent", "run", "--node-name", "n1", "--kubeconfig", str(missing),
         "--port", "0", "--models-root-dir", str(tmp_path / "models")],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert proc.returncode == 2
    errors = [json.loads(line) for line in proc.stdout.splitlines() if '"level": "error"' in line]
    assert errors and f"kubeconfig {missing} does not exist" in errors[0]["msg"]
