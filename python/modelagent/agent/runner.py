"""Wiring of ``model-agent run``: model source, status sink, Gopher, metrics/health server and signals.

Kubernetes mode: :class:`~modelagent.agent.scout.Scout` over the cluster, a ``KubernetesStatusSink``
(node labels + the node's ConfigMap) and ``ModelConfigParser`` spec back-fill. Standalone mode
(``--standalone FILE``): :class:`~modelagent.agent.file_source.FileModelSource` and a ``FileStatusSink``
writing ``<models root>/.modelagent/status.json``. Both run the same Gopher and serve the same endpoints.

Shutdown (SIGTERM/SIGINT): stop taking tasks, cancel running transfers (partial files stay resumable;
the models keep their ``Updating`` status and resume at the next start), stop the server, exit 0 —
within about 8 s. A second signal exits at once with status 1.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from modelagent._core import DownloadOptions
from modelagent.agent.config import Settings, describe
from modelagent.agent.gopher import Gopher
from modelagent.agent.model_ref import ModelRef
from modelagent.agent.shape_filter import load_instance_type_map

_log = logging.getLogger("modelagent.agent.runner")

DEMO_REPO = "modelagent/tiny-llama"
"""Repository id under which ``--demo-hub`` serves the bundled example model."""

SHUTDOWN_BUDGET = 8.0
"""Seconds the workers get to end after SIGTERM (Kubernetes' default grace period is 30 s; we promise 10)."""


class AgentRunner:
    """One agent process: build the components from :class:`Settings`, run until stopped.

    ``stdout`` receives the status table of ``--once``.
    """

    def __init__(self, settings: Settings, *, stdout: TextIO | None = None) -> None:
        self.settings = settings
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stop_event = threading.Event()
        self.models_root = Path(os.path.abspath(settings.models_root_dir))
        self.metrics: Any = None
        self.sink: Any = None
        self.gopher: Gopher | None = None
        self.source: Any = None
        self.server: Any = None
        self._api_client: Any = None
        self._demo_hub: Any = None
        self._signals = 0

    # ------------------------------------------------------------------------------------------------

    def _build(self) -> None:
        from modelagent.health import LoopHeartbeat, ModelAgentHealthCheck
        from modelagent.metrics import Metrics
        from modelagent.server import AgentServer

        settings = self.settings
        try:
            self.models_root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            _log.error("cannot create the models root %s: %s", self.models_root, error.strerror or error)
        self.metrics = Metrics()
        # --concurrency caps the connections of one model (the download's ``connections``), and
        # --multipart-concurrency the ranged parts per file, for every source.
        options = DownloadOptions(connections_per_file=settings.multipart_concurrency)
        instance_types = load_instance_type_map(settings.instance_type_map, origin="--instance-type-map")
        if instance_types.extension:
            _log.info("TensorRT-LLM shapes: %d instance types from %s added to the defaults",
                      len(instance_types.extension), instance_types.origin)
        read_secret = None
        parse_config = None
        endpoint = None
        if settings.demo_hub:
            endpoint = self._start_demo_hub()
        if settings.is_standalone:
            from modelagent.agent.file_sink import FileStatusSink

            self.sink = FileStatusSink(self.models_root)
        else:
            read_secret, parse_config = self._build_kubernetes()
        self.gopher = Gopher(
            self.sink,
            models_root=self.models_root,
            workers=settings.num_download_worker,
            metrics=self.metrics,
            read_secret=read_secret,
            cluster_namespace=settings.namespace,
            parse_config=parse_config,
            download_options=options,
            connections=settings.concurrency,
            endpoint=endpoint,
            progress_interval=settings.progress_interval,
            download_retry=settings.download_retry,
            instance_types=instance_types,
            node_labels=self._node_labels,
        )
        if settings.is_standalone:
            from modelagent.agent.file_source import FileModelSource

            assert settings.standalone is not None
            self.source = FileModelSource(settings.standalone, settings.node_name, self.gopher.submit)
        else:
            from modelagent.agent.scout import Scout

            self.source = Scout(
                self._api_client, settings.node_name, self.gopher.submit, namespace=settings.namespace, sink=self.sink
            )
        self.heartbeat = LoopHeartbeat(max(60.0, 3 * min(settings.reconcile_interval, 60.0)))
        self.server = AgentServer(
            self.metrics,
            ModelAgentHealthCheck(str(self.models_root)),
            liveness=self.heartbeat,
            readiness=lambda: True if self.source.is_ready() else "models not loaded yet",
            port=settings.port,
        )

    def _node_labels(self) -> dict[str, str] | None:
        """This node's labels as the model source knows them now (the Scout's watched Node; standalone: the
        synthetic node's labels, including those of a ``kind: Node`` document in the models file)."""
        source = self.source
        if source is None:
            return None
        if self.settings.is_standalone:
            from modelagent.agent.file_source import ModelFileError, load_models_file

            assert self.settings.standalone is not None
            try:
                _, labels = load_models_file(self.settings.standalone)
            except ModelFileError:
                labels = {}  # the source reports the file's problem; the synthetic node keeps its own labels
            node = source.node(labels)
        else:
            node = source.node()
        labels = ((node or {}).get("metadata") or {}).get("labels")
        return dict(labels) if isinstance(labels, dict) else None

    def _start_demo_hub(self) -> str:
        from modelagent.metadata import example_model_path
        from modelagent.testing.hf_hub import FakeHub

        folder = example_model_path()
        files = {p.name: p for p in sorted(folder.iterdir()) if p.is_file()}
        self._demo_hub = FakeHub(cdn_host="127.0.0.1").start()
        self._demo_hub.add_repo(DEMO_REPO, files)
        _log.info("demo hub serving hf://%s from %s at %s", DEMO_REPO, folder, self._demo_hub.url)
        return str(self._demo_hub.url)

    def _build_kubernetes(self) -> tuple[Any, Any]:
        from kubernetes import client, config

        from modelagent.agent.config_parser import ModelConfigParser
        from modelagent.agent.kubernetes_sink import KubernetesStatusSink
        from modelagent.agent.secrets import kubernetes_secret_reader

        settings = self.settings
        configuration = client.Configuration()
        if settings.kubeconfig:
            if not os.path.isfile(settings.kubeconfig):
                raise FileNotFoundError(f"kubeconfig {settings.kubeconfig} does not exist")
            try:
                config.load_kube_config(config_file=settings.kubeconfig, client_configuration=configuration)
            except config.ConfigException as error:
                raise RuntimeError(f"cannot use kubeconfig {settings.kubeconfig}: {error}") from error
        else:
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                try:
                    config.load_kube_config(client_configuration=configuration)
                except config.ConfigException as error:
                    raise RuntimeError(
                        f"no Kubernetes configuration: not in a cluster and no usable kubeconfig ({error}); "
                        "pass --kubeconfig or use --standalone"
                    ) from error
        self._api_client = client.ApiClient(configuration)
        core = client.CoreV1Api(self._api_client)
        custom = client.CustomObjectsApi(self._api_client)
        self.sink = KubernetesStatusSink(
            core, settings.node_name, settings.namespace, label_retries=settings.node_label_retry
        )
        parser = ModelConfigParser(custom)

        def parse_config(ref: ModelRef, obj: Any, folder: Path) -> Any:
            return parser.parse(ref, obj, folder)

        return kubernetes_secret_reader(core), parse_config

    # ------------------------------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._signals += 1
        if self._signals > 1:
            os._exit(1)
        _log.info("received %s; shutting down", signal.Signals(signum).name)
        self.stop_event.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the agent gracefully (main thread only)."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def run(self) -> int:
        """Run until :attr:`stop_event` is set (or, with ``--once``, until every model is final).

        Returns the process exit status.
        """
        settings = self.settings
        mode = "standalone" if settings.is_standalone else "kubernetes"
        _log.info("model agent starting (%s mode)", mode, extra={"settings": describe(settings)})
        try:
            self._build()
            self.server.start()
        except Exception as error:  # noqa: BLE001 - reported as a start-up error
            _log.error("cannot start: %s", " ".join(str(error).split()) or type(error).__name__)
            self._shutdown()
            return 2
        assert self.gopher is not None
        self.gopher.start()
        try:
            self.source.start()
        except Exception as error:  # noqa: BLE001 - reported, then a clean shutdown
            _log.error("cannot start the model source: %s", error)
            self._shutdown()
            return 2
        status = 0
        if settings.once:
            status = self._run_once()
        else:
            self._loop()
        self._shutdown()
        return status

    def _loop(self) -> None:
        interval = self.settings.reconcile_interval
        next_heal = time.monotonic() + min(interval, 30.0)
        while not self.stop_event.wait(1.0):
            self.heartbeat.beat()
            if time.monotonic() >= next_heal:
                next_heal = time.monotonic() + interval
                try:
                    self.sink.heal(self.source.live_keys())
                except Exception as error:  # noqa: BLE001 - the next pass retries
                    _log.error("self-healing pass failed: %s", error)

    def _run_once(self) -> int:
        assert self.gopher is not None
        while not self.stop_event.is_set():
            self.heartbeat.beat()
            if self.gopher.wait_idle(timeout=0.5):
                break
        if self.stop_event.is_set():
            return 1
        entries = self.sink.known()
        live = self.source.live_keys() or set()
        print_status_table({k: v for k, v in entries.items() if k in live}, self.stdout)
        failed = [k for k in live if k in entries and entries[k].status != "Ready"]
        return 1 if failed else 0

    def _shutdown(self) -> None:
        deadline = time.monotonic() + SHUTDOWN_BUDGET
        if self.source is not None:
            try:
                self.source.stop()
            except Exception as error:  # noqa: BLE001
                _log.error("stopping the model source failed: %s", error)
        if self.gopher is not None and self.gopher.started and not self.gopher.stop(timeout=max(0.5, deadline - time.monotonic())):
            _log.warning("some downloads did not stop in time; exiting anyway (partial files stay resumable)")
        if self.server is not None:
            try:
                self.server.stop()
            except Exception as error:  # noqa: BLE001
                _log.error("stopping the HTTP server failed: %s", error)
        if self._api_client is not None:
            self._api_client.close()
        if self._demo_hub is not None:
            self._demo_hub.stop()
        _log.info("model agent stopped")


def print_status_table(entries: dict[str, Any], stream: TextIO) -> None:
    """Print ``KEY  STATUS  REASON`` for ConfigMap entries (``ModelEntry`` values)."""
    rows = [("MODEL", "STATUS", "DETAIL")]
    for key in sorted(entries):
        entry = entries[key]
        data = entry.to_dict()
        detail = data.get("reason") or ""
        config = data.get("config") or {}
        if not detail and config:
            detail = " ".join(
                str(v) for v in (config.get("modelArchitecture"), config.get("modelParameterSize")) if v
            )
        rows.append((key, str(data.get("status", "")), str(detail)))
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    for key, status, detail in rows:
        stream.write(f"{key:<{widths[0]}}  {status:<{widths[1]}}  {detail}".rstrip() + "\n")
    stream.flush()


__all__ = ["DEMO_REPO", "SHUTDOWN_BUDGET", "AgentRunner", "print_status_table"]
