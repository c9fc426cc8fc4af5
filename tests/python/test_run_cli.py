"""`model-agent run` settings: every flag, its environment variable and default; NODE_NAME; bad values."""

from __future__ import annotations

import argparse
import io
import json
import logging
import socket
import subprocess
import sys

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
