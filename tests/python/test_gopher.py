"""The Gopher against the fake hub: downloads, change detection, deletes, supersede, storage kinds."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelagent import ModelEntry, example_model_path
from modelagent.agent.gopher import Gopher, storage_identity, swap_directories
from modelagent.agent.model_ref import ModelRef
from modelagent.agent.tasks import GopherTask, TaskType
from modelagent.metrics import Metrics

BOUND = 20.0  # upper bound for anything to happen; tests never depend on how fast


class RecordingSink:
    """An in-memory StatusSink that records every call in order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str, Any]] = []
        self.entries: dict[str, dict[str, Any]] = {}

    def set_status(self, ref: ModelRef, status: str, *, reason: str | None = None) -> None:
        with self.lock:
            self.calls.append(("status", ref.configmap_key, (status, reason)))
            entry = self.entries.setdefault(ref.configmap_key, {"name": ref.name})
            entry["status"] = status
            entry.pop("reason", None)
            if reason and status == "Failed":
                entry["reason"] = reason
            if status in ("Ready", "Failed"):
                entry.pop("progress", None)

    def set_config(self, ref: ModelRef, config: dict) -> None:
        with self.lock:
            self.calls.append(("config", ref.configmap_key, config))
            self.entries.setdefault(ref.configmap_key, {"name": ref.name, "status": "Updating"})["config"] = config

    def set_progress(self, ref: ModelRef, progress: dict | None) -> None:
        with self.lock:
            self.calls.append(("progress", ref.configmap_key, progress))
            self.entries.setdefault(ref.configmap_key, {"name": ref.name, "status": "Updating"})["progress"] = progress

    def remove(self, ref: ModelRef) -> None:
        with self.lock:
            self.calls.append(("remove", ref.configmap_key, None))
            self.entries.pop(ref.configmap_key, None)

    def known(self) -> dict[str, ModelEntry]:
        with self.lock:
            return {k: ModelEntry.from_dict(v) for k, v in self.entries.items()}

    def heal(self, live_keys: set[str] | None = None) -> None:
        pass

    def status(self, key: str) -> str | None:
        with self.lock:
            entry = self.entries.get(key)
            return None if entry is None else entry.get("status")

    def calls_for(self, key: str) -> list[tuple[str, Any]]:
        with self.lock:
            return [(c[0], c[2]) for c in self.calls if c[1] == key]


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = BOUND) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def model(name: str, uri: str, *, namespace: str | None = "team", path: str | None = None, uid: str | None = None,
          labels: dict[str, str] | None = None, **storage: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": uid or f"uid-{name}", "labels": labels or {}}
    if namespace is not None:
        meta["namespace"] = namespace
    spec_storage: dict[str, Any] = {"storageUri": uri, **storage}
    if path is not None:
        spec_storage["path"] = path
    return {
        "apiVersion": "ome.io/v1beta1",
        "kind": "BaseModel" if namespace is not None else "ClusterBaseModel",
        "metadata": meta,
        "spec": {"storage": spec_storage},
    }


def task(task_type: TaskType, obj: dict[str, Any]) -> GopherTask:
    return GopherTask.for_object(task_type, obj)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def make_gopher(sink: RecordingSink, root: Path, fake_hub: Any) -> Any:
    made: list[Gopher] = []

    def make(**kwargs: Any) -> Gopher:
        kwargs.setdefault("models_root", root)
        kwargs.setdefault("progress_interval", 0.05)
        kwargs.setdefault("endpoint", fake_hub.url)
        gopher = Gopher(kwargs.pop("sink", sink), **kwargs).start()
        made.append(gopher)
        return gopher

    yield make
    for gopher in made:
        gopher.stop(timeout=10)


def publish(hub: Any, synthetic_model: Callable[..., Any], repo: str, **kwargs: Any) -> dict[str, Path]:
    files = synthetic_model(**kwargs).repo_files()
    hub.add_repo(repo, files)
    return files


def test_download_reports_updating_progress_config_ready(make_gopher, sink, root, fake_hub, synthetic_model):
    publish(fake_hub, synthetic_model, "org/llama", shard_sizes=[3 << 20, 3 << 20])
    fake_hub.throttle(8 << 20, server="cdn")
    metrics = Metrics()
    gopher = make_gopher(metrics=metrics)
    obj = model("llama", "hf://org/llama")
    key = ModelRef.from_object(obj).configmap_key
    gopher.submit(task(TaskType.DOWNLOAD, obj))
    assert gopher.wait_idle(BOUND)

    dest = root / "basemodels" / "team" / "llama"
    assert (dest / "config.json").is_file()
    assert (dest / "model-00001-of-00002.safetensors").stat().st_size == 3 << 20
    calls = sink.calls_for(key)
    kinds = [c[0] for c in calls]
    assert calls[0] == ("status", ("Updating", None))
    assert calls[-1] == ("status", ("Ready", None))
    assert "progress" in kinds and "config" in kinds
    final = kinds.index("status", 1)
    assert "progress" not in kinds[final:], "progress written after the final status"
    progress = next(c[1] for c in calls if c[0] == "progress")
    assert set(progress) == {"phase", "totalBytes", "completedBytes", "totalFiles", "completedFiles",
                             "speedBytesPerSec", "lastUpdated"}
    config = next(c[1] for c in calls if c[0] == "config")
    assert config["modelType"] == "llama"
    text = metrics.exposition()
    assert 'model_agent_downloads_success_total{model_type="BaseModel",name="llama",namespace="team"} 1' in text


def test_label_only_change_does_not_redownload(make_gopher, sink, fake_hub, synthetic_model):
    publish(fake_hub, synthetic_model, "org/m")
    gopher = make_gopher()
    obj = model("m", "hf://org/m")
    gopher.submit(task(TaskType.DOWNLOAD, obj))
    assert gopher.wait_idle(BOUND)
    key = ModelRef.from_object(obj).configmap_key
    assert sink.status(key) == "Ready"
    fake_hub.clear_requests()
    calls_before = len(sink.calls_for(key))

    changed = model("m", "hf://org/m", labels={"team": "blue"})
    changed["metadata"]["annotations"] = {"note": "x"}
    changed["spec"]["modelType"] = "llama"  # back-filled spec field
    changed["spec"]["storage"]["nodeSelector"] = {"gpu": "true"}
    gopher.submit(task(TaskType.DOWNLOAD_OVERRIDE, changed))
    assert gopher.wait_idle(BOUND)
    assert fake_hub.requests == []
    assert len(sink.calls_for(key)) == calls_before


def test_new_uri_downloads_to_fresh_folder_and_swaps(make_gopher, sink, root, fake_hub, synthetic_model):
    publish(fake_hub, synthetic_model, "org/a", shard_sizes=[1 << 20], seed=1)
    publish(fake_hub, synthetic_model, "org/b", shard_sizes=[2 << 20], seed=2)
    gopher = make_gopher()
    gopher.submit(task(TaskType.DOWNLOAD, model("m", "hf://org/a")))
    assert gopher.wait_idle(BOUND)
    dest = root / "basemodels" / "team" / "m"
    assert (dest / "model.safetensors").stat().st_size == 1 << 20
    seen_during: list[str] = []

    def watch_dest(record: Any) -> None:
        # While the new revision downloads, the old files stay readable at the destination.
        seen_during.append(str((dest / "model.safetensors").stat().st_size))

    fake_hub.on_request(watch_dest, count=1, server="cdn")
    gopher.submit(task(TaskType.DOWNLOAD_OVERRIDE, model("m", "hf://org/b")))
    assert gopher.wait_idle(BOUND)
    assert seen_during == [str(1 << 20)]
    assert (dest / "model.safetensors").stat().st_size == 2 << 20
    assert sorted(p.name for p in dest.parent.iterdir()) == ["m"], "staging or old folders left behind"
    assert sink.status(ModelRef.from_object(model("m", "x")).configmap_key) == "Ready"


def test_new_path_moves_model_and_removes_old_folder(make_gopher, sink, root, fake_hub, synthetic_model):
    publish(fake_hub, synthetic_model, "org/m")
    gopher = make_gopher()
    gopher.submit(task(TaskType.DOWNLOAD, model("m", "hf://org/m", path=str(root / "one"))))
    assert gopher.wait_idle(BOUND)
    assert (root / "one" / "config.json").is_file()
    gopher.submit(task(TaskType.DOWNLOAD_OVERRIDE, model("m", "hf://org/m", path=str(root / "two"))))
    assert gopher.wait_idle(BOUND)
    assert (root / "two" / "config.json").is_file()
    assert not (root / "one").exists()


def test_delete_during_download_cancels_and_never_resurrects(make_gopher, sink, root, fake_hub, synthetic_model):
    publish(fake_hub, synthetic_model, "org/big", shard_sizes=[16 << 20])
    fake_hub.throttle(256 << 10, server="cdn")  # a minute for the shard: only a cancel ends it early
    gopher = make_gopher()
    obj = model("big", "hf://org/big")
    key = ModelRef.from_object(obj).configmap_key
    gopher.submit(task(TaskType.DOWNLOAD, obj))
    wait_for(lambda: any(c[0] == "progress" and c[1]["completedBytes"] > 0 for c in sink.calls_for(key)),
             "download progress")
    started = time.monotonic()
    gopher.submit(task(TaskType.DELETE, obj))
    assert gopher.wait_idle(BOUND)
    assert time.monotonic() - started < 10, "delete did not cancel the transfer"
    calls = sink.calls_for(key)
    assert calls[-1] == ("remove", None)
    assert not any(c[0] == "status" and c[1][0] in ("Ready", "Failed") for c in calls)
    assert not (root / "basemodels" / "team" / "big").exists()
    assert key not in sink.entries


def test_delete_is_not_starved_by_busy_workers(make_gopher, sink, root, fake_hub, synthetic_model):
    publish(fake_hub, synthetic_model, "org/slow", shard_sizes=[16 << 20])
    publish(fake_hub, synthetic_model, "org/small")
    gopher = make_gopher(workers=1)
    small = model("small", "hf://org/small")
    gopher.submit(task(TaskType.DOWNLOAD, small))
    assert gopher.wait_idle(BOUND)
    fake_hub.throttle(256 << 10, server="cdn")
    slow = model("slow", "hf://org/slow")
    slow_key = ModelRef.from_object(slow).configmap_key
    gopher.submit(task(TaskType.DOWNLOAD, slow))
    wait_for(lambda: any(c[0] == "progress" for c in sink.calls_for(slow_key)), "slow download running")
    gopher.submit(task(TaskType.DELETE, small))
    small_key = ModelRef.from_object(small).configmap_key
    wait_for(lambda: ("remove", None) in sink.calls_for(small_key), "delete of the idle model")
    assert slow_key in gopher.busy_keys(), "the delete had to wait for the only worker"
    assert not (root / "basemodels" / "team" / "small").exists()


def test_newer_task_supersedes_queued_one(make_gopher, sink, fake_hub, synthetic_model):
    publish(fake_hub, synthetic_model, "org/slow", shard_sizes=[4 << 20])
    publish(fake_hub, synthetic_model, "org/v1", seed=1)
    publish(fake_hub, synthetic_model, "org/v2", seed=2)
    gopher = make_gopher(workers=1)
    fake_hub.throttle(2 << 20, server="cdn")
    slow = model("slow", "hf://org/slow")
    gopher.submit(task(TaskType.DOWNLOAD, slow))
    wait_for(lambda: any(c[0] == "progress" for c in sink.calls_for(ModelRef.from_object(slow).configmap_key)),
             "slow download running")
    gopher.submit(task(TaskType.DOWNLOAD, model("m", "hf://org/v1")))
    gopher.submit(task(TaskType.DOWNLOAD_OVERRIDE, model("m", "hf://org/v2")))
    assert gopher.wait_idle(BOUND)
    assert not fake_hub.find_requests(path="org/v1"), "the superseded task ran"
    assert fake_hub.find_requests(path="org/v2")


def test_storage_kinds_and_bad_models_do_not_disturb_others(make_gopher, sink, root, fake_hub, synthetic_model):
    publish(fake_hub, synthetic_model, "org/good")
    gopher = make_gopher(workers=2)
    models = {
        "good": model("good", "hf://org/good"),
        "local": model("local", f"local://{example_model_path()}"),
        "pvc": model("pvc", "pvc://claim/models/x"),
        "vendor": model("vendor", "vendor://acme/model/x"),
        "s3": model("s3", "s3://bucket/prefix"),
        "bad": model("bad", "hf://org//x"),
        "nouri": {"kind": "BaseModel", "metadata": {"name": "nouri", "namespace": "team", "uid": "u"}, "spec": {}},
        "outside": model("outside", "hf://org/good", path="/etc/model"),
        "root": model("root", "hf://org/good", path=str(root)),
        "missing-local": model("missing-local", "local:///no/such/dir"),
    }
    for obj in models.values():
        gopher.submit(task(TaskType.DOWNLOAD, obj))
    assert gopher.wait_idle(BOUND)
    entry = {name: sink.entries.get(ModelRef.from_object(obj).configmap_key) for name, obj in models.items()}
    assert entry["good"]["status"] == "Ready"
    assert entry["local"]["status"] == "Ready"
    assert entry["local"]["config"]["modelType"] == "llama"
    assert entry["pvc"] is None and entry["vendor"] is None
    assert entry["s3"]["status"] == "Failed"
    assert entry["s3"]["reason"] == "storage type s3:// is not supported by this agent yet"
    assert entry["bad"]["status"] == "Failed" and "hf://org//x" in entry["bad"]["reason"]
    assert entry["nouri"]["status"] == "Failed" and "storageUri" in entry["nouri"]["reason"]
    assert "outside the models root" in entry["outside"]["reason"]
    assert "models root itself" in entry["root"]["reason"]
    assert entry["missing-local"]["status"] == "Failed" and "/no/such/dir" in entry["missing-local"]["reason"]
    assert example_model_path().is_dir()

    # local:// models are never deleted; deleting a Failed model removes its entry.
    gopher.submit(task(TaskType.DELETE, models["local"]))
    gopher.submit(task(TaskType.DELETE, models["bad"]))
    assert gopher.wait_idle(BOUND)
    assert (example_model_path() / "config.json").is_file()
    assert ModelRef.from_object(models["bad"]).configmap_key not in sink.entries


def test_path_owned_by_another_model_is_refused(make_gopher, sink, root, fake_hub, synthetic_model):
    publish(fake_hub, synthetic_model, "org/m")
    gopher = make_gopher()
    first = model("first", "hf://org/m", path=str(root / "shared"))
    second = model("second", "hf://org/m", path=str(root / "shared" / "inner"))
    gopher.submit(task(TaskType.DOWNLOAD, first))
    assert gopher.wait_idle(BOUND)
    gopher.submit(task(TaskType.DOWNLOAD, second))
    assert gopher.wait_idle(BOUND)
    failed = sink.entries[ModelRef.from_object(second).configmap_key]
    assert failed["status"] == "Failed" and "BaseModel team/first" in failed["reason"]
    # Deleting the refused model leaves the owner's files alone.
    gopher.submit(task(TaskType.DELETE, second))
    assert gopher.wait_idle(BOUND)
    assert (root / "shared" / "config.json").is_file()


def test_token_from_secret_then_parameters(make_gopher, sink, fake_hub_factory, synthetic_model):
    hub = fake_hub_factory(tokens={"hf_secret": "alice", "hf_param": "bob"})
    files = synthetic_model().repo_files()
    hub.add_repo("org/private", files, private=True)
    secrets = {("team", "hf"): {"token": base64.b64encode(b"hf_secret").decode()}}
    gopher = make_gopher(endpoint=hub.url, read_secret=lambda ns, name: secrets.get((ns, name)))
    with_secret = model("a", "hf://org/private", key="hf", parameters={"token": "hf_param"})
    gopher.submit(task(TaskType.DOWNLOAD, with_secret))
    assert gopher.wait_idle(BOUND)
    assert {r.authorization for r in hub.requests if r.server == "hub"} == {"Bearer hf_secret"}
    hub.clear_requests()
    missing_secret = model("b", "hf://org/private", key="absent", parameters={"token": "hf_param"})
    gopher.submit(task(TaskType.DOWNLOAD, missing_secret))
    assert gopher.wait_idle(BOUND)
    assert {r.authorization for r in hub.requests if r.server == "hub"} == {"Bearer hf_param"}
    assert sink.status(ModelRef.from_object(missing_secret).configmap_key) == "Ready"


def test_stop_mid_download_then_restart_resumes(sink, root, fake_hub, synthetic_model):
    publish(fake_hub, synthetic_model, "org/resume", shard_sizes=[1 << 20, 1 << 20, 8 << 20])
    fake_hub.throttle(1 << 20, server="cdn")
    obj = model("r", "hf://org/resume")
    key = ModelRef.from_object(obj).configmap_key
    first = Gopher(sink, models_root=root, endpoint=fake_hub.url, progress_interval=0.05,
                   connections=1).start()
    first.submit(task(TaskType.DOWNLOAD, obj))
    wait_for(lambda: any(c[0] == "progress" and c[1]["completedFiles"] >= 3 for c in sink.calls_for(key)),
             "some files complete")
    assert first.stop(timeout=10)
    assert sink.status(key) == "Updating"
    dest = root / "basemodels" / "team" / "r"
    hub_files = fake_hub.files("org/resume", "main")
    complete = {p for p, f in hub_files.items() if f.sha256 and (dest / p).is_file()
                and (dest / p).stat().st_size == f.size}
    unfinished = {p for p, f in hub_files.items() if f.sha256} - complete
    assert complete and unfinished, "stopped too late or too early for this test"
    fake_hub.throttle(None)
    fake_hub.clear_requests()
    second = Gopher(sink, models_root=root, endpoint=fake_hub.url).start()
    try:
        second.submit(task(TaskType.DOWNLOAD, obj))
        assert second.wait_idle(BOUND)
    finally:
        second.stop()
    assert sink.status(key) == "Ready"
    fetched = [r.path for r in fake_hub.requests if r.server == "cdn" and r.method == "GET"]
    for path in complete:
        assert not any(p.endswith(hub_files[path].sha256) for p in fetched), f"{path} was downloaded again"
    for path in unfinished:
        assert any(p.endswith(hub_files[path].sha256) for p in fetched)
        assert (dest / path).stat().st_size == hub_files[path].size


def test_storage_identity_ignores_placement():
    a = model("m", "hf://org/m", nodeSelector={"a": "b"})
    b = model("m", "hf://org/m")
    assert storage_identity(a) == storage_identity(b)
    assert storage_identity(b) != storage_identity(model("m", "hf://org/m@v2"))


def test_swap_directories_exchanges(tmp_path: Path):
    current, new = tmp_path / "cur", tmp_path / "new"
    current.mkdir()
    new.mkdir()
    (current / "f").write_text("old")
    (new / "f").write_text("new")
    retired = swap_directories(new, current)
    assert (current / "f").read_text() == "new"
    assert (retired / "f").read_text() == "old"


def test_kubernetes_secret_reader(fake_kube, kube_api_client):
    from kubernetes import client

    from modelagent.agent.secrets import hf_token, kubernetes_secret_reader

    fake_kube.add_namespace("team")
    fake_kube.create("secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hf"},
                                 "stringData": {"token": "hf_team", "other": "hf_other"}}, namespace="team")
    fake_kube.create("secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hf"},
                                 "stringData": {"token": "hf_cluster"}}, namespace="ome")
    read = kubernetes_secret_reader(client.CoreV1Api(kube_api_client))
    assert read("team", "absent") is None
    bm_obj = model("m", "hf://org/m", key="hf")
    assert hf_token(bm_obj, ModelRef.from_object(bm_obj), read_secret=read, cluster_namespace="ome") == "hf_team"
    other = model("m", "hf://org/m", key="hf", parameters={"secretKey": "other"})
    assert hf_token(other, ModelRef.from_object(other), read_secret=read, cluster_namespace="ome") == "hf_other"
    cbm = model("c", "hf://org/m", namespace=None, key="hf")
    assert hf_token(cbm, ModelRef.from_object(cbm), read_secret=read, cluster_namespace="ome") == "hf_cluster"
    assert [r.verb for r in fake_kube.find_requests(resource="secrets")] == ["get"] * 4


def test_uri_change_during_download_replaces_the_partial_files(make_gopher, sink, root, fake_hub, synthetic_model):
    publish(fake_hub, synthetic_model, "org/slow", shard_sizes=[16 << 20], seed=1)
    publish(fake_hub, synthetic_model, "org/b", shard_sizes=[1 << 20], seed=2)
    fake_hub.throttle(256 << 10, path="/repos/")
    gopher = make_gopher()
    first = model("m", "hf://org/slow")
    key = ModelRef.from_object(first).configmap_key
    gopher.submit(task(TaskType.DOWNLOAD, first))
    wait_for(lambda: any(c[0] == "progress" and c[1]["completedBytes"] > 0 for c in sink.calls_for(key)),
             "first download running")
    fake_hub.throttle(None)
    gopher.submit(task(TaskType.DOWNLOAD_OVERRIDE, model("m", "hf://org/b")))
    assert gopher.wait_idle(BOUND)
    dest = root / "basemodels" / "team" / "m"
    b_files = fake_hub.files("org/b", "main")
    on_disk = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()
                     and ".modelagent" not in p.parts and not p.name.startswith("."))
    assert on_disk == sorted(b_files)
    assert (dest / "model.safetensors").stat().st_size == 1 << 20
    assert sorted(p.name for p in dest.parent.iterdir()) == ["m"]
    assert sink.status(key) == "Ready"
    assert [c for c in sink.calls_for(key) if c[0] == "status"][-1] == ("status", ("Ready", None))
