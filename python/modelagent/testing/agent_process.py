"""A real ``model-agent run`` process for integration tests.

:class:`AgentProcess` starts ``python -m modelagent run`` as a subprocess, either against a kubeconfig
(the fake API server of :mod:`modelagent.testing.kube_api` or a real cluster) or in standalone mode
(``--standalone MODELS.yaml``), and offers what a test needs to drive it: the URL of its HTTP endpoints,
readiness, the status the agent reports for a model (read from the node's ConfigMap through the official
``kubernetes`` client, or from the standalone status file), its captured log lines (JSON parsed), its
``/metrics`` text, and a bounded graceful stop::

    with AgentProcess(models_root=tmp_path / "models", kubeconfig=kubeconfig, node_name="node-1",
                      hf_endpoint=hub.url) as agent:
        agent.wait_ready()
        kube.create("basemodels", body, namespace="team")
        agent.wait_for_status("team.basemodel.m", "Ready")
        assert agent.stop() == 0

Failed waits raise :class:`AgentProcessError` (an ``AssertionError``) whose message ends with the tail of
the agent's log, so a failing test shows what the agent was doing.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

POLL_INTERVAL = 0.05
"""Seconds between two polls of a waited-for condition."""

LOG_TAIL_LINES = 40
"""Log lines quoted in the message of a failed wait."""

_SERVER_URL = re.compile(r"/readyz on (http://[^\s\"]+)")


class AgentProcessError(AssertionError):
    """A wait on the agent failed (timed out, or the agent exited); the message ends with its log tail."""


class AgentProcess:
    """One ``model-agent run`` subprocess.

    Args:
        models_root: ``--models-root-dir`` (created by the agent if missing).
        kubeconfig: kubeconfig file of the API server to use (Kubernetes mode).
        standalone: models YAML file (standalone mode); exactly one of ``kubeconfig`` and ``standalone``.
        node_name: the agent's node, passed as ``NODE_NAME`` (required in Kubernetes mode; in standalone
            mode the agent defaults to the host name).
        namespace: ``--namespace``, where the node's ConfigMap lives (Kubernetes mode).
        port: ``--port``; 0 (default) lets the agent bind a free port, read back from its start-up log.
        hf_endpoint: ``HF_ENDPOINT`` for the agent (e.g. a :class:`~modelagent.testing.hf_hub.FakeHub`'s
            ``url``); None keeps the caller's environment value, if any.
        args: more ``model-agent run`` flags (e.g. ``["--progress-interval", "0.2"]``).
        env: extra environment variables (applied last).
        log_path: also write every line the agent prints to this file.
        python: the interpreter that runs the agent.

    The agent inherits the caller's environment without ``MODEL_AGENT_*`` and ``NODE_NAME`` (so a
    developer's settings cannot leak in), with ``PYTHONPATH`` set to this interpreter's ``sys.path`` (the
    same ``modelagent`` is imported) and ``MODEL_AGENT_LOG_FORMAT=json`` unless ``args`` or ``env`` say
    otherwise. Its stdout and stderr are captured together, line by line.
    """

    def __init__(
        self,
        *,
        models_root: str | os.PathLike[str],
        kubeconfig: str | os.PathLike[str] | None = None,
        standalone: str | os.PathLike[str] | None = None,
        node_name: str | None = None,
        namespace: str = "ome",
        port: int = 0,
        hf_endpoint: str | None = None,
        args: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        python: str = sys.executable,
    ) -> None:
        if (kubeconfig is None) == (standalone is None):
            raise ValueError("AgentProcess needs exactly one of kubeconfig= (Kubernetes mode) and standalone=")
        if kubeconfig is not None and not node_name:
            raise ValueError("AgentProcess in Kubernetes mode needs node_name= (the agent's NODE_NAME)")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {port}")
        self.models_root = Path(models_root)
        self.kubeconfig = None if kubeconfig is None else Path(kubeconfig)
        self.standalone = None if standalone is None else Path(standalone)
        self.node_name = node_name
        self.namespace = namespace
        self.hf_endpoint = hf_endpoint
        self.log_path = None if log_path is None else Path(log_path)
        self.argv = [python, "-m", "modelagent", "run", "--models-root-dir", str(self.models_root),
                     "--port", str(port), "--namespace", namespace]
        if self.kubeconfig is not None:
            self.argv += ["--kubeconfig", str(self.kubeconfig)]
        else:
            self.argv += ["--standalone", str(self.standalone)]
        self.argv += list(args)
        self.env = self._environment(env)
        self._requested_port = port
        self._url: str | None = None if port == 0 else f"http://127.0.0.1:{port}"
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._lines: list[str] = []
        self._lines_lock = threading.Lock()
        self._log_file: IO[str] | None = None
        self._api_client: Any = None
        self.stop_seconds: float | None = None
        """How long the last :meth:`stop` took (None before it ran)."""

    def _environment(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_AGENT_") and k != "NODE_NAME"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        env["PYTHONUNBUFFERED"] = "1"
        env["MODEL_AGENT_LOG_FORMAT"] = "json"
        if self.node_name:
            env["NODE_NAME"] = self.node_name
        if self.hf_endpoint is not None:
            env["HF_ENDPOINT"] = self.hf_endpoint
        env.update(extra or {})
        return env

    # ------------------------------------------------------------------------------------------ lifecycle

    def start(self) -> AgentProcess:
        """Start the subprocess (returns at once; see :meth:`wait_ready`). Returns self."""
        if self._proc is not None:
            raise RuntimeError("this AgentProcess was already started")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed by the reader
        self._proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env,
            text=True, encoding="utf-8", errors="replace", bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, name=f"model-agent-log-{self._proc.pid}", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            for line in self._proc.stdout:
                line = line.rstrip("\n")
                with self._lines_lock:
                    self._lines.append(line)
                    if self._url is None:
                        match = _SERVER_URL.search(line)
                        if match:
                            self._url = match.group(1)
                if self._log_file is not None:
                    self._log_file.write(line + "\n")
                    self._log_file.flush()
        finally:
            if self._log_file is not None:
                self._log_file.close()

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait up to ``timeout`` seconds, SIGKILL if still running; returns the exit status.

        Calling it again (or on an agent that already exited) just returns the status. A negative
        status is the signal that ended the process (``-9`` after a kill).
        """
        proc = self._require_started()
        if proc.poll() is None:
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            self.stop_seconds = time.monotonic() - started
        if self._reader is not None:
            self._reader.join(5)
        if self._api_client is not None:
            self._api_client.close()
            self._api_client = None
        assert proc.returncode is not None
        return proc.returncode

    def __enter__(self) -> AgentProcess:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _require_started(self) -> subprocess.Popen[str]:
        if self._proc is None:
            raise RuntimeError("the agent was not started (call start() or use the context manager)")
        return self._proc

    @property
    def pid(self) -> int:
        """The agent's process id."""
        return self._require_started().pid

    @property
    def returncode(self) -> int | None:
        """The exit status, or None while the agent runs."""
        return self._require_started().poll()

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    # ------------------------------------------------------------------------------------------ logs

    @property
    def log_lines(self) -> list[str]:
        """Every line the agent printed so far (stdout and stderr), without newlines."""
        with self._lines_lock:
            return list(self._lines)

    @property
    def logs(self) -> list[dict[str, Any]]:
        """The JSON log records printed so far (lines that are not JSON objects are left out)."""
        records = []
        for line in self.log_lines:
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` log lines as one text."""
        return "\n".join(self.log_lines[-lines:])

    def wait_for_log(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0,
                     what: str = "a matching log record") -> dict[str, Any]:
        """Wait until a JSON log record satisfies ``predicate``; returns that record."""
        def find() -> dict[str, Any] | None:
            return next((record for record in self.logs if predicate(record)), None)

        return self._wait(find, what, timeout)

    # ------------------------------------------------------------------------------------------ HTTP

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` of ``/metrics``, ``/healthz``, ``/livez``, ``/readyz``.

        With ``port=0`` this waits (up to 30 s) for the agent to log where it listens.
        """
        if self._url is None:
            self._require_started()
            self._wait(lambda: self._url, "the agent's server address in its log", 30.0)
        assert self._url is not None
        return self._url

    @property
    def port(self) -> int:
        """The port the agent's HTTP server listens on (see :attr:`url`)."""
        return int(self.url.rsplit(":", 1)[1])

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, str]:
        """GET ``path`` on the agent's server; returns (HTTP status, body text), also for 4xx/5xx."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:  # noqa: S310 - loopback
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode("utf-8", "replace")

    def metrics(self) -> str:
        """The ``/metrics`` text (Prometheus exposition format)."""
        status, body = self.get("/metrics")
        if status != 200:
            raise AgentProcessError(f"GET {self.url}/metrics answered {status}: {body[:200]}")
        return body

    def wait_ready(self, timeout: float = 60.0) -> AgentProcess:
        """Wait until ``/readyz`` answers 200 (the model source has loaded). Returns self."""
        def ready() -> bool:
            try:
                return self.get("/readyz", timeout=5.0)[0] == 200
            except (OSError, http.client.HTTPException):  # not listening yet, or exiting mid-answer
                return False

        self._wait(lambda: self._url is not None and ready(), f"{self.url if self._url else 'the agent'}/readyz "
                   "to answer 200", timeout)
        return self

    # ------------------------------------------------------------------------------------------ status

    def entries(self) -> dict[str, dict[str, Any]]:
        """The status entries the agent reports now: ConfigMap key -> entry object.

        Kubernetes mode reads the ConfigMap ``<namespace>/<node_name>`` through the ``kubernetes`` client
        (an absent ConfigMap gives ``{}``); standalone mode reads ``<models_root>/.modelagent/status.json``.
        """
        if self.standalone is not None:
            path = self.models_root / ".modelagent" / "status.json"
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                return {}
        else:
            data = self._read_configmap_data()
        return {key: json.loads(value) for key, value in (data or {}).items()}

    def node_labels(self) -> dict[str, str]:
        """The Node's labels (Kubernetes mode), e.g. ``models.ome.io/<ns>.basemodel.<name>: Ready``."""
        if self.kubeconfig is None:
            raise RuntimeError("node_labels() needs Kubernetes mode (standalone labels live in memory only)")
        from kubernetes import client

        node = client.CoreV1Api(self._kube_client()).read_node(self.node_name)
        return dict(node.metadata.labels or {})

    def wait_for_status(self, key: str, status: str | None, timeout: float = 60.0) -> dict[str, Any] | None:
        """Wait until the entry ``key`` (a ConfigMap key such as ``team.basemodel.m``) has ``status``.

        ``status=None`` waits until the entry is gone. Returns the entry (None when waiting for removal).
        A status read that fails (e.g. an API error the test scripted) is retried until the deadline.
        """
        last: dict[str, Any] = {}

        def check() -> Any:
            try:
                entry = self.entries().get(key)
            except Exception as error:  # noqa: BLE001 - retried; reported on timeout
                last["error"] = f"{type(error).__name__}: {error}"
                return None
            last["entry"] = entry
            if status is None:
                return entry is None
            return entry if entry is not None and entry.get("status") == status else None

        def describe() -> str:
            seen = f"last seen {json.dumps(last['entry'])}" if "entry" in last else "never read"
            error = f"; last read error: {last['error']}" if "error" in last else ""
            return seen + error

        wanted = "to be removed" if status is None else f"status {status}"
        result = self._wait(check, f"entry {key} {wanted}", timeout, detail=describe)
        return None if status is None else result

    def _read_configmap_data(self) -> dict[str, str]:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            configmap = client.CoreV1Api(self._kube_client()).read_namespaced_config_map(
                self.node_name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return {}
            raise
        return dict(configmap.data or {})

    def _kube_client(self) -> Any:
        if self._api_client is None:
            from kubernetes import client, config

            configuration = client.Configuration()
            config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=configuration)
            self._api_client = client.ApiClient(configuration)
        return self._api_client

    # ------------------------------------------------------------------------------------------ waiting

    def _wait(self, predicate: Callable[[], Any], what: str, timeout: float,
              detail: Callable[[], str] | None = None) -> Any:
        proc = self._require_started()
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            exited = proc.poll()
            if exited is not None:
                self._fail(f"the agent exited with status {exited} while waiting for {what}", detail)
            if time.monotonic() >= deadline:
                self._fail(f"timed out after {timeout:g} s waiting for {what}", detail)
            time.sleep(POLL_INTERVAL)

    def _fail(self, message: str, detail: Callable[[], str] | None) -> None:
        if self._reader is not None and self._proc is not None and self._proc.poll() is not None:
            self._reader.join(2)  # the last lines of an exited agent
        extra = f" ({detail()})" if detail is not None else ""
        raise AgentProcessError(f"{message}{extra}; agent log (last {LOG_TAIL_LINES} lines):\n{self.log_tail()}")

    def __repr__(self) -> str:
        mode = f"kubeconfig={self.kubeconfig}" if self.kubeconfig is not None else f"standalone={self.standalone}"
        state = "not started" if self._proc is None else (
            f"pid {self._proc.pid}" if self._proc.poll() is None else f"exited {self._proc.returncode}")
        return f"<AgentProcess {mode} node={self.node_name} {state}>"


__all__ = ["AgentProcess", "AgentProcessError"]
