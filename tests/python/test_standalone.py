"""Standalone mode: the models file source, and `model-agent run --standalone` end to end."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from modelagent import configmap_key
from modelagent.agent.file_source import FileModelSource, ModelFileError, load_models_file
from modelagent.agent.tasks import GopherTask

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "standalone" / "models.yaml"
BOUND = 30.0


def write(path: Path, text: str) -> None:
    """Replace the file's content so the poller sees a new inode, size or mtime."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def bm(name: str, uri: str, *, namespace: str = "default", extra: str = "") -> str:
    return (f"---\nkind: BaseModel\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
            f"spec:\n  storage:\n    storageUri: {uri}\n{extra}")


class Collector:
    def __init__(self) -> None:
        self.tasks: list[GopherTask] = []

    def __call__(self, task: GopherTask) -> None:
        self.tasks.append(task)

    def take(self) -> list[tuple[str, str]]:
        out = [(str(t.type), t.ref.display) for t in self.tasks]
        self.tasks.clear()
        return out


def test_file_source_turns_edits_into_tasks(tmp_path: Path):
    path = tmp_path / "models.yaml"
    write(path, "kind: Node\nmetadata:\n  labels:\n    gpu: 'yes'\n" + bm("a", "hf://org/a")
          + bm("b", "hf://org/b", extra="    nodeSelector:\n      gpu: 'yes'\n")
          + bm("c", "hf://org/c", extra="    nodeSelector:\n      gpu: 'no'\n"))
    tasks = Collector()
    source = FileModelSource(path, "node-1", tasks, poll_interval=3600)
    source.start()
    try:
        assert sorted(tasks.take()) == [("Download", "BaseModel default/a"), ("Download", "BaseModel default/b")]
        assert source.live_keys() == {"default.basemodel.a", "default.basemodel.b"}

        # Change a's URI, touch only b's labels, drop the node label that placed b, and remove nothing else.
        write(path, bm("a", "hf://org/a2") + bm("b", "hf://org/b", extra="    nodeSelector:\n      gpu: 'yes'\n")
              + bm("c", "hf://org/c", extra="    nodeSelector:\n      gpu: 'no'\n"))
        assert source.poll()
        assert sorted(tasks.take()) == [("Delete", "BaseModel default/b"), ("DownloadOverride", "BaseModel default/a")]

        # A broken edit keeps the last good state and submits nothing.
        write(path, "kind: BaseModel\nmetadata: [unclosed\n")
        assert not source.poll()
        assert tasks.take() == []
        assert "not valid YAML" in (source.last_error or "")
        assert source.live_keys() == {"default.basemodel.a"}

        write(path, "")
        assert source.poll()
        assert tasks.take() == [("Delete", "BaseModel default/a")]
    finally:
        source.stop()


def test_file_source_uids_are_stable_and_cluster_models_have_no_namespace(tmp_path: Path):
    path = tmp_path / "m.yaml"
    write(path, "kind: ClusterBaseModel\nmetadata:\n  name: x\n  namespace: ignored\nspec:\n  storage:\n"
          "    storageUri: hf://org/x\n")
    first, _ = load_models_file(path)
    second, _ = load_models_file(path)
    obj = first["clusterbasemodel.x"]
    assert "namespace" not in obj["metadata"]
    assert obj["metadata"]["uid"] == second["clusterbasemodel.x"]["metadata"]["uid"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "document 1: expected a mapping"),
        ("kind: Deployment\nmetadata: {name: x}\n", "document 1: kind must be BaseModel, ClusterBaseModel or Node"),
        ("kind: BaseModel\nmetadata: {}\n", "document 1: BaseModel has no metadata.name"),
        (bm("a", "hf://o/a") + bm("a", "hf://o/b"), r"document 2: BaseModel default/a is defined twice"),
    ],
)
def test_bad_models_file_names_the_document(tmp_path: Path, text: str, message: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ModelFileError, match=message) as info:
        load_models_file(path)
    assert str(path) in str(info.value)


def test_missing_models_file_fails_at_start(tmp_path: Path):
    source = FileModelSource(tmp_path / "absent.yaml", "n", Collector())
    with pytest.raises(ModelFileError, match="absent.yaml"):
        source.start()


# ---------------------------------------------------------------------------------------------------
# `model-agent run --standalone` as a subprocess


def agent_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_AGENT_") and k != "NODE_NAME"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    env.update(extra)
    return env


def read_status(root: Path) -> dict[str, dict[str, Any]]:
    path = root / ".modelagent" / "status.json"
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {k: json.loads(v) for k, v in data.items()}


def wait_for(predicate: Any, what: str, timeout: float = BOUND) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Agent:
    """A `model-agent run` subprocess whose JSON log lines are collected from stdout."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "modelagent", "run", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def drain(self) -> list[str]:
        while True:
            try:
                self.log.append(self.lines.get_nowait())
            except queue.Empty:
                return self.log

    def url(self) -> str:
        def find() -> str | None:
            for line in self.drain():
                match = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
                if match:
                    return match.group(1)
            return None

        return str(self.wait(find, "the agent's server URL"))

    def wait(self, predicate: Any, what: str, timeout: float = BOUND) -> Any:
        """wait_for, with the agent's recent log in the failure message."""
        try:
            return wait_for(predicate, what, timeout)
        except AssertionError as error:
            tail = "".join(self.drain()[-30:])
            raise AssertionError(f"{error}; exit status {self.proc.poll()}; agent log:\n{tail}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def agents():
    started: list[Agent] = []

    def start(args: list[str], env: dict[str, str]) -> Agent:
        agent = Agent(args, env)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()


def test_example_runs_offline_once(tmp_path: Path):
    root = tmp_path / "models"
    proc = subprocess.run(
        [sys.executable, "-m", "modelagent", "run", "--standalone", str(EXAMPLE), "--models-root-dir", str(root),
         "--demo-hub", "--once", "--port", "0"],
        capture_output=True, text=True, env=agent_env(HF_HUB_OFFLINE="1"), timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.splitlines()
    assert table[0].split()[:2] == ["MODEL", "STATUS"]
    rows = {line.split()[0]: line.split()[1] for line in table[1:]}
    assert rows == {"default.basemodel.tiny-llama": "Ready", "clusterbasemodel.tiny-llama-gpu": "Ready"}
    status = read_status(root)
    assert set(status) == set(rows)
    assert status["default.basemodel.tiny-llama"]["config"]["modelType"] == "llama"
    assert (root / "basemodels" / "default" / "tiny-llama" / "config.json").is_file()
    assert not (root / "clusterbasemodels" / "needs-a100").exists()


def test_standalone_follows_file_edits_serves_metrics_and_stops_on_sigterm(
    tmp_path: Path, fake_hub: Any, synthetic_model: Any, agents: Any
):
    fake_hub.add_repo("org/a", synthetic_model(seed=1).repo_files())
    fake_hub.add_repo("org/b", synthetic_model(seed=2).repo_files())
    root = tmp_path / "models"
    models = tmp_path / "models.yaml"
    write(models, bm("a", "hf://org/a"))
    agent = agents(["--standalone", str(models), "--models-root-dir", str(root), "--port", "0",
                    "--reconcile-interval", "1"], agent_env(HF_ENDPOINT=fake_hub.url))
    url = agent.url()
    key_a, key_b, key_bad = (configmap_key("BaseModel", n, "default") for n in ("a", "b", "bad"))
    agent.wait(lambda: read_status(root).get(key_a, {}).get("status") == "Ready", "a Ready")
    assert (root / "basemodels" / "default" / "a" / "config.json").is_file()

    write(models, bm("b", "hf://org/b") + bm("bad", "hf://org//nope"))
    agent.wait(lambda: read_status(root).get(key_b, {}).get("status") == "Ready", "b Ready")
    agent.wait(lambda: key_a not in read_status(root), "a's entry removed")
    # bad fails on another worker than b's download: nothing orders its Failed before b's Ready.
    agent.wait(lambda: read_status(root).get(key_bad, {}).get("status") == "Failed", "bad Failed")
    status = read_status(root)
    assert status[key_bad]["status"] == "Failed" and "hf://org//nope" in status[key_bad]["reason"]
    agent.wait(lambda: not (root / "basemodels" / "default" / "a").exists(), "a's folder removed")

    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert 'model_agent_downloads_success_total{model_type="BaseModel",name="b",namespace="default"} 1' in metrics
    with urllib.request.urlopen(url + "/readyz", timeout=10) as response:
        assert response.status == 200

    def ready_logged() -> bool:
        lines = [json.loads(line) for line in agent.drain() if line.startswith("{")]
        return any(line.get("model") == "BaseModel default/b" and line.get("status") == "Ready" for line in lines)

    agent.wait(ready_logged, "a JSON log line about b with its status")

    agent.proc.send_signal(signal.SIGTERM)
    assert agent.proc.wait(10) == 0


def test_sigterm_mid_download_then_restart_resumes(tmp_path: Path, fake_hub: Any, synthetic_model: Any, agents: Any):
    fake_hub.add_repo("org/big", synthetic_model(shard_sizes=[1 << 20, 1 << 20, 32 << 20]).repo_files())
    fake_hub.throttle(1 << 20, server="cdn")
    root = tmp_path / "models"
    models = tmp_path / "models.yaml"
    write(models, bm("big", "hf://org/big"))
    args = ["--standalone", str(models), "--models-root-dir", str(root), "--port", "0", "--progress-interval", "0.2"]
    agent = agents(args, agent_env(HF_ENDPOINT=fake_hub.url))
    key = configmap_key("BaseModel", "big", "default")
    def all_but_one_done() -> bool:
        progress = read_status(root).get(key, {}).get("progress", {})
        return progress.get("totalFiles", 0) > 0 and progress["completedFiles"] == progress["totalFiles"] - 1

    agent.wait(all_but_one_done, "every file but the large one complete")
    started = time.monotonic()
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.proc.wait(15) == 0
    assert time.monotonic() - started < 10
    assert read_status(root)[key]["status"] == "Updating"  # finished by the next start

    dest = root / "basemodels" / "default" / "big"
    hub_files = fake_hub.files("org/big", "main")
    lfs = {p: f for p, f in hub_files.items() if f.sha256}
    complete = {p for p, f in lfs.items() if (dest / p).is_file() and (dest / p).stat().st_size == f.size}
    assert complete and set(lfs) - complete, "stopped too early or too late for this test"
    fake_hub.throttle(None)
    fake_hub.clear_requests()
    restarted = agents(args, agent_env(HF_ENDPOINT=fake_hub.url))
    restarted.wait(lambda: read_status(root).get(key, {}).get("status") == "Ready", "Ready after the restart")
    cdn = [r for r in fake_hub.requests if r.server == "cdn" and r.method == "GET"]
    for path in complete:
        assert not any(r.path.endswith(lfs[path].sha256) for r in cdn), f"{path} was downloaded again"
    for path in set(lfs) - complete:
        fetched = [r for r in cdn if r.path.endswith(lfs[path].sha256)]
        assert fetched and all((r.range or "").startswith("bytes=") and not r.range.startswith("bytes=0-")
                               for r in fetched), f"{path} was not resumed: {[r.range for r in fetched]}"
        assert (dest / path).stat().st_size == lfs[path].size
    restarted.proc.send_signal(signal.SIGTERM)
    assert restarted.proc.wait(10) == 0


def test_unusable_models_file_exits_2(tmp_path: Path):
    bad = tmp_path / "models.yaml"
    bad.write_text("kind: BaseModel\nmetadata: {}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "modelagent", "run", "--standalone", str(bad), "--models-root-dir",
         str(tmp_path / "models"), "--port", "0"],
        capture_output=True, text=True, env=agent_env(), timeout=60,
    )
    assert proc.returncode == 2
    assert f"{bad} document 1: BaseModel has no metadata.name" in proc.stdout
