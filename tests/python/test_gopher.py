"""The Gopher against the fake hub: downloads, change detection, deletes, supersede, storage kinds."""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from modelagent import ModelEntry, example_model_path
from modelagent.agent.gopher import Gopher, storage_identity, swap_directories
from modelagent.agent.model_ref import ModelRef
from modelagent.agent.tasks import GopherTask, TaskType
from modelagent.metrics import Metrics

from metrics_text import metric

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


@contextlib.contextmanager
def held(hub: Any, sha256: str) -> Iterator[threading.Event]:
    """Hold the fake CDN's answer to the next request for the file ``sha256`` until the block ends (the
    download stays busy for sure, whatever the machine's speed); yields an Event set once it arrived."""
    arrived, release = threading.Event(), threading.Event()

    def hold(record: Any) -> None:
        arrived.set()
        release.wait(3 * BOUND)  # bounded: a broken test must not hang the fake's shutdown

    hub.on_request(hold, server="cdn", path=sha256)
    try:
        yield arrived
    finally:
        release.set()


def lfs_sha(hub: Any, repo: str, path: str) -> str:
    sha = hub.files(repo, "main")[path].sha256
    assert sha, f"{path} is not an LFS file"
    return sha


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
    gopher.submit(task(TaskType.DELETE, obj))
    assert gopher.wait_idle(BOUND)  # without the cancel the transfer alone lasts a minute
    # The transfer was cut: the CDN answers ended (the client went away) short of the shard's size.
    shard = fake_hub.files("org/big", "main")["model.safetensors"]
    served = fake_hub.find_requests(server="cdn", method="GET", path=shard.sha256)
    assert served and all(r.wait(BOUND) for r in served), "the transfer went on after the delete"
    assert sum(r.bytes_sent for r in served) < shard.size, "delete did not cancel the transfer"
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
    slow = model("slow", "hf://org/slow")
    slow_key = ModelRef.from_object(slow).configmap_key
    with held(fake_hub, lfs_sha(fake_hub, "org/slow", "model.safetensors")) as arrived:
        gopher.submit(task(TaskType.DOWNLOAD, slow))
        assert arrived.wait(BOUND), "slow download running"  # the only worker is busy until the block ends
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
    slow = model("slow", "hf://org/slow")
    # Both tasks for m must be queued while the only worker is busy: its download is held until then.
    with held(fake_hub, lfs_sha(fake_hub, "org/slow", "model.safetensors")) as arrived:
        gopher.submit(task(TaskType.DOWNLOAD, slow))
        assert arrived.wait(BOUND), "slow download running"
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
        "gs": model("gs", "gs://bucket/prefix"),
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
    assert entry["gs"]["status"] == "Failed"
    assert entry["gs"]["reason"] == "storage type gs:// is not supported by this agent yet"
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
    obj = model("r", "hf://org/resume")
    key = ModelRef.from_object(obj).configmap_key
    first = Gopher(sink, models_root=root, endpoint=fake_hub.url, progress_interval=0.05,
                   connections=1).start()
    # One connection fetches the files in name order; the last shard is held until the agent stopped, so the
    # stop lands after the first shards and before the end, however fast or slow the machine is.
    with held(fake_hub, lfs_sha(fake_hub, "org/resume", "model-00003-of-00003.safetensors")) as arrived:
        first.submit(task(TaskType.DOWNLOAD, obj))
        assert arrived.wait(BOUND), "the last shard was never requested"
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


# --- ownership on disk, spec-less deletes, restarts with another URI, metrics -----------------------------


def stub(obj: dict[str, Any]) -> dict[str, Any]:
    """What the Scout sends for a model deleted while the agent was down: identity only, no spec."""
    meta = {k: v for k, v in obj["metadata"].items() if k in ("name", "namespace")}
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": meta}


def test_specless_delete_after_restart_removes_the_models_folders_only(sink, root, fake_hub, synthetic_model):
    from modelagent.agent.destination import read_owner

    publish(fake_hub, synthetic_model, "org/m")
    plain = model("plain", "hf://org/m")
    custom = model("custom", "hf://org/m", path=str(root / "custom" / "place"))
    cluster = model("cbm", "hf://org/m", namespace=None)
    other = model("other", "hf://org/m", path=str(root / "basemodels" / "team" / "taken"))
    first = Gopher(sink, models_root=root, endpoint=fake_hub.url).start()
    for obj in (plain, custom, cluster, other):
        first.submit(task(TaskType.DOWNLOAD, obj))
    assert first.wait_idle(BOUND)
    assert first.stop()
    owner = read_owner(root / "custom" / "place")
    assert owner is not None and owner.ref.name == "custom" and owner.storage_uri == "hf://org/m" and owner.complete
    local_dir = root / "basemodels" / "team" / "ghost"  # a local:// model's files at a deleted model's default folder
    local_dir.mkdir(parents=True)
    (local_dir / "weights.bin").write_bytes(b"x")

    second = Gopher(sink, models_root=root, endpoint=fake_hub.url).start()
    try:
        for obj in (plain, custom, cluster, model("taken", "hf://x/y"), model("ghost", "hf://x/y")):
            second.submit(task(TaskType.DELETE, stub(obj)))
        assert second.wait_idle(BOUND)
    finally:
        second.stop()
    assert not (root / "basemodels" / "team" / "plain").exists()
    assert not (root / "custom" / "place").exists()
    assert not (root / "clusterbasemodels" / "cbm").exists()
    assert (root / "basemodels" / "team" / "taken" / "config.json").is_file(), "another model's folder was removed"
    assert (local_dir / "weights.bin").is_file(), "a folder not filled for the model was removed"
    assert sorted(p.name for p in (root / "basemodels" / "team").iterdir()) == ["ghost", "taken"]
    assert list((root / "custom").iterdir()) == [] and list((root / "clusterbasemodels").iterdir()) == []
    for obj in (plain, custom, cluster):
        assert ("remove", None) in sink.calls_for(ModelRef.from_object(obj).configmap_key)


def test_delete_never_removes_a_local_models_path(make_gopher, sink, root, fake_hub, synthetic_model):
    publish(fake_hub, synthetic_model, "org/m")
    gopher = make_gopher()
    gone = model("gone", "hf://org/m")
    gopher.submit(task(TaskType.DOWNLOAD, gone))
    assert gopher.wait_idle(BOUND)
    folder = root / "basemodels" / "team" / "gone"
    # Another model now serves these files in place.
    gopher.submit(task(TaskType.DOWNLOAD, model("keeper", f"local://{folder}")))
    assert gopher.wait_idle(BOUND)
    assert sink.status(ModelRef.from_object(model("keeper", "x")).configmap_key) == "Ready"
    gopher.submit(task(TaskType.DELETE, stub(gone)))
    assert gopher.wait_idle(BOUND)
    assert (folder / "config.json").is_file()
    assert ("remove", None) in sink.calls_for(ModelRef.from_object(gone).configmap_key)


def test_restart_with_partial_files_of_another_uri_stages_the_new_one(sink, root, fake_hub, synthetic_model):
    from modelagent.agent.destination import read_owner

    publish(fake_hub, synthetic_model, "org/slow", shard_sizes=[1 << 20, 8 << 20], seed=1)
    publish(fake_hub, synthetic_model, "org/b", shard_sizes=[1 << 20], seed=2)
    fake_hub.throttle(256 << 10, server="cdn")
    old = model("m", "hf://org/slow")
    key = ModelRef.from_object(old).configmap_key
    first = Gopher(sink, models_root=root, endpoint=fake_hub.url, progress_interval=0.05).start()
    first.submit(task(TaskType.DOWNLOAD, old))
    wait_for(lambda: any(c[0] == "progress" and c[1]["completedBytes"] > 0 for c in sink.calls_for(key)),
             "first download running")
    assert first.stop(timeout=10)
    dest = root / "basemodels" / "team" / "m"
    owner = read_owner(dest)
    assert owner is not None and owner.storage_uri == "hf://org/slow" and not owner.complete
    assert any("00002" in p.name for p in dest.iterdir()), "no partial files of the first URI to mix with"

    fake_hub.throttle(None)
    second = Gopher(sink, models_root=root, endpoint=fake_hub.url).start()
    try:
        second.submit(task(TaskType.DOWNLOAD, model("m", "hf://org/b")))
        assert second.wait_idle(BOUND)
    finally:
        second.stop()
    assert sink.status(key) == "Ready"
    on_disk = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() and ".modelagent" not in p.parts)
    assert on_disk == sorted(fake_hub.files("org/b", "main"))
    assert sorted(p.name for p in dest.parent.iterdir()) == ["m"]
    owner = read_owner(dest)
    assert owner is not None and owner.storage_uri == "hf://org/b" and owner.complete
    assert owner.commit == fake_hub.commit_sha("org/b")


def test_metrics_and_phases_of_a_successful_download(make_gopher, sink, root, fake_hub, synthetic_model):
    files = publish(fake_hub, synthetic_model, "org/m", shard_sizes=[2 << 20, 2 << 20])
    fake_hub.throttle(4 << 20, server="cdn")
    fake_hub.rate_limit(2, retry_after=1, server="cdn")  # retried by the engine: the download still succeeds
    metrics = Metrics()
    gopher = make_gopher(metrics=metrics)
    obj = model("m", "hf://org/m")
    key = ModelRef.from_object(obj).configmap_key

    def phases_so_far() -> list[str]:
        return [c[1]["phase"] for c in sink.calls_for(key) if c[0] == "progress" and c[1] is not None]

    # "Downloading" comes from the engine's progress polls (every 0.5 s): hold the first file answer until one
    # was written, so a progress thread starved for the download's few seconds cannot leave it out.
    fake_hub.on_request(lambda _r: wait_for(lambda: "Downloading" in phases_so_far(), "a Downloading progress"),
                        server="cdn")
    gopher.submit(task(TaskType.DOWNLOAD, obj))
    assert gopher.wait_idle(BOUND)
    assert sink.status(key) == "Ready"
    text = metrics.exposition()
    who = {"model_type": "BaseModel", "namespace": "team", "name": "m"}
    assert metric(text, "model_agent_verifications_total", result="success", **who) == 1
    assert metric(text, "model_agent_verifications_total", result="failure", **who) == 0
    assert metric(text, "model_agent_verification_duration_seconds_count") == 1
    assert metric(text, "model_agent_rate_limit_total", **who) == 2
    assert metric(text, "model_agent_rate_limit_wait_seconds_count", **who) == 2
    assert metric(text, "model_agent_download_bytes_total", **who) == sum(p.stat().st_size for p in files.values())
    assert metric(text, "model_agent_md5_checksum_failed_total", **who) == 0
    for phase in ("queue", "transfer", "verify", "parse"):
        assert metric(text, "model_agent_phase_duration_seconds_count", phase=phase) == 1, phase

    phases = phases_so_far()
    assert phases[0] == "Scanning" and phases[-1] == "Finalizing" and "Downloading" in phases
    assert phases.index("Finalizing") > max(i for i, p in enumerate(phases) if p == "Downloading")
    final = next(c[1] for c in reversed(sink.calls_for(key)) if c[0] == "progress")
    assert final["completedBytes"] == final["totalBytes"] > 0


def test_verification_failure_is_counted(make_gopher, sink, fake_hub, synthetic_model):
    files = publish(fake_hub, synthetic_model, "org/bad", shard_sizes=[1 << 20])
    fake_hub.corrupt_bytes(0, count=50, server="cdn")
    metrics = Metrics()
    gopher = make_gopher(metrics=metrics, download_retry=1)
    obj = model("bad", "hf://org/bad")
    key = ModelRef.from_object(obj).configmap_key
    gopher.submit(task(TaskType.DOWNLOAD, obj))
    assert gopher.wait_idle(BOUND)
    assert sink.status(key) == "Failed"
    assert "digest" in sink.entries[key]["reason"]
    text = metrics.exposition()
    who = {"model_type": "BaseModel", "namespace": "team", "name": "bad"}
    assert metric(text, "model_agent_verifications_total", result="failure", **who) == 1
    assert metric(text, "model_agent_verifications_total", result="success", **who) == 0
    assert metric(text, "model_agent_md5_checksum_failed_total", **who) == 0  # sha256, not MD5
    assert metric(text, "model_agent_download_failures_by_reason_total", reason="verification") == 1
    assert metric(text, "model_agent_download_bytes_total", **who) >= 2 * files["model.safetensors"].stat().st_size


def test_md5_failures_are_told_apart():
    from modelagent._core import DownloadError, VerificationError
    from modelagent.agent.gopher import is_md5_failure

    assert is_md5_failure(VerificationError("w.bin: content does not match its md5 digest: expected a, got b"))
    assert is_md5_failure(VerificationError("w.bin: content does not match its md5-multipart digest: expected a"))
    assert not is_md5_failure(VerificationError("w.bin: content does not match its sha256 digest: expected a"))
    assert not is_md5_failure(DownloadError("w.bin: content does not match its md5 digest"))


def test_transfer_meter_counts_growth_once():
    from types import SimpleNamespace

    from modelagent.agent.gopher import TransferMeter

    metrics = Metrics()
    ref = ModelRef("ClusterBaseModel", None, "c")
    reported: list[str] = []
    meter = TransferMeter(metrics, ref, lambda snap, phase: reported.append(phase))

    def snap(fetched: int, hits: int, waited: float, total: int = 100) -> Any:
        return SimpleNamespace(bytes_fetched=fetched, bytes_done=fetched, bytes_total=total, rate_limited=hits,
                               rate_limit_wait_seconds=waited, started=total > 0, elapsed=1.0)

    meter.update(snap(0, 0, 0.0, total=0))
    meter.update(snap(40, 1, 3.0))
    meter.update(snap(40, 1, 3.0))
    assert meter.bytes_complete_at is None and meter.verify_tail(1e9) == 0.0  # bytes still arriving
    meter.finish(snap(100, 3, 13.0), True)
    assert meter.bytes_complete_at is not None
    assert meter.verify_tail(meter.bytes_complete_at + 2.0) == 2.0  # last byte → download returned
    text = metrics.exposition()
    who = {"model_type": "ClusterBaseModel", "namespace": "", "name": "c"}
    assert metric(text, "model_agent_download_bytes_total", **who) == 100
    assert metric(text, "model_agent_rate_limit_total", **who) == 3
    assert metric(text, "model_agent_rate_limit_wait_seconds_sum", **who) == 13.0
    assert reported == ["Scanning", "Downloading", "Downloading"]
