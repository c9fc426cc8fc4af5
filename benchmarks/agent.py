#!/usr/bin/env python3
"""Benchmark: `model-agent run` footprint with many BaseModels in the cluster, and time from create to Ready.

Everything runs on loopback, each part in its own process so the agent's numbers are its own:

- the fake Kubernetes API server (``python -m modelagent.testing.kube_api``);
- the fake Hugging Face hub (``python -m modelagent.testing.hf_hub``) serving the bundled tiny Llama
  (``modelagent.example_model_path()``) as ``hf://bench/tiny-llama``, its weights through the CDN host;
- ``model-agent run`` (``python -m modelagent run``) with default settings, ``NODE_NAME`` set to the
  benchmark node, ``--kubeconfig``, a temporary ``--models-root-dir`` and a free ``--port``.

For each scenario (a baseline with 0 BaseModels, then ``--models`` of them) a fresh API server is seeded
with the Node (labels) and the BaseModels, spread over ``--namespaces`` namespaces, before the agent
starts. About ``--selected-percent`` of them are placed on this node (nodeSelector on the host name, or
required node affinity on a pool label); the rest select other nodes in the same two ways. The rest carry
an OME-like ``status`` (state, nodesReady) like models that are served elsewhere.

Measured on the agent process (``/proc/<pid>/status`` VmRSS, VmHWM, Threads; ``/proc/<pid>/stat``
utime+stime):

- time from process start until ``/readyz`` answers 200 (caches synced, start-up pass done);
- time until every model of this node is ``Ready`` in the node's ConfigMap (followed with a watch);
- RSS, peak RSS and CPU seconds at those two points;
- steady-state CPU over a quiet ``--quiet-seconds`` window (no change in the cluster);
- ``--samples`` times: create one more small model for this node, time from the create request until
  its ConfigMap entry reads ``Ready`` (median, min, max);
- time from SIGTERM to exit.

Prints Markdown tables. The machine's load average is printed too: on a shared machine the numbers are
indicative. Processes are stopped and the temporary folder removed at the end (kept with ``--keep``, and
after a failure, for the logs).
"""

from __future__ import annotations

import os
import sys

# benchmarks/inspect.py is named like the stdlib module `inspect`; keep this folder off the import path so
# that `import inspect` (done by dataclasses and others) finds the real one.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]


# benchmarks/inspect.py shadows the stdlib `inspect` (needed by dataclasses): keep this folder off the path,
# here and in the PYTHONPATH handed to the subprocesses.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

import argparse  # noqa: E402
import http.client
import json
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NODE = "bench-node"
POOL_LABEL = "bench.modelagent.io/pool"
AGENT_NAMESPACE = "ome"
REPO = "bench/tiny-llama"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MiB = 1 << 20


class BenchError(RuntimeError):
    """A phase failed or timed out; the message says which and why."""


# ------------------------------------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ProcStats:
    """One sample of a process's memory and CPU from /proc."""

    rss: int  # bytes
    hwm: int  # bytes, peak RSS so far
    threads: int
    cpu: float  # seconds, user + system

    @classmethod
    def read(cls, pid: int) -> ProcStats:
        fields: dict[str, str] = {}
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            stat = f.read()
        # Fields after the command name, which is in parentheses and may contain spaces.
        rest = stat[stat.rindex(")") + 2:].split()
        utime, stime = int(rest[11]), int(rest[12])
        return cls(
            rss=int(fields["VmRSS"].split()[0]) * 1024,
            hwm=int(fields["VmHWM"].split()[0]) * 1024,
            threads=int(fields["Threads"]),
            cpu=(utime + stime) / CLK_TCK,
        )


class Child:
    """A subprocess whose output goes to a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self, what: str) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.proc.returncode} while {what}; "
                             f"log {self.log_path}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = 15.0) -> float | None:
        """SIGTERM, wait; returns the seconds until exit (None if it had to be killed or was gone)."""
        took: float | None = None
        if self.proc.poll() is None:
            t0 = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
                took = time.monotonic() - t0
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return took


def wait_for(predicate: Any, what: str, timeout: float, child: Child | None = None, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if child is not None:
            child.check_alive(f"waiting for {what}")
        if time.monotonic() >= deadline:
            tail = f"; {child.name} log {child.log_path} ends:\n{child.log_tail()}" if child else ""
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}{tail}")
        time.sleep(interval)


# ------------------------------------------------------------------------------------------------ API access


class Kube:
    """Minimal JSON-over-HTTP access to the fake API server, one keep-alive connection per thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self._local.conn = conn
        return conn

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json") -> tuple[int, Any]:
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        return resp.status, (json.loads(raw) if raw else None)

    def must(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        status, answer = self.request(method, path, body, content_type)
        if status >= 300:
            message = answer.get("message") if isinstance(answer, dict) else answer
            raise BenchError(f"{method} {path}: HTTP {status}: {message}")
        return answer


def basemodel_path(namespace: str, name: str | None = None) -> str:
    path = f"/apis/ome.io/v1beta1/namespaces/{namespace}/basemodels"
    return path if name is None else f"{path}/{name}"


def make_basemodel(index: int, namespace: str, selected: bool, other_nodes: int) -> tuple[dict, dict | None]:
    """A BaseModel and, for models served elsewhere, the status an OME controller would have given it."""
    name = f"model-{index:05d}"
    if selected:
        uri = f"hf://{REPO}"
        placement = ({"nodeSelector": {"kubernetes.io/hostname": NODE}} if index % 2 == 0 else
                     {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                         {"matchExpressions": [{"key": POOL_LABEL, "operator": "In", "values": ["bench"]}]}]}}})
    else:
        uri = f"hf://bench-org/model-{index:05d}"
        other = f"node-{index % other_nodes:03d}"
        placement = ({"nodeSelector": {"kubernetes.io/hostname": other}} if index % 2 == 0 else
                     {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                         {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                                                "values": [other, f"node-{(index + 1) % other_nodes:03d}"]}]}]}}})
    spec: dict[str, Any] = {"storage": {"storageUri": uri, **placement}, "modelFormat": {"name": "safetensors"}}
    if not selected:
        # Back-filled long ago by the node that holds it.
        spec.update(modelType="llama", modelArchitecture="LlamaForCausalLM", modelFramework={
            "name": "transformers", "version": "4.45.0"}, modelParameterSize="8.03B", maxTokens=131072)
    obj = {
        "apiVersion": "ome.io/v1beta1",
        "kind": "BaseModel",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/part-of": "modelagent-bench", "bench/index": str(index)},
                     "annotations": {"bench/description": f"synthetic benchmark model number {index}"}},
        "spec": spec,
    }
    status = None
    if not selected:
        status = {"state": "Ready", "lifecycle": "Ready",
                  "nodesReady": sorted({f"node-{index % other_nodes:03d}", f"node-{(index + 1) % other_nodes:03d}"})}
    return obj, status


# ------------------------------------------------------------------------------------------------ ConfigMap watch


class ConfigMapWatch:
    """Follows the node's ConfigMap with a watch and records when each key is first seen ``Ready``."""

    def __init__(self, port: int, namespace: str, name: str) -> None:
        self.port = port
        self.namespace = namespace
        self.name = name
        self.ready_at: dict[str, float] = {}
        self.entries: dict[str, dict] = {}
        self.error: str | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._conn: http.client.HTTPConnection | None = None
        self._thread = threading.Thread(target=self._run, name="configmap-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)

    def _apply(self, data: dict[str, str] | None, now: float) -> None:
        entries: dict[str, dict] = {}
        for key, text in (data or {}).items():
            try:
                entries[key] = json.loads(text)
            except ValueError:
                entries[key] = {"status": "<not JSON>"}
        with self._cond:
            self.entries = entries
            for key, entry in entries.items():
                if entry.get("status") == "Ready" and key not in self.ready_at:
                    self.ready_at[key] = now
            self._cond.notify_all()

    def _list(self, kube: Kube) -> str:
        selector = urllib.parse.quote(f"metadata.name={self.name}")
        answer = kube.must("GET", f"/api/v1/namespaces/{self.namespace}/configmaps?fieldSelector={selector}")
        items = answer.get("items") or []
        self._apply(items[0].get("data") if items else None, time.monotonic())
        return str(answer["metadata"]["resourceVersion"])

    def _run(self) -> None:
        kube = Kube(self.port)
        try:
            rv = self._list(kube)
            while not self._stop.is_set():
                query = urllib.parse.urlencode({
                    "watch": "true", "fieldSelector": f"metadata.name={self.name}", "resourceVersion": rv,
                    "allowWatchBookmarks": "true", "timeoutSeconds": "300"})
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
                self._conn.request("GET", f"/api/v1/namespaces/{self.namespace}/configmaps?{query}")
                resp = self._conn.getresponse()
                if resp.status != 200:
                    raise BenchError(f"ConfigMap watch: HTTP {resp.status}")
                for line in resp:
                    now = time.monotonic()
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    kind = event.get("type")
                    if kind == "ERROR":
                        rv = self._list(kube)  # 410 Expired: list again and watch from there
                        break
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                    if kind in ("ADDED", "MODIFIED"):
                        self._apply(obj.get("data"), now)
                    elif kind == "DELETED":
                        self._apply(None, now)
                self._conn.close()
        except Exception as error:  # noqa: BLE001 - reported by wait_ready
            if not self._stop.is_set():
                self.error = f"{type(error).__name__}: {error}"
                with self._cond:
                    self._cond.notify_all()

    def wait_ready(self, keys: set[str], timeout: float, child: Child) -> float:
        """Waits until every key was seen Ready; returns the monotonic time the last one was."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self.error:
                    raise BenchError(f"ConfigMap watch failed: {self.error}")
                missing = keys - self.ready_at.keys()
                if not missing:
                    return max((self.ready_at[k] for k in keys), default=time.monotonic())
                child.check_alive(f"waiting for {len(missing)} models to be Ready")
                left = deadline - time.monotonic()
                if left <= 0:
                    sample = sorted(missing)[:5]
                    states = {k: (self.entries.get(k) or {}).get("status") for k in sample}
                    raise BenchError(f"timed out after {timeout:.0f} s: {len(missing)} of {len(keys)} models "
                                     f"not Ready, e.g. {states}; {child.name} log {child.log_path} ends:\n"
                                     f"{child.log_tail()}")
                self._cond.wait(min(left, 0.5))


# ------------------------------------------------------------------------------------------------ scenario


@dataclass
class Scenario:
    models: int
    selected: int = 0
    seed_seconds: float = 0.0
    readyz: float = 0.0
    all_ready: float = 0.0
    at_ready: ProcStats | None = None
    at_all_ready: ProcStats | None = None
    quiet_start: ProcStats | None = None
    quiet_end: ProcStats | None = None
    quiet_seconds: float = 0.0
    quiet_from: float = 0.0  # seconds after the agent's start
    at_end: ProcStats | None = None
    latencies: list[float] = field(default_factory=list)
    sigterm_exit: float | None = None
    entries: int = 0
    kube_at_end: ProcStats | None = None

    @property
    def steady_cpu_percent(self) -> float:
        assert self.quiet_start and self.quiet_end
        return 100.0 * (self.quiet_end.cpu - self.quiet_start.cpu) / self.quiet_seconds


def python_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_AGENT_", "HF_")) and k != "NODE_NAME"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def run_scenario(n: int, args: argparse.Namespace, hub_url: str, workdir: Path, log: Any) -> Scenario:
    result = Scenario(models=n)
    every = max(1, round(100 / args.selected_percent))
    namespaces = [f"bench-{i:02d}" for i in range(args.namespaces)]
    scen_dir = workdir / f"scenario-{n}"
    scen_dir.mkdir()
    port_file = scen_dir / "kube.port"
    kubeconfig = scen_dir / "kubeconfig"
    ns_args = [a for ns in [AGENT_NAMESPACE, *namespaces] for a in ("--namespace", ns)]
    children: list[Child] = []
    watch: ConfigMapWatch | None = None
    try:
        kube_proc = Child("fake API server", [
            sys.executable, "-m", "modelagent.testing.kube_api", "--port", "0", "--kubeconfig", str(kubeconfig),
            "--port-file", str(port_file), *ns_args], scen_dir / "kube_api.log", env=python_env())
        children.append(kube_proc)
        wait_for(lambda: port_file.is_file() and port_file.read_text().strip() and kubeconfig.is_file(),
                 "the fake API server", 60, kube_proc, 0.05)
        kube = Kube(int(port_file.read_text()))

        kube.must("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": {
            "kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux", POOL_LABEL: "bench",
            "node.kubernetes.io/instance-type": "bench.2xlarge"}}})

        # Seed before the agent starts, in parallel over keep-alive connections.
        selected_keys: set[str] = set()
        jobs = []
        for i in range(n):
            ns = namespaces[i % len(namespaces)]
            selected = i % every == 0
            obj, status = make_basemodel(i, ns, selected, args.other_nodes)
            if selected:
                selected_keys.add(f"{ns}.basemodel.{obj['metadata']['name']}")
            jobs.append((ns, obj, status))

        def seed(job: tuple[str, dict, dict | None]) -> None:
            ns, obj, status = job
            kube.must("POST", basemodel_path(ns), obj)
            if status is not None:
                kube.must("PATCH", basemodel_path(ns, obj["metadata"]["name"]) + "/status", {"status": status},
                          "application/merge-patch+json")

        t0 = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            for _ in pool.map(seed, jobs, chunksize=64):
                pass
        result.seed_seconds = time.monotonic() - t0
        result.selected = len(selected_keys)
        print(f"  seeded {n} BaseModels ({len(selected_keys)} for {NODE}) in {result.seed_seconds:.1f} s",
              file=log, flush=True)

        watch = ConfigMapWatch(kube.port, AGENT_NAMESPACE, NODE)
        watch.start()

        agent_port = free_port()
        env = python_env()
        env.update(NODE_NAME=NODE, HF_ENDPOINT=hub_url, HF_HOME=str(scen_dir / "hf-home"),
                   HF_HUB_DISABLE_TELEMETRY="1")
        agent = Child("model-agent", [
            sys.executable, "-m", "modelagent", "run", "--kubeconfig", str(kubeconfig),
            "--models-root-dir", str(scen_dir / "models"), "--port", str(agent_port)],
            scen_dir / "agent.log", env=env)
        children.append(agent)

        def readyz() -> bool:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", agent_port, timeout=5)
                conn.request("GET", "/readyz")
                ok = conn.getresponse().status == 200
                conn.close()
                return ok
            except OSError:
                return False

        # Every failed probe is a request and a warning line in the agent: poll gently.
        wait_for(readyz, "/readyz", args.timeout, agent, interval=0.1)
        result.readyz = time.monotonic() - agent.started
        result.at_ready = ProcStats.read(agent.pid)
        print(f"  /readyz 200 after {result.readyz:.2f} s", file=log, flush=True)

        last = watch.wait_ready(selected_keys, args.timeout, agent)
        result.all_ready = max(last, agent.started + result.readyz) - agent.started
        result.at_all_ready = ProcStats.read(agent.pid)
        print(f"  {len(selected_keys)} models Ready after {result.all_ready:.2f} s", file=log, flush=True)

        # Let the last status writes settle, then a quiet window.
        time.sleep(2)
        result.quiet_start = ProcStats.read(agent.pid)
        t_quiet = time.monotonic()
        result.quiet_from = t_quiet - agent.started
        while time.monotonic() - t_quiet < args.quiet_seconds:
            agent.check_alive("in the quiet window")
            time.sleep(0.5)
        result.quiet_end = ProcStats.read(agent.pid)
        result.quiet_seconds = time.monotonic() - t_quiet

        lat_ns = namespaces[0] if namespaces else AGENT_NAMESPACE
        for j in range(args.samples):
            name = f"latency-{j:02d}"
            key = f"{lat_ns}.basemodel.{name}"
            obj = {"apiVersion": "ome.io/v1beta1", "kind": "BaseModel",
                   "metadata": {"name": name, "namespace": lat_ns},
                   "spec": {"storage": {"storageUri": f"hf://{REPO}",
                                        "nodeSelector": {"kubernetes.io/hostname": NODE}}}}
            t_create = time.monotonic()
            kube.must("POST", basemodel_path(lat_ns), obj)
            done = watch.wait_ready({key}, 120, agent)
            result.latencies.append(done - t_create)
            time.sleep(1)
        result.at_end = ProcStats.read(agent.pid)
        result.entries = len(watch.entries)
        expected = selected_keys | {f"{lat_ns}.basemodel.latency-{j:02d}" for j in range(args.samples)}
        if set(watch.entries) != expected:
            extra = sorted(set(watch.entries) - expected)[:5]
            raise BenchError(f"the ConfigMap holds {len(watch.entries)} entries, expected {len(expected)}; "
                             f"unexpected e.g. {extra}")
        result.kube_at_end = ProcStats.read(kube_proc.pid)
        result.sigterm_exit = agent.stop()
        if agent.proc.returncode != 0:
            raise BenchError(f"model-agent exited with {agent.proc.returncode} after SIGTERM; log {agent.log_path}")
        return result
    finally:
        if watch is not None:
            watch.stop()
        for child in reversed(children):
            child.stop()


# ------------------------------------------------------------------------------------------------ report


def mib(value: int) -> str:
    return f"{value / MiB:.1f}"


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def report(results: list[Scenario], args: argparse.Namespace, load_start: str, load_end: str, wall: float) -> str:
    import kubernetes

    import modelagent

    out: list[str] = []
    out.append(f"### Agent with {results[-1].models:,} BaseModels".replace(",", " "))
    out.append("")
    out.append(f"Machine: {os.cpu_count()} CPUs ({cpu_model()}), Linux {platform.release()}, Python "
               f"{platform.python_version()}, modelagent {modelagent.__version__} (commit {git_commit()}), "
               f"kubernetes client {kubernetes.__version__}. Load average (1/5/15 min) at start {load_start}, "
               f"at end {load_end}: the machine was shared with other work, so the numbers are indicative. "
               f"Total benchmark time {wall:.0f} s.")
    out.append("")
    out.append(f"Setup: fake API server and fake hub in their own processes on loopback; BaseModels in "
               f"{args.namespaces} namespaces, every {max(1, round(100 / args.selected_percent))}th placed on "
               f"this node (nodeSelector or required node affinity), the others on {args.other_nodes} other nodes "
               f"and carrying a status; each model for this node is `hf://{REPO}` (the bundled tiny Llama, "
               f"{example_size() // 1024} KiB). Agent with default settings (5 download workers).")
    out.append("")
    header = "| | " + " | ".join(f"{r.models:,} BaseModels".replace(",", " ") for r in results)
    if len(results) == 2:
        header += " | difference"
    out.append(header + " |")
    out.append("|---" * (len(results) + 1 + (len(results) == 2)) + "|")

    def row(label: str, values: list[float], fmt: str, diff: bool = True) -> None:
        cells = [fmt.format(v) for v in values]
        if len(values) == 2:
            cells.append(("+" if values[1] >= values[0] else "") + fmt.format(values[1] - values[0]) if diff else "")
        out.append(f"| {label} | " + " | ".join(cells) + " |")

    rs = results
    row("models for this node", [r.selected for r in rs], "{:d}")
    row("seeding the fake API server (s, before the agent starts)", [r.seed_seconds for r in rs], "{:.1f}", False)
    row("start → `/readyz` 200 (s)", [r.readyz for r in rs], "{:.2f}")
    row("start → every model for this node `Ready` (s)", [r.all_ready for r in rs], "{:.2f}")
    row("RSS at `/readyz` (MiB)", [r.at_ready.rss / MiB for r in rs], "{:.1f}")
    row("RSS with every model `Ready` (MiB)", [r.at_all_ready.rss / MiB for r in rs], "{:.1f}")
    row(f"RSS after the quiet window and {args.samples} more models (MiB)", [r.at_end.rss / MiB for r in rs], "{:.1f}")
    row("peak RSS, VmHWM (MiB)", [r.at_end.hwm / MiB for r in rs], "{:.1f}")
    row("CPU until `/readyz` (s)", [r.at_ready.cpu for r in rs], "{:.2f}")
    row("CPU until every model `Ready` (s)", [r.at_all_ready.cpu for r in rs], "{:.2f}")
    row(f"steady-state CPU, quiet {args.quiet_seconds:.0f} s window (% of one core)",
        [r.steady_cpu_percent for r in rs], "{:.2f}")
    out_cells = [f"{r.quiet_from:.0f}–{r.quiet_from + r.quiet_seconds:.0f}" for r in rs]
    out.append("| quiet window (s after start; the first self-healing pass runs at about 30 s) | "
               + " | ".join(out_cells) + (" | |" if len(rs) == 2 else " |"))
    row("threads", [r.at_end.threads for r in rs], "{:d}")
    row("SIGTERM → exit (s)", [r.sigterm_exit if r.sigterm_exit is not None else float("nan") for r in rs],
        "{:.2f}", False)
    row("fake API server RSS at the end (MiB, not the agent)", [r.kube_at_end.rss / MiB for r in rs], "{:.1f}", False)
    out.append("")
    out.append("Time from creating one more small model for this node (POST of the BaseModel) until its entry in "
               "the node's ConfigMap reads `Ready` (the last write of a download: label, download, config parse, "
               "spec back-fill, entry), seen through a watch on the ConfigMap; one model at a time, 1 s apart:")
    out.append("")
    out.append("| cluster | samples | median (s) | min (s) | max (s) |")
    out.append("|---|---|---|---|---|")
    for r in rs:
        out.append(f"| {r.models:,} BaseModels | {len(r.latencies)} | {statistics.median(r.latencies):.3f} | "
                   f"{min(r.latencies):.3f} | {max(r.latencies):.3f} |".replace(",", " "))
    return "\n".join(out)


def example_size() -> int:
    from modelagent import example_model_path

    return sum(p.stat().st_size for p in example_model_path().iterdir() if p.is_file())


# ------------------------------------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=10_000, help="BaseModels in the cluster (default 10000)")
    parser.add_argument("--selected-percent", type=float, default=1.0,
                        help="share placed on this node, in percent (default 1)")
    parser.add_argument("--namespaces", type=int, default=50, help="namespaces the models are spread over")
    parser.add_argument("--other-nodes", type=int, default=200, help="nodes the other models select")
    parser.add_argument("--quiet-seconds", type=float, default=30.0, help="steady-state window (default 30)")
    parser.add_argument("--samples", type=int, default=7, help="create-to-Ready samples (default 7)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the 0-BaseModel baseline")
    parser.add_argument("--timeout", type=float, default=600.0, help="limit of each waiting phase, seconds")
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, models)")
    args = parser.parse_args()
    if args.models < 0 or args.namespaces < 1 or args.other_nodes < 2 or args.samples < 1:
        parser.error("--models must be >= 0, --namespaces >= 1, --other-nodes >= 2, --samples >= 1")
    if not 0 < args.selected_percent <= 100:
        parser.error("--selected-percent must be in (0, 100]")
    if args.quiet_seconds <= 0:
        parser.error("--quiet-seconds must be positive")

    from modelagent import example_model_path

    workdir = Path(tempfile.mkdtemp(prefix="modelagent-bench-agent-", dir=args.workdir))
    log = sys.stderr
    load_start = loadavg()
    t_begin = time.monotonic()
    hub: Child | None = None
    try:
        url_file = workdir / "hub.url"
        hub = Child("fake hub", [
            sys.executable, "-m", "modelagent.testing.hf_hub", "--port", "0", "--lfs-threshold", "65536",
            "--repo", f"{REPO}={example_model_path()}", "--url-file", str(url_file)],
            workdir / "hf_hub.log", env=python_env())
        wait_for(url_file.is_file, "the fake hub", 60, hub, 0.05)
        hub_url = url_file.read_text().strip()

        results = []
        for n in ([] if args.no_baseline else [0]) + [args.models]:
            print(f"scenario: {n} BaseModels", file=log, flush=True)
            results.append(run_scenario(n, args, hub_url, workdir, log))
        print(report(results, args, load_start, loadavg(), time.monotonic() - t_begin))
        return 0
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        args.keep = True  # the logs named in the message
        return 1
    finally:
        if hub is not None:
            hub.stop()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
