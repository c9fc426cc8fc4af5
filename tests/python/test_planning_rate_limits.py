"""Rate limits met while planning (Hugging Face revision/tree API, OCI listing, S3 listing) are counted in
the download's progress counters, and the agent turns each of them into exactly one rate-limit metric."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path
from typing import Any

import pytest

import modelagent
from modelagent import _core
from modelagent.agent.file_sink import FileStatusSink
from modelagent.agent.gopher import Gopher
from modelagent.agent.model_ref import ModelRef
from modelagent.agent.tasks import GopherTask, TaskType
from modelagent.metrics import Metrics
from modelagent.progress import ProgressSnapshot
from modelagent.sources.base import SourceRequest
from modelagent.sources.s3 import S3Source
from modelagent.testing.hf_hub import FakeHub
from modelagent.testing.oci_object_storage import FakeObjectStorage

from metrics_text import metric

pytestmark = pytest.mark.timeout(120)

BOUND = 60.0  # upper bound for a gopher to finish; the tests never depend on how fast


def _fast_options() -> modelagent.DownloadOptions:
    return modelagent.DownloadOptions(retry_base_seconds=0.01, retry_cap_seconds=0.05, connect_timeout_seconds=5)


def _publish(hub: FakeHub) -> None:
    hub.add_repo("org/model", files={"config.json": b'{"model_type": "llama"}', "model.safetensors": b"w" * 4096})


# ---- modelagent.download -------------------------------------------------------------------------------


def test_hub_api_429s_while_planning_show_in_the_download_counters(fake_hub: FakeHub, tmp_path: Path) -> None:
    _publish(fake_hub)
    fake_hub.rate_limit(1, retry_after=1, path=r"/revision/")
    fake_hub.rate_limit(3, retry_after=0, path=r"/tree/")
    readings: list[ProgressSnapshot] = []
    result = modelagent.download("hf://org/model", tmp_path / "m", progress=readings.append, options=_fast_options())
    assert sorted(result.downloaded) == ["config.json", "model.safetensors"]
    assert len(fake_hub.find_requests(status=429)) == 4
    final = readings[-1]
    assert final.rate_limited == 4
    assert final.retries == 4
    assert final.rate_limit_wait_seconds == 1.0  # the revision API asked for 1 s, the tree API for 0
    assert final.bytes_fetched > 0  # the engine added to the same counters


def test_planning_that_gives_up_on_429s_still_hands_over_its_counters(fake_hub: FakeHub, tmp_path: Path) -> None:
    _publish(fake_hub)
    fake_hub.rate_limit(50, retry_after=0, path=r"/tree/")
    readings: list[ProgressSnapshot] = []
    with pytest.raises(modelagent.RateLimitedError):
        modelagent.download("hf://org/model", tmp_path / "m", progress=readings.append, options=_fast_options())
    answered = len(fake_hub.find_requests(status=429))
    assert answered >= 2
    assert len(readings) == 1  # one final reading; the engine never started
    # Every 429 the client retried; the last one became the RateLimitedError.
    assert readings[0].rate_limited == answered - 1
    assert readings[0].retries == answered - 1
    assert not readings[0].started
    assert not (tmp_path / "m").exists()


def test_a_planning_failure_without_retries_reports_nothing(fake_hub: FakeHub, tmp_path: Path) -> None:
    readings: list[ProgressSnapshot] = []
    with pytest.raises(modelagent.RepositoryNotFoundError):
        modelagent.download("hf://org/absent", tmp_path / "m", progress=readings.append)
    assert readings == []


def test_oci_listing_429s_show_in_the_download_counters(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("OCI_OBJECT_STORAGE_ENDPOINT", "OCI_CONFIG_FILE", "OCI_CONFIG_PATH", "OCI_CLI_PROFILE", "PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with FakeObjectStorage(namespace="fakens") as store:
        creds = store.add_user(tmp_path / "oci-config")
        store.put_object("bkt", "m/a.bin", b"a" * 5000)
        store.rate_limit(count=2, retry_after=0, path=r"/b/bkt/o$")  # the listing, not the object
        readings: list[ProgressSnapshot] = []
        result = modelagent.download(
            "oci://bkt/m", tmp_path / "d", progress=readings.append, options=_fast_options(),
            parameters={"auth": "UserPrincipal", "config_file": str(creds.config_file), "endpoint": store.url},
        )
        assert len(store.find_requests(status=429)) == 2
        assert not store.internal_errors
    assert result.downloaded == ["a.bin"]
    assert readings[-1].rate_limited == 2
    assert readings[-1].retries == 2


class _ThrottledListing(http.server.ThreadingHTTPServer):
    """An S3-compatible store answering the first ListObjectsV2 with 429, then one small object."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ThrottledListingHandler)
        self.lock = threading.Lock()
        self.statuses: list[tuple[str, int]] = []


class _ThrottledListingHandler(http.server.BaseHTTPRequestHandler):
    server: _ThrottledListing

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        with self.server.lock:
            self.server.statuses.append((self.command, status))
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        with self.server.lock:
            first = not self.server.statuses
        if first:
            self._answer(429, b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
                         {"Retry-After": "0"})
            return
        self._answer(200, b"<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>m/w.bin</Key>"
                          b"<Size>5</Size><ETag>&quot;" + b"b" * 32 + b"&quot;</ETag></Contents></ListBucketResult>")

    def do_HEAD(self) -> None:
        self._answer(200, headers={"ETag": '"' + "b" * 32 + '"'})


def test_s3_listing_429s_are_counted_in_the_request_progress() -> None:
    server = _ThrottledListing()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    counters = _core.DownloadProgress()
    try:
        request = SourceRequest(
            uri="s3://models/m",
            parameters={"endpoint": f"http://127.0.0.1:{server.server_port}"},
            credentials={"aws_access_key_id": "AKIDPLANNING", "aws_secret_access_key": "planning-secret"},
            options=modelagent.DownloadOptions(max_attempts=3, retry_base_seconds=0.01, retry_cap_seconds=0.05),
            progress=counters,
        )
        plan = S3Source().plan(request)
    finally:
        server.shutdown()
        server.server_close()
    assert [e["path"] for e in plan.files] == ["w.bin"]
    assert server.statuses[:2] == [("GET", 429), ("GET", 200)]
    assert counters.rate_limited == 1
    assert counters.retries == 1
    assert counters.rate_limit_wait_seconds == 0.0
    assert counters.bytes_fetched == 0


# ---- the agent -------------------------------------------------------------------------------------------


def _model(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "ome.io/v1beta1",
        "kind": "BaseModel",
        "metadata": {"name": name, "namespace": "team", "uid": f"uid-{name}", "labels": {}},
        "spec": {"storage": {"storageUri": "hf://org/model"}},
    }


def _run_gopher(hub: FakeHub, root: Path, metrics: Metrics, download_retry: int) -> str | None:
    root.mkdir()
    sink = FileStatusSink(root)
    gopher = Gopher(sink, models_root=root, metrics=metrics, endpoint=hub.url, progress_interval=0.05,
                    download_options=_fast_options(), download_retry=download_retry).start()
    try:
        obj = _model("m")
        gopher.submit(GopherTask.for_object(TaskType.DOWNLOAD, obj))
        assert gopher.wait_idle(BOUND)
        entry = sink.known().get(ModelRef.from_object(obj).configmap_key)
    finally:
        gopher.stop(timeout=10)
    return None if entry is None else entry.status


WHO = {"model_type": "BaseModel", "namespace": "team", "name": "m"}


def test_agent_counts_planning_429s_once(fake_hub: FakeHub, tmp_path: Path) -> None:
    _publish(fake_hub)
    fake_hub.rate_limit(3, retry_after=0, path=r"/tree/")
    metrics = Metrics()
    assert _run_gopher(fake_hub, tmp_path / "models", metrics, download_retry=1) == "Ready"
    text = metrics.exposition()
    assert len(fake_hub.find_requests(status=429)) == 3
    assert metric(text, "model_agent_rate_limit_total", **WHO) == 3
    assert metric(text, "model_agent_rate_limit_wait_seconds_count", **WHO) == 3


def test_agent_counts_every_429_of_a_planning_that_gives_up_once(fake_hub: FakeHub, tmp_path: Path) -> None:
    _publish(fake_hub)
    fake_hub.rate_limit(1000, retry_after=0, path=r"/tree/")
    metrics = Metrics()
    assert _run_gopher(fake_hub, tmp_path / "models", metrics, download_retry=2) == "Failed"
    text = metrics.exposition()
    answered = len(fake_hub.find_requests(status=429))
    trees = len(fake_hub.find_requests(path=r"/tree/"))
    assert answered == trees >= 4  # two download attempts, each retrying the tree API
    # Retried 429s come from the counters; the last 429 of each attempt from its RateLimitedError.
    assert metric(text, "model_agent_rate_limit_total", **WHO) == answered
    assert metric(text, "model_agent_rate_limit_wait_seconds_count", **WHO) == answered
    assert metric(text, "model_agent_download_failures_by_reason_total", reason="rate_limited") == 1
