"""AgentServer over real HTTP on 127.0.0.1: /metrics, /healthz, /livez, /readyz, errors, lifecycle."""

from __future__ import annotations

import gzip
import http.client
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_metrics import parse_exposition

from modelagent.health import CallbackCheck, LoopHeartbeat, ModelAgentHealthCheck
from modelagent.metrics import Metrics
from modelagent.server import AgentServer


class Reply:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = {k.lower(): v for k, v in response.getheaders()}
        self.raw = response.read()

    @property
    def text(self) -> str:
        return self.raw.decode()


def request(server: AgentServer, path: str, method: str = "GET", headers: dict[str, str] | None = None) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        return Reply(conn.getresponse())
    finally:
        conn.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def models_root(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    return root


@pytest.fixture
def make_server() -> Iterator[Callable[..., AgentServer]]:
    started: list[AgentServer] = []

    def make(metrics: object = None, health: object = None, **kwargs: object) -> AgentServer:
        server = AgentServer(metrics or Metrics("test"), health, host="127.0.0.1", port=0, **kwargs)  # type: ignore[arg-type]
        started.append(server.start())
        return server

    yield make
    for server in started:
        server.stop()


# ---- /metrics ----


def test_metrics_endpoint_serves_the_exposition(make_server, models_root: Path) -> None:  # noqa: ANN001
    metrics = Metrics("1.0.0")
    metrics.download_succeeded("BaseModel", "team-a", "llama", 90.0)
    server = make_server(metrics, ModelAgentHealthCheck(models_root))
    reply = request(server, "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert int(reply.headers["content-length"]) == len(reply.raw)
    e = parse_exposition(reply.text)
    assert e.value("model_agent_downloads_success_total", model_type="BaseModel", namespace="team-a", name="llama") == 1
    assert e.value("model_agent_build_info", version="1.0.0") == 1
    metrics.download_succeeded("BaseModel", "team-a", "llama", 90.0)  # every scrape is current
    e = parse_exposition(request(server, "/metrics?ignored=1").text)
    assert e.value("model_agent_downloads_success_total", name="llama") == 2


def test_metrics_are_gzipped_when_accepted(make_server, models_root: Path) -> None:  # noqa: ANN001
    server = make_server(Metrics("t"), ModelAgentHealthCheck(models_root))
    reply = request(server, "/metrics", headers={"Accept-Encoding": "br, gzip;q=0.8"})
    assert reply.status == 200
    assert reply.headers["content-encoding"] == "gzip"
    assert reply.headers["vary"] == "Accept-Encoding"
    assert parse_exposition(gzip.decompress(reply.raw).decode()).value("model_agent_build_info", version="t") == 1
    plain = request(server, "/metrics", headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "content-encoding" not in plain.headers
    parse_exposition(plain.text)


def test_metrics_source_failure_is_a_500_not_a_dropped_connection(make_server, models_root: Path) -> None:  # noqa: ANN001
    class Broken:
        def exposition(self) -> str:
            raise RuntimeError("registry on fire")

    server = make_server(Broken(), ModelAgentHealthCheck(models_root))
    reply = request(server, "/metrics")
    assert reply.status == 500
    assert "RuntimeError: registry on fire" in reply.text
    assert request(server, "/healthz").status == 200


# ---- /healthz ----


def test_healthz_ok_for_a_writable_directory(make_server, models_root: Path) -> None:  # noqa: ANN001
    server = make_server(health=ModelAgentHealthCheck(models_root))
    reply = request(server, "/healthz")
    assert (reply.status, reply.text) == (200, "ok")
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    verbose = request(server, "/healthz?verbose")
    assert verbose.status == 200
    assert verbose.text == "[+]model-agent-health ok\nhealthz check passed\n"
    single = request(server, "/healthz/model-agent-health")
    assert (single.status, single.text) == (200, "ok")


def test_healthz_missing_directory(make_server, tmp_path: Path) -> None:  # noqa: ANN001
    missing = tmp_path / "absent"
    server = make_server(health=ModelAgentHealthCheck(missing))
    reply = request(server, "/healthz")
    assert reply.status == 500
    assert reply.text == (
        f"[-]model-agent-health failed: stat {missing}: no such file or directory\nhealthz check failed\n"
    )
    single = request(server, "/healthz/model-agent-health")
    assert single.status == 500
    assert single.text == f"internal server error: stat {missing}: no such file or directory\n"
    missing.mkdir()  # every probe checks afresh
    assert request(server, "/healthz").status == 200


def test_healthz_file_instead_of_directory(make_server, tmp_path: Path) -> None:  # noqa: ANN001
    not_dir = tmp_path / "models"
    not_dir.write_text("oops")
    server = make_server(health=ModelAgentHealthCheck(not_dir))
    reply = request(server, "/healthz")
    assert reply.status == 500
    assert f"[-]model-agent-health failed: {not_dir} is not a directory" in reply.text


def test_healthz_not_writable(make_server, models_root: Path) -> None:  # noqa: ANN001
    # access(W_OK) is injected: as root (the DaemonSet's usual user) permission bits never deny writing, and
    # a read-only mount cannot be made here. The check must ask exactly for W_OK on the models root.
    calls: list[tuple[str, int]] = []

    def read_only(path: str, mode: int) -> bool:
        calls.append((path, mode))
        return False

    server = make_server(health=ModelAgentHealthCheck(models_root, access=read_only))
    reply = request(server, "/healthz")
    assert reply.status == 500
    assert f"[-]model-agent-health failed: {models_root} is not writable" in reply.text
    assert calls == [(str(models_root), os.W_OK)]


def test_healthz_permission_bits_follow_access_semantics(make_server, models_root: Path) -> None:  # noqa: ANN001
    # chmod 0555: a non-root agent is refused, root is not (root may write there, and access(2) says so).
    models_root.chmod(0o555)
    try:
        server = make_server(health=ModelAgentHealthCheck(models_root))
        reply = request(server, "/healthz")
        if os.access(models_root, os.W_OK):
            assert (reply.status, reply.text) == (200, "ok")
        else:
            assert reply.status == 500
            assert "is not writable" in reply.text
    finally:
        models_root.chmod(0o755)


def test_healthz_unusable_paths_report_the_stat_error(tmp_path: Path) -> None:
    too_long = tmp_path / ("x" * 300)
    assert ModelAgentHealthCheck(too_long).check() == f"stat {too_long}: file name too long"
    with_nul = str(tmp_path / "a\0b")
    assert ModelAgentHealthCheck(with_nul).check() == f"stat {with_nul!r}: embedded null byte"


# ---- /livez ----


def test_livez_without_callback_always_ok(make_server, tmp_path: Path) -> None:  # noqa: ANN001
    server = make_server(health=ModelAgentHealthCheck(tmp_path / "absent"))  # disk trouble is not a wedge
    assert (request(server, "/livez").status, request(server, "/livez").text) == (200, "ok")
    assert request(server, "/livez/ping").text == "ok"
    assert request(server, "/livez?verbose").text == "[+]ping ok\nlivez check passed\n"
    assert request(server, "/livez/loop").status == 404


def test_livez_follows_the_loop_heartbeat(make_server, models_root: Path) -> None:  # noqa: ANN001
    clock = FakeClock()
    heartbeat = LoopHeartbeat(max_age=120, clock=clock)
    server = make_server(health=ModelAgentHealthCheck(models_root), liveness=heartbeat)
    assert request(server, "/livez").status == 200
    clock.now += 200
    reply = request(server, "/livez")
    assert reply.status == 500
    assert reply.text == (
        "[+]ping ok\n[-]loop failed: control loop last reported 200 s ago (limit 120 s)\nlivez check failed\n"
    )
    assert request(server, "/livez/ping").status == 200
    assert request(server, "/livez/loop").status == 500
    heartbeat.beat()
    assert request(server, "/livez").status == 200
    assert request(server, "/livez/loop").text == "ok"


# ---- /readyz ----


def test_readyz_needs_synced_caches_and_healthy_disk(make_server, tmp_path: Path) -> None:  # noqa: ANN001
    root = tmp_path / "models"
    synced = threading.Event()
    server = make_server(health=ModelAgentHealthCheck(root), readiness=synced.is_set)
    reply = request(server, "/readyz")
    assert reply.status == 500
    assert "[-]model-agent-health failed: stat" in reply.text
    assert "[-]informer-sync failed: informer-sync check failed" in reply.text
    root.mkdir()
    reply = request(server, "/readyz")
    assert reply.status == 500
    assert "[+]model-agent-health ok" in reply.text
    assert "[-]informer-sync failed" in reply.text
    synced.set()
    assert (request(server, "/readyz").status, request(server, "/readyz").text) == (200, "ok")
    assert request(server, "/readyz?verbose").text == (
        "[+]ping ok\n[+]model-agent-health ok\n[+]informer-sync ok\nreadyz check passed\n"
    )
    assert request(server, "/readyz/informer-sync").text == "ok"
    root.rmdir()
    assert request(server, "/readyz").status == 500
    assert request(server, "/readyz/informer-sync").status == 200


def test_readyz_reason_from_callback_and_without_callback(make_server, models_root: Path) -> None:  # noqa: ANN001
    state = {"reason": "caches not synced: BaseModel, Node"}
    server = make_server(health=ModelAgentHealthCheck(models_root), readiness=lambda: state["reason"])
    reply = request(server, "/readyz")
    assert reply.status == 500
    assert "[-]informer-sync failed: caches not synced: BaseModel, Node" in reply.text
    state["reason"] = None
    assert request(server, "/readyz").status == 200
    plain = make_server(health=ModelAgentHealthCheck(models_root))
    assert request(plain, "/readyz").status == 200
    assert request(plain, "/readyz/informer-sync").status == 404


def test_a_raising_callback_fails_its_check_and_the_server_keeps_serving(make_server, models_root: Path) -> None:  # noqa: ANN001
    def broken() -> bool:
        raise ConnectionError("API server unreachable")

    server = make_server(health=ModelAgentHealthCheck(models_root), readiness=broken, liveness=broken)
    reply = request(server, "/readyz")
    assert reply.status == 500
    assert "[-]informer-sync failed: ConnectionError: API server unreachable" in reply.text
    assert request(server, "/livez/loop").text == "internal server error: ConnectionError: API server unreachable\n"
    assert request(server, "/healthz").status == 200


def test_callback_check_verdicts() -> None:
    assert CallbackCheck("x", lambda: True).check() is None
    assert CallbackCheck("x", lambda: None).check() is None
    assert CallbackCheck("x", lambda: False).check() == "x check failed"
    assert CallbackCheck("x", lambda: "").check() == "x check failed"
    assert CallbackCheck("x", lambda: "why").check() == "why"
    with pytest.raises(ValueError, match="path segment"):
        CallbackCheck("a/b", lambda: True)
    with pytest.raises(ValueError, match="max_age"):
        LoopHeartbeat(0)


# ---- routing and methods ----


@pytest.mark.parametrize(
    "path", ["/", "/metricsx", "/metrics/extra", "/healthz/unknown", "/livez/model-agent-health", "/readyzz", "/healthz/"]
)
def test_unknown_paths_are_404(make_server, models_root: Path, path: str) -> None:  # noqa: ANN001
    server = make_server(health=ModelAgentHealthCheck(models_root))
    reply = request(server, path)
    assert reply.status == 404
    assert reply.text == "404 page not found\n"


def test_head_returns_headers_without_body(make_server, tmp_path: Path) -> None:  # noqa: ANN001
    server = make_server(health=ModelAgentHealthCheck(tmp_path / "absent"))
    for path, status in (("/metrics", 200), ("/healthz", 500), ("/livez", 200), ("/nope", 404)):
        get = request(server, path)
        head = request(server, path, method="HEAD")
        assert (head.status, get.status) == (status, status), path
        assert head.raw == b"", path
        assert head.headers["content-type"] == get.headers["content-type"], path
        if path != "/metrics":  # the exposition's process_* values move between two scrapes
            assert head.headers["content-length"] == str(len(get.raw)), path


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405(make_server, models_root: Path, method: str) -> None:  # noqa: ANN001
    server = make_server(health=ModelAgentHealthCheck(models_root))
    reply = request(server, "/metrics", method=method)
    assert reply.status == 405
    assert reply.headers["allow"] == "GET, HEAD"


def test_concurrent_scrapes_and_probes(make_server, models_root: Path) -> None:  # noqa: ANN001
    server = make_server(health=ModelAgentHealthCheck(models_root))
    results: list[int] = []
    lock = threading.Lock()

    def hit(path: str) -> None:
        for _ in range(5):
            status = request(server, path).status
            with lock:
                results.append(status)

    threads = [threading.Thread(target=hit, args=(p,)) for p in ("/metrics", "/healthz", "/livez", "/readyz") * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 40


# ---- lifecycle ----


def test_port_zero_picks_a_free_port_and_runs_in_a_daemon_thread(models_root: Path) -> None:
    server = AgentServer(Metrics("t"), ModelAgentHealthCheck(models_root), host="127.0.0.1", port=0)
    assert server.port == 0
    with server:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        threads = [t for t in threading.enumerate() if t.name == "modelagent-http"]
        assert len(threads) == 1 and threads[0].daemon
        assert request(server, "/livez").status == 200
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
    assert not [t for t in threading.enumerate() if t.name == "modelagent-http"]


def test_stop_closes_the_port_and_is_idempotent(models_root: Path) -> None:
    server = AgentServer(Metrics("t"), ModelAgentHealthCheck(models_root), host="127.0.0.1", port=0).start()
    port = server.port
    server.stop()
    server.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    server.start()  # restartable
    try:
        assert request(server, "/healthz").status == 200
    finally:
        server.stop()


def test_stop_does_not_wait_for_a_silent_client(models_root: Path) -> None:
    server = AgentServer(
        Metrics("t"), ModelAgentHealthCheck(models_root), host="127.0.0.1", port=0, request_timeout=60
    ).start()
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=5)  # connects, never sends a request
    try:
        assert request(server, "/livez").status == 200  # the silent client does not block others
        server.stop()
        assert not [t for t in threading.enumerate() if t.name == "modelagent-http"]
    finally:
        idle.close()


def test_stop_lets_a_response_being_written_finish(models_root: Path) -> None:
    release = threading.Event()

    class SlowMetrics:
        def exposition(self) -> str:
            release.wait(30)
            return "slow_metric 1\n"

    server = AgentServer(SlowMetrics(), ModelAgentHealthCheck(models_root), host="127.0.0.1", port=0).start()
    answers: list[tuple[int, bytes]] = []

    def ask() -> None:
        response = request(server, "/metrics")
        answers.append((response.status, response.raw))

    client = threading.Thread(target=ask)
    client.start()
    deadline = time.monotonic() + 30
    while server.responses_in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.responses_in_flight == 1
    threading.Timer(0.3, release.set).start()
    server.stop(drain_timeout=30)
    assert server.responses_in_flight == 0  # stop() returned only after the answer was written
    client.join(30)
    assert answers == [(200, b"slow_metric 1\n")]


def test_port_in_use_is_a_clear_error(models_root: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = AgentServer(Metrics("t"), ModelAgentHealthCheck(models_root), host="127.0.0.1", port=port)
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            server.start()
        server.stop()  # never started: no-op


def test_bad_port_is_refused() -> None:
    with pytest.raises(ValueError, match="port must be in 0..65535"):
        AgentServer(Metrics("t"), ModelAgentHealthCheck("/"), port=70000)
    with pytest.raises(ValueError, match="request_timeout must be positive"):
        AgentServer(Metrics("t"), ModelAgentHealthCheck("/"), request_timeout=0)


def test_ipv6_loopback(models_root: Path) -> None:
    server = AgentServer(Metrics("t"), ModelAgentHealthCheck(models_root), host="::1", port=0)
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        with pytest.raises(OSError, match="cannot listen on ::1:0"):
            server.start()
        return
    with server:
        assert server.url == f"http://[::1]:{server.port}"
        conn = http.client.HTTPConnection("::1", server.port, timeout=10)
        try:
            conn.request("GET", "/livez")
            assert conn.getresponse().read() == b"ok"
        finally:
            conn.close()
