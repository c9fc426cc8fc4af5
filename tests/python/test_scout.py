"""Tests of the Scout (the Kubernetes model source): watch events → Gopher tasks.

Two layers: the decision table driven through a hand-fed informer double (every transition, no threads
involved in the decisions), and end-to-end runs through the real ``kubernetes`` client against the fake
API server with the real :class:`modelagent.informer.Informer` (start-up clean-up, node label changes,
410 re-list, no-op updates). A recording ``submit`` stands in for the Gopher.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from modelagent import ModelEntry
from modelagent.agent.model_ref import ModelRef
from modelagent.agent.scout import Scout, download_changes, model_label_refs
from modelagent.agent.tasks import GopherTask, TaskType
from modelagent.testing.kube_api import FakeKubeAPI
from modelagent.testing.kube_fixtures import fake_kube_factory  # noqa: F401 - fixture

NODE = "node-1"
WAIT = 20.0


# ------------------------------------------------------------------------------------------------ helpers


class Recorder:
    """A non-blocking submit function that records tasks and lets a test wait for them."""

    def __init__(self) -> None:
        self.tasks: list[GopherTask] = []
        self._cond = threading.Condition()

    def __call__(self, task: GopherTask) -> None:
        with self._cond:
            self.tasks.append(task)
            self._cond.notify_all()

    def summary(self) -> list[tuple[str, str]]:
        with self._cond:
            return [(task.type.value, task.ref.configmap_key) for task in self.tasks]

    def take(self) -> list[tuple[str, str]]:
        with self._cond:
            out = [(task.type.value, task.ref.configmap_key) for task in self.tasks]
            self.tasks.clear()
            return out

    def wait_for(self, predicate: Callable[[list[tuple[str, str]]], bool], timeout: float = WAIT) -> None:
        with self._cond:
            ok = self._cond.wait_for(
                lambda: predicate([(t.type.value, t.ref.configmap_key) for t in self.tasks]), timeout)
        assert ok, f"tasks never matched; got {self.summary()}"

    def wait_for_task(self, task: tuple[str, str], timeout: float = WAIT) -> None:
        self.wait_for(lambda tasks: task in tasks, timeout)


class FakeSink:
    """Only what the Scout reads from a status sink: the entries it already holds."""

    def __init__(self, entries: Mapping[str, str] | None = None) -> None:
        self.entries = {key: ModelEntry(key.rsplit(".", 1)[-1], status) for key, status in (entries or {}).items()}

    def known(self) -> dict[str, ModelEntry]:
        return dict(self.entries)


class ManualInformer:
    """An informer double with the real one's surface; the test feeds its events."""

    def __init__(self, kind: str, objects: dict[tuple[str, str | None, str], dict[str, Any]]) -> None:
        self.kind = kind
        self.objects = objects
        self.handlers: dict[str, Callable[..., None]] = {}
        self.synced = False
        self.started = False
        self.stopped = False

    def add_handlers(self, *, on_add: Callable[..., None], on_update: Callable[..., None],
                     on_delete: Callable[..., None]) -> None:
        self.handlers = {"add": on_add, "update": on_update, "delete": on_delete}

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def has_synced(self) -> bool:
        return self.synced

    def get(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        obj = self.objects.get((self.kind, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        if not self.synced and timeout:
            threading.Event().wait(min(timeout, 0.01))
        return self.synced


class Harness:
    """A Scout over three manual informers."""

    def __init__(self, sink: FakeSink | None = None) -> None:
        self.recorder = Recorder()
        self.informers: dict[str, ManualInformer] = {}
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.node: dict[str, Any] | None = None

        def factory(api_client: Any, kind: str, node_name: str) -> ManualInformer:
            assert node_name == NODE
            self.informers[kind] = ManualInformer(kind, self.objects)
            return self.informers[kind]

        self.scout = Scout(object(), NODE, self.recorder, namespace="ome", sink=sink, informer_factory=factory)
        self.scout.start()

    def sync(self, node_labels: dict[str, str] | None = None) -> None:
        if node_labels is not None:
            self.set_node(node_labels)
        for informer in self.informers.values():
            informer.synced = True
        assert self.scout.wait_until_ready(WAIT)

    def set_node(self, labels: dict[str, str]) -> None:
        new = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": dict(labels)}}
        old, self.node = self.node, new
        if old is None:
            self.informers["Node"].handlers["add"](new)
        else:
            self.informers["Node"].handlers["update"](old, new)

    def _key(self, obj: Mapping[str, Any]) -> tuple[str, str | None, str]:
        meta = obj["metadata"]
        return (obj["kind"], meta.get("namespace"), meta["name"])

    def apply(self, obj: dict[str, Any]) -> None:
        obj = copy.deepcopy(obj)
        informer = self.informers[obj["kind"]]
        old = self.objects.get(self._key(obj))
        self.objects[self._key(obj)] = obj
        if old is None:
            informer.handlers["add"](obj)
        else:
            informer.handlers["update"](old, obj)

    def remove(self, obj: dict[str, Any]) -> None:
        stored = self.objects.pop(self._key(obj))
        self.informers[obj["kind"]].handlers["delete"](stored)


_uids = iter(range(1, 1_000_000))


def model(name: str, uri: str = "hf://org/model", *, namespace: str | None = "team",
          selector: dict[str, str] | None = None, uid: str | None = None, **spec: Any) -> dict[str, Any]:
    """A BaseModel (``namespace`` set) or ClusterBaseModel (``namespace=None``) object."""
    storage: dict[str, Any] = {"storageUri": uri}
    if selector is not None:
        storage["nodeSelector"] = selector
    metadata: dict[str, Any] = {"name": name, "uid": uid or f"uid-{next(_uids)}"}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": "ome.io/v1beta1", "kind": "BaseModel" if namespace else "ClusterBaseModel",
            "metadata": metadata, "spec": {"storage": storage, **spec}}


def key(obj: Mapping[str, Any]) -> str:
    return ModelRef.from_object(obj).configmap_key


def changed(obj: dict[str, Any], mutate: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    new = copy.deepcopy(obj)
    mutate(new)
    return new


def terminating(obj: dict[str, Any]) -> dict[str, Any]:
    return changed(obj, lambda o: o["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z",
                                                         finalizers=["basemodels.ome.io/finalizer"]))


GPU = {"gpu": "a100"}


@pytest.fixture
def ready() -> Harness:
    harness = Harness()
    harness.sync(node_labels=GPU)
    return harness


# ------------------------------------------------------------------------------------------ decision table


def test_add_eligible_downloads_and_ineligible_does_nothing(ready: Harness) -> None:
    mine, other, cbm = model("mine", selector=GPU), model("other", selector={"gpu": "h100"}), model("c", namespace=None)
    for obj in (mine, other, cbm):
        ready.apply(obj)
    assert ready.recorder.take() == [("Download", key(mine)), ("Download", "clusterbasemodel.c")]
    task_obj = ready.recorder.tasks
    assert task_obj == []


def test_download_task_carries_a_private_copy_of_the_object(ready: Harness) -> None:
    obj = model("m", uid="abc")
    ready.apply(obj)
    (task,) = ready.recorder.tasks
    assert task.type is TaskType.DOWNLOAD
    assert task.ref == ModelRef("BaseModel", "team", "m", "abc")
    assert task.obj["spec"]["storage"]["storageUri"] == "hf://org/model"
    stored = ready.objects[("BaseModel", "team", "m")]
    stored["spec"]["storage"]["storageUri"] = "hf://mutated/later"
    assert task.obj["spec"]["storage"]["storageUri"] == "hf://org/model"


@pytest.mark.parametrize("label", ["eligible→ineligible", "ineligible→eligible"])
def test_eligibility_transitions_on_model_update(ready: Harness, label: str) -> None:
    obj = model("m", selector=GPU if label.startswith("eligible") else {"gpu": "h100"})
    ready.apply(obj)
    ready.recorder.take()
    flipped = changed(obj, lambda o: o["spec"]["storage"].update(
        nodeSelector={"gpu": "h100"} if label.startswith("eligible") else GPU))
    ready.apply(flipped)
    assert ready.recorder.take() == [("Delete" if label.startswith("eligible") else "Download", key(obj))]


def affinity(*expressions: dict[str, Any], fields: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    term: dict[str, Any] = {"matchExpressions": list(expressions)}
    if fields:
        term["matchFields"] = fields
    return {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}


# OME scout_test cases as the Scout sees them, on a node labelled gpu-model=a10, memory=32Gi, cpu=8 (and gpu=a100);
# NotIn on a missing label matches, as in the scheduler (OME defect 19).
@pytest.mark.parametrize(("placement", "downloads"), [
    ({}, True),
    ({"nodeSelector": {"gpu-model": "a10"}}, True),
    ({"nodeSelector": {"gpu-model": "h100"}}, False),
    ({"nodeAffinity": affinity({"key": "gpu-model", "operator": "In", "values": ["a10", "t4"]})}, True),
    ({"nodeAffinity": affinity({"key": "gpu-model", "operator": "NotIn", "values": ["a10"]})}, False),
    ({"nodeAffinity": affinity({"key": "zone", "operator": "NotIn", "values": ["z1"]})}, True),
    ({"nodeAffinity": affinity({"key": "zone", "operator": "Exists"})}, False),
    ({"nodeAffinity": affinity({"key": "zone", "operator": "DoesNotExist"})}, True),
    ({"nodeAffinity": affinity({"key": "cpu", "operator": "Gt", "values": ["4"]})}, True),
    ({"nodeAffinity": affinity({"key": "cpu", "operator": "Lt", "values": ["4"]})}, False),
    ({"nodeAffinity": affinity(fields=[{"key": "metadata.name", "operator": "In", "values": [NODE]}])}, True),
    ({"nodeAffinity": affinity(fields=[{"key": "metadata.name", "operator": "In", "values": ["other"]}])}, False),
    ({"nodeSelector": {"gpu-model": "a10"},
      "nodeAffinity": affinity({"key": "memory", "operator": "In", "values": ["32Gi"]})}, True),
    ({"nodeSelector": {"gpu-model": "t4"},
      "nodeAffinity": affinity({"key": "memory", "operator": "In", "values": ["32Gi"]})}, False),
])
def test_placement_decides_the_download(placement: dict[str, Any], downloads: bool) -> None:
    harness = Harness()
    harness.sync(node_labels={"gpu-model": "a10", "memory": "32Gi", "cpu": "8", **GPU})
    obj = model("m")
    obj["spec"]["storage"].update(copy.deepcopy(placement))
    harness.apply(obj)
    assert harness.recorder.take() == ([("Download", key(obj))] if downloads else [])


def test_pvc_models_are_never_downloaded(ready: Harness) -> None:
    ready.apply(model("on-pvc", "pvc://claim/models/llama"))
    assert ready.recorder.take() == []


def test_terminating_sends_one_delete_then_nothing(ready: Harness) -> None:
    obj = model("m")
    ready.apply(obj)
    ready.recorder.take()
    dying = terminating(obj)
    ready.apply(dying)
    assert ready.recorder.take() == [("Delete", key(obj))]
    # The controller keeps writing status while it waits for the agents: no Delete storm (OME defect 17).
    ready.apply(changed(dying, lambda o: o.update(status={"state": "Deleting"})))
    ready.apply(changed(dying, lambda o: o["metadata"].update(labels={"x": "y"})))
    ready.remove(dying)
    assert ready.recorder.take() == []


def test_terminating_model_this_node_never_had_gets_no_delete(ready: Harness) -> None:
    obj = model("m", selector={"gpu": "h100"})
    ready.apply(obj)
    ready.apply(terminating(obj))
    ready.remove(obj)
    assert ready.recorder.take() == []


def test_add_of_a_terminating_model(ready: Harness) -> None:
    ready.apply(terminating(model("fresh")))
    assert ready.recorder.take() == [], "no state here: nothing to delete, and certainly no download"


def test_delete_event_only_where_the_model_was(ready: Harness) -> None:
    mine, other = model("mine"), model("other", selector={"gpu": "h100"})
    ready.apply(mine)
    ready.apply(other)
    ready.recorder.take()
    ready.remove(mine)
    ready.remove(other)
    assert ready.recorder.take() == [("Delete", key(mine))]


@pytest.mark.parametrize(("field", "mutate"), [
    ("spec.storage.storageUri", lambda o: o["spec"]["storage"].update(storageUri="hf://org/other")),
    ("spec.storage.storageUri", lambda o: o["spec"]["storage"].update(storageUri="hf://org/model@v2")),
    ("spec.storage.path", lambda o: o["spec"]["storage"].update(path="/mnt/models/elsewhere")),
    ("spec.storage.key", lambda o: o["spec"]["storage"].update(key="hf-secret")),
    ("spec.storage.parameters", lambda o: o["spec"]["storage"].update(parameters={"secretKey": "tok"})),
    ("spec.additionalMetadata.type", lambda o: o["spec"].update(additionalMetadata={"type": "Draft"})),
    ("spec.modelFormat.name", lambda o: o["spec"]["modelFormat"].update(name="tensorrtllm")),
])
def test_download_relevant_changes_override(ready: Harness, field: str, mutate: Callable[[dict], None]) -> None:
    obj = model("m", modelFormat={"name": "safetensors"})
    ready.apply(obj)
    ready.recorder.take()
    new = changed(obj, mutate)
    assert download_changes(obj, new) == [field]
    ready.apply(new)
    assert ready.recorder.take() == [("DownloadOverride", key(obj))]
    ready.apply(copy.deepcopy(new))
    assert ready.recorder.take() == [], "the same object again is not a change"


BACKFILL = {
    "modelType": "llama", "modelArchitecture": "LlamaForCausalLM",
    "modelFramework": {"name": "transformers", "version": "4.43.0"},
    "modelFormat": {"name": "safetensors", "version": "1.0.0"}, "modelParameterSize": "8.03B",
    "maxTokens": 131072, "modelCapabilities": ["CHAT"], "quantization": "fp8",
    "modelConfiguration": {"architecture": "LlamaForCausalLM", "context_length": 131072},
}


@pytest.mark.parametrize("what", ["labels", "annotations", "status", "finalizers", "backfill",
                                  "modelFormat version", "unrelated spec field"])
def test_changes_that_do_not_touch_the_download_do_nothing(ready: Harness, what: str) -> None:
    obj = model("m")
    ready.apply(obj)
    ready.recorder.take()
    mutate: dict[str, Callable[[dict], None]] = {
        "labels": lambda o: o["metadata"].update(labels={"team": "a"}),
        "annotations": lambda o: o["metadata"].update(annotations={"note": "b"}),
        "status": lambda o: o.update(status={"state": "Ready", "nodesReady": [NODE]}),
        "finalizers": lambda o: o["metadata"].update(finalizers=["basemodels.ome.io/finalizer"]),
        "backfill": lambda o: o["spec"].update(copy.deepcopy(BACKFILL)),
        "modelFormat version": lambda o: o["spec"].update(modelFormat={"name": "", "version": "2"}),
        "unrelated spec field": lambda o: o["spec"].update(displayName="Llama"),
    }
    new = changed(obj, mutate[what])
    assert download_changes(obj, new) == []
    ready.apply(new)
    assert ready.recorder.take() == []


def test_backfill_after_format_was_filled_is_still_nothing(ready: Harness) -> None:
    obj = model("m")
    ready.apply(obj)
    filled = changed(obj, lambda o: o["spec"].update(copy.deepcopy(BACKFILL)))
    ready.apply(filled)
    refilled = changed(filled, lambda o: o["spec"]["modelFormat"].update(version="1.0.1"))
    ready.apply(refilled)
    assert ready.recorder.take() == [("Download", key(obj))]


def test_node_label_change_reevaluates_every_model(ready: Harness) -> None:
    a100, h100, anywhere = model("a", selector=GPU), model("h", selector={"gpu": "h100"}), model("any")
    cbm = model("c", namespace=None, selector={"gpu": "h100"})
    for obj in (a100, h100, anywhere, cbm):
        ready.apply(obj)
    assert sorted(ready.recorder.take()) == [("Download", key(a100)), ("Download", key(anywhere))]
    ready.apply(changed(h100, lambda o: o["metadata"].update(annotations={"ome.oracle.com/skip-config-parsing": "true"})))
    ready.set_node({"gpu": "h100"})
    downloads = {t.ref.name: t.obj for t in ready.recorder.tasks if t.type is TaskType.DOWNLOAD}
    assert sorted(ready.recorder.take()) == sorted([("Delete", key(a100)), ("Download", key(h100)),
                                                   ("Download", "clusterbasemodel.c")])
    # The task carries the whole current object (annotations included), not the Scout's slim copy.
    assert downloads["h"]["metadata"]["annotations"] == {"ome.oracle.com/skip-config-parsing": "true"}
    ready.set_node({"gpu": "h100", "zone": "z1"})
    assert ready.recorder.take() == [], "a label change that flips nothing emits nothing"


def test_the_agents_own_model_labels_do_not_trigger_reevaluation(ready: Harness,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import modelagent.agent.scout as scout_module

    obj = model("m", selector=GPU)
    ready.apply(obj)
    ready.recorder.take()
    calls: list[str] = []
    original = scout_module.is_eligible

    def counting(model_obj: Any, node: Any) -> Any:
        calls.append(model_obj["metadata"]["name"])
        return original(model_obj, node)

    monkeypatch.setattr(scout_module, "is_eligible", counting)
    ready.set_node({**GPU, ModelRef.from_object(obj).label_key: "Ready"})
    assert calls == [] and ready.recorder.take() == []
    ready.set_node({**GPU, "zone": "z1", ModelRef.from_object(obj).label_key: "Ready"})
    assert calls == ["m"], "a placement label change does re-evaluate"


def test_recreated_under_the_same_name_deletes_the_old_then_downloads_the_new(ready: Harness) -> None:
    old = model("m", uid="old")
    ready.apply(old)
    ready.recorder.take()
    new = changed(old, lambda o: o["metadata"].update(uid="new"))
    ready.apply(new)
    tasks = ready.recorder.tasks
    assert [(t.type.value, t.ref.uid) for t in tasks] == [("Delete", "old"), ("Download", "new")]


def test_delete_of_an_older_incarnation_is_ignored(ready: Harness) -> None:
    new = model("m", uid="new")
    ready.apply(new)
    ready.recorder.take()
    ready.informers["BaseModel"].handlers["delete"](changed(new, lambda o: o["metadata"].update(uid="old")))
    assert ready.recorder.take() == []
    assert ready.scout.live_keys() == {key(new)}


def test_malformed_objects_are_ignored_without_disturbing_others(ready: Harness) -> None:
    ready.informers["BaseModel"].handlers["add"]({"kind": "BaseModel", "metadata": {"name": "x"}})
    ready.informers["BaseModel"].handlers["add"]({"kind": "BaseModel", "metadata": "oops"})
    ready.apply(model("fine", selector="not-a-map"))  # type: ignore[arg-type]
    good = model("good")
    ready.apply(good)
    assert ready.recorder.take() == [("Download", key(good))]


def test_a_failing_submit_does_not_break_the_scout(ready: Harness) -> None:
    calls: list[GopherTask] = []

    def flaky(task: GopherTask) -> None:
        calls.append(task)
        if len(calls) == 1:
            raise RuntimeError("queue closed")

    ready.scout._submit = flaky
    ready.apply(model("a"))
    ready.apply(model("b"))
    assert [t.ref.name for t in calls] == ["a", "b"]


def test_nothing_is_submitted_after_stop(ready: Harness) -> None:
    ready.scout.stop()
    assert all(informer.stopped for informer in ready.informers.values())
    ready.apply(model("late"))
    assert ready.recorder.take() == []


# ----------------------------------------------------------------------------------------------- start-up


def test_startup_waits_for_every_cache_and_the_node() -> None:
    harness = Harness()
    harness.apply(model("early"))
    for kind in ("BaseModel", "ClusterBaseModel"):
        harness.informers[kind].synced = True
    assert not harness.scout.wait_until_ready(0.2)
    harness.informers["Node"].synced = True
    assert not harness.scout.wait_until_ready(0.2), "synced, but the node does not exist yet"
    assert harness.scout.live_keys() is None
    assert harness.recorder.take() == []
    harness.set_node(GPU)
    assert harness.scout.wait_until_ready(WAIT)
    assert harness.recorder.take() == [("Download", "team.basemodel.early")]
    assert harness.scout.live_keys() == {"team.basemodel.early"}


def test_startup_cleans_up_what_deleted_models_left_behind() -> None:
    sink = FakeSink({
        "team.basemodel.kept": "Ready",           # still exists and still eligible → Download (verify/resume)
        "team.basemodel.moved": "Ready",          # exists, no longer for this node → Delete
        "team.basemodel.gone": "Updating",        # deleted while the agent was down → Delete
        "clusterbasemodel.gone-too": "Failed",    # same for a ClusterBaseModel
        "team.basemodel.dying": "Ready",          # terminating → Delete
    })
    harness = Harness(sink)
    kept, moved = model("kept"), model("moved", selector={"gpu": "h100"})
    dying, dying_unknown = terminating(model("dying")), terminating(model("stranger"))
    for obj in (kept, moved, dying, dying_unknown):
        harness.apply(obj)
    stale_label = ModelRef("ClusterBaseModel", None, "label-only").label_key
    harness.sync(node_labels={**GPU, stale_label: "Ready", "models.ome.io/not-a-model": "x"})
    assert sorted(harness.recorder.summary()) == sorted([
        ("Download", "team.basemodel.kept"),
        ("Delete", "team.basemodel.moved"),
        ("Delete", "team.basemodel.dying"),
        ("Delete", "team.basemodel.gone"),
        ("Delete", "clusterbasemodel.gone-too"),
        ("Delete", "clusterbasemodel.label-only"),
    ])
    gone = next(t for t in harness.recorder.tasks if t.ref.configmap_key == "team.basemodel.gone")
    assert gone.ref == ModelRef("BaseModel", "team", "gone")
    assert gone.obj == {"apiVersion": "ome.io/v1beta1", "kind": "BaseModel",
                        "metadata": {"name": "gone", "namespace": "team"}}
    assert harness.scout.live_keys() == {"team.basemodel.kept"}
    harness.recorder.take()
    harness.remove(dying)
    harness.remove(moved)
    assert harness.recorder.take() == [], "each leftover is cleaned up once"


def test_startup_with_a_sink_that_fails_still_starts() -> None:
    class Broken:
        def known(self) -> dict[str, ModelEntry]:
            raise OSError("ConfigMap unreadable")

    harness = Harness(Broken())  # type: ignore[arg-type]
    harness.apply(model("m"))
    harness.sync(node_labels={})
    assert harness.recorder.take() == [("Download", "team.basemodel.m")]


def test_model_label_refs_reads_back_only_exact_model_labels() -> None:
    bm = ModelRef("BaseModel", "default", "llama-3-8b")
    cbm = ModelRef("ClusterBaseModel", None, "llama")
    long = ModelRef("ClusterBaseModel", None, "meta-llama-3-1-405b-instruct-fp8-dynamic")
    labels = {bm.label_key: "Ready", cbm.label_key: "Failed", long.label_key: "Ready",
              "models.ome.io/x": "y", "kubernetes.io/hostname": NODE, "models.ome.io/.basemodel.x": "Ready"}
    truncated = ModelRef("ClusterBaseModel", None, long.label_key.removeprefix("models.ome.io/clusterbasemodel."))
    assert model_label_refs(labels) == {bm.label_key: bm, cbm.label_key: cbm, long.label_key: truncated}
    assert truncated.label_key == long.label_key and truncated.configmap_key != long.configmap_key


def test_a_truncated_label_of_a_live_model_is_not_mistaken_for_a_stale_one() -> None:
    name = "meta-llama-3-1-405b-instruct-fp8-dynamic"
    harness = Harness(FakeSink({f"clusterbasemodel.{name}": "Ready"}))
    harness.apply(model(name, namespace=None))
    harness.sync(node_labels={ModelRef("ClusterBaseModel", None, name).label_key: "Ready"})
    assert harness.recorder.take() == [("Download", f"clusterbasemodel.{name}")]


def test_scout_requires_a_node_name() -> None:
    with pytest.raises(ValueError, match="node name"):
        Scout(object(), "", lambda task: None)


# ------------------------------------------------------------------ end to end: real client, fake API server

E2E_CONFIG: dict[str, Any] = {"watch_timeout_seconds": 60, "read_timeout": 30.0, "connect_timeout": 5.0,
                              "list_read_timeout": 30.0, "backoff_initial": 0.05, "backoff_max": 0.2,
                              "stop_timeout": 5.0}


def cr(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` without the uid (the server assigns it)."""
    out = copy.deepcopy(obj)
    out["metadata"].pop("uid", None)
    return out


@pytest.fixture
def bare_kube(fake_kube_factory: Callable[..., FakeKubeAPI]) -> FakeKubeAPI:  # noqa: F811
    """A fake API server with the namespaces ome and team and no Node yet."""
    server = fake_kube_factory()
    server.add_namespace("ome")
    server.add_namespace("team")
    return server


@pytest.fixture
def kube(bare_kube: FakeKubeAPI) -> FakeKubeAPI:
    """``bare_kube`` with this agent's node (gpu=a100) and another one."""
    bare_kube.add_node(NODE, labels={"kubernetes.io/hostname": NODE, **GPU})
    bare_kube.add_node("node-2", labels={"gpu": "h100"})
    return bare_kube


@pytest.fixture
def api(bare_kube: FakeKubeAPI) -> Iterator[Any]:
    client = bare_kube.api_client()
    yield client
    client.close()


@pytest.fixture
def run_scout(bare_kube: FakeKubeAPI, api: Any) -> Iterator[Callable[..., tuple[Scout, Recorder]]]:
    """Start Scouts on the real informers against ``bare_kube``; all stopped after the test."""
    from modelagent.agent.scout import make_informer_factory
    from modelagent.informer import InformerConfig

    scouts: list[Scout] = []

    def start(sink: FakeSink | None = None) -> tuple[Scout, Recorder]:
        recorder = Recorder()
        scout = Scout(api, NODE, recorder, namespace="ome", sink=sink,
                      informer_factory=make_informer_factory(InformerConfig(**E2E_CONFIG)))
        scouts.append(scout)
        scout.start()
        return scout, recorder

    yield start
    for scout in scouts:
        scout.stop()


def marker_download(kube: Any, recorder: Recorder, name: str, namespace: str | None = "team") -> None:
    """Create an eligible model and wait for its Download: every earlier event of the same informer has
    been handled by then (one informer delivers in order), so what was recorded before is complete."""
    kube.create("basemodels" if namespace else "clusterbasemodels", cr(model(name, namespace=namespace)),
                namespace=namespace)
    key = f"{namespace}.basemodel.{name}" if namespace else f"clusterbasemodel.{name}"
    recorder.wait_for_task(("Download", key))


def test_e2e_watch_events_become_tasks(kube: FakeKubeAPI, run_scout: Any) -> None:
    kube.create("basemodels", cr(model("a100", selector=GPU)), namespace="team")
    kube.create("basemodels", cr(model("h100", selector={"gpu": "h100"})), namespace="team")
    kube.create("clusterbasemodels", cr(model("shared", namespace=None)))
    scout, recorder = run_scout()
    assert scout.wait_until_ready(WAIT)
    recorder.wait_for(lambda tasks: len(tasks) >= 2)
    assert sorted(recorder.take()) == [("Download", "clusterbasemodel.shared"), ("Download", "team.basemodel.a100")]
    assert scout.live_keys() == {"clusterbasemodel.shared", "team.basemodel.a100"}
    (uid,) = [o["metadata"]["uid"] for o in kube.list_objects("basemodels", "team") if o["metadata"]["name"] == "a100"]

    # Status, labels, annotations and the agent's own spec back-fill: no task.
    kube.update_status("basemodels", {**kube.get("basemodels", "a100", "team"),
                                      "status": {"state": "Ready", "nodesReady": [NODE]}}, namespace="team")
    kube.patch("basemodels", "a100", {"metadata": {"labels": {"x": "1"}, "annotations": {"y": "2"}}}, namespace="team")
    kube.patch("basemodels", "a100", {"spec": copy.deepcopy(BACKFILL)}, namespace="team")
    marker_download(kube, recorder, "marker-1")
    assert recorder.take() == [("Download", "team.basemodel.marker-1")]

    # A new revision: re-download.
    kube.patch("basemodels", "a100", {"spec": {"storage": {"storageUri": "hf://org/model@v2"}}}, namespace="team")
    recorder.wait_for_task(("DownloadOverride", "team.basemodel.a100"))
    (task,) = recorder.tasks
    assert task.ref.uid == uid and task.obj["spec"]["storage"]["storageUri"] == "hf://org/model@v2"
    recorder.take()

    # Deleting with a finalizer: one Delete when it starts terminating, nothing on later writes or removal.
    kube.patch("basemodels", "a100", {"metadata": {"finalizers": ["basemodels.ome.io/finalizer"]}}, namespace="team")
    kube.delete("basemodels", "a100", namespace="team")
    recorder.wait_for_task(("Delete", "team.basemodel.a100"))
    kube.update_status("basemodels", {**kube.get("basemodels", "a100", "team"), "status": {"state": "Deleting"}},
                       namespace="team")
    kube.patch("basemodels", "a100", {"metadata": {"finalizers": None}}, namespace="team")
    assert not kube.exists("basemodels", "a100", "team")
    # Deleting a model this node never had: nothing.
    kube.delete("basemodels", "h100", namespace="team")
    marker_download(kube, recorder, "marker-2")
    assert recorder.take() == [("Delete", "team.basemodel.a100"), ("Download", "team.basemodel.marker-2")]

    # A plain delete of a model this node has.
    kube.delete("clusterbasemodels", "shared")
    recorder.wait_for_task(("Delete", "clusterbasemodel.shared"))


def test_e2e_node_label_change_moves_models(kube: FakeKubeAPI, api: Any, run_scout: Any) -> None:
    from kubernetes import client

    kube.create("basemodels", cr(model("a100", selector=GPU)), namespace="team")
    kube.create("clusterbasemodels", cr(model("h100", namespace=None, selector={"gpu": "h100"})))
    scout, recorder = run_scout()
    assert scout.wait_until_ready(WAIT)
    recorder.wait_for_task(("Download", "team.basemodel.a100"))
    assert recorder.take() == [("Download", "team.basemodel.a100")]
    core = client.CoreV1Api(api)

    # The agent's own status label on the node is not a placement change; the gpu label is.
    own = ModelRef("BaseModel", "team", "a100").label_key.replace("/", "~1")
    core.patch_node(NODE, [{"op": "add", "path": f"/metadata/labels/{own}", "value": "Ready"}])
    core.patch_node(NODE, {"metadata": {"labels": {"gpu": "h100"}}})
    recorder.wait_for(lambda tasks: len(tasks) >= 2)
    assert sorted(recorder.take()) == [("Delete", "team.basemodel.a100"), ("Download", "clusterbasemodel.h100")]
    assert scout.live_keys() == {"clusterbasemodel.h100"}
    # Another node's labels are not ours.
    core.patch_node("node-2", {"metadata": {"labels": {"gpu": "a100"}}})
    core.patch_node(NODE, {"metadata": {"labels": {"gpu": "a100"}}})
    recorder.wait_for(lambda tasks: len(tasks) >= 2)
    assert sorted(recorder.take()) == [("Delete", "clusterbasemodel.h100"), ("Download", "team.basemodel.a100")]


def test_e2e_relist_after_410_delivers_a_missed_delete(kube: FakeKubeAPI, run_scout: Any) -> None:
    kube.create("basemodels", cr(model("doomed")), namespace="team")
    kube.create("basemodels", cr(model("kept")), namespace="team")
    scout, recorder = run_scout()
    assert scout.wait_until_ready(WAIT)
    recorder.wait_for(lambda tasks: len(tasks) >= 2)
    recorder.take()
    kube.wait_for_watches(3, timeout=WAIT)

    # The delete happens while the model watch hears nothing, and the history is compacted away: the
    # re-watch gets 410 and only the re-list can tell that "doomed" is gone.
    kube.silence_watches(path="basemodels")
    kube.delete("basemodels", "doomed", namespace="team")
    kube.compact()
    kube.drop_watches(path="basemodels")
    recorder.wait_for_task(("Delete", "team.basemodel.doomed"))
    assert len(kube.find_requests(verb="list", resource="basemodels")) >= 2
    marker_download(kube, recorder, "after")
    assert recorder.take() == [("Delete", "team.basemodel.doomed"), ("Download", "team.basemodel.after")]


def test_e2e_startup_cleans_up_and_handles_terminating_models(kube: FakeKubeAPI, run_scout: Any) -> None:
    for name in ("dying", "dying-unknown"):
        kube.create("basemodels", cr(model(name)) | {"metadata": {"name": name, "namespace": "team",
                                                                 "finalizers": ["basemodels.ome.io/finalizer"]}},
                    namespace="team")
        kube.delete("basemodels", name, namespace="team")
    kube.create("basemodels", cr(model("kept")), namespace="team")
    stale_label = ModelRef("ClusterBaseModel", None, "label-only").label_key
    kube.patch("nodes", NODE, {"metadata": {"labels": {stale_label: "Ready"}}})
    sink = FakeSink({"team.basemodel.kept": "Ready", "team.basemodel.dying": "Ready",
                     "team.basemodel.gone": "Updating", "not-a-model-key": "Ready"})
    scout, recorder = run_scout(sink)
    assert scout.wait_until_ready(WAIT)
    assert sorted(recorder.summary()) == sorted([
        ("Download", "team.basemodel.kept"), ("Delete", "team.basemodel.dying"),
        ("Delete", "team.basemodel.gone"), ("Delete", "clusterbasemodel.label-only")])
    assert scout.live_keys() == {"team.basemodel.kept"}
    recorder.take()
    # The controller's status writes on the terminating models bring no further Delete.
    for name in ("dying", "dying-unknown"):
        kube.update_status("basemodels", {**kube.get("basemodels", name, "team"), "status": {"state": "Deleting"}},
                           namespace="team")
    marker_download(kube, recorder, "marker")
    assert recorder.take() == [("Download", "team.basemodel.marker")]


def test_e2e_not_ready_until_the_node_exists(bare_kube: FakeKubeAPI, run_scout: Any) -> None:
    bare_kube.create("basemodels", cr(model("m")), namespace="team")
    scout, recorder = run_scout()
    bare_kube.wait_for_watches(3, timeout=WAIT)
    assert not scout.is_ready() and scout.live_keys() is None and recorder.summary() == []
    bare_kube.add_node(NODE, labels={})
    assert scout.wait_until_ready(WAIT)
    assert recorder.summary() == [("Download", "team.basemodel.m")]


def test_e2e_startup_reads_the_nodes_configmap_through_the_kubernetes_sink(kube: FakeKubeAPI, api: Any,
                                                                           run_scout: Any) -> None:
    from kubernetes import client
    from modelagent.agent.kubernetes_sink import KubernetesStatusSink

    kube.create("configmaps", {"metadata": {"name": NODE, "namespace": "ome",
                                            "labels": {"models.ome/basemodel-status": "true", "node": NODE}},
                               "data": {"team.basemodel.kept": '{"name":"kept","status":"Ready"}',
                                        "team.basemodel.gone": '{"name":"gone","status":"Ready"}'}},
                namespace="ome")
    # Another node's ConfigMap is not ours.
    kube.create("configmaps", {"metadata": {"name": "node-2", "namespace": "ome"},
                               "data": {"team.basemodel.elsewhere": '{"name":"elsewhere","status":"Ready"}'}},
                namespace="ome")
    kube.create("basemodels", cr(model("kept")), namespace="team")
    sink = KubernetesStatusSink(client.CoreV1Api(api), NODE, "ome")
    scout, recorder = run_scout(sink)
    assert scout.wait_until_ready(WAIT)
    assert sorted(recorder.summary()) == [("Delete", "team.basemodel.gone"), ("Download", "team.basemodel.kept")]


def test_instance_type_change_overrides_placed_tensorrtllm_models_only(ready: Harness) -> None:
    trt = model("trt", "oci://n/ns/b/models/o/llama-trt", modelFormat={"name": "tensorrtllm"})
    plain = model("plain", "oci://n/ns/b/models/o/llama")
    elsewhere = model("far", "oci://n/ns/b/models/o/x", selector={"gpu": "h100"}, modelFormat={"name": "tensorrtllm"})
    for obj in (trt, plain, elsewhere):
        ready.apply(obj)
    assert sorted(ready.recorder.take()) == sorted([("Download", key(trt)), ("Download", key(plain))])
    ready.set_node({**GPU, "node.kubernetes.io/instance-type": "BM.GPU.H100.8"})
    assert ready.recorder.take() == [("DownloadOverride", key(trt))]
    ready.set_node({**GPU, "node.kubernetes.io/instance-type": "BM.GPU.H100.8", "zone": "z1"})
    assert ready.recorder.take() == [], "another label changing is no new shape"
    ready.set_node({**GPU, "node.kubernetes.io/instance-type": "BM.GPU.A100-v2.8"})
    overrides = [t for t in ready.recorder.tasks if t.type is TaskType.DOWNLOAD_OVERRIDE]
    assert ready.recorder.take() == [("DownloadOverride", key(trt))]
    assert overrides[0].obj["spec"]["modelFormat"] == {"name": "tensorrtllm"}
