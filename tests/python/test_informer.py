"""The list+watch informer against the fake Kubernetes API server, through the official client.

Every wait is bounded (events are awaited with a timeout; nothing asserts on elapsed time).
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from modelagent.informer import Informer, InformerConfig, InformerError, strip_server_fields
from modelagent.testing.kube_api import FakeKubeAPI
from modelagent.testing.kube_fixtures import fake_kube, fake_kube_factory  # noqa: F401 - fixtures

WAIT = 15.0

FAST = InformerConfig(watch_timeout_seconds=60, read_timeout=30.0, connect_timeout=5.0, list_read_timeout=30.0,
                      page_size=500, backoff_initial=0.05, backoff_max=0.2, stop_timeout=5.0)


def base_model(name: str, namespace: str = "ome", uri: str = "hf://org/model", **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": "ome.io/v1beta1", "kind": "BaseModel",
            "metadata": {"name": name, "namespace": namespace, **metadata},
            "spec": {"storage": {"storageUri": uri}}}


def cluster_base_model(name: str) -> dict[str, Any]:
    return {"apiVersion": "ome.io/v1beta1", "kind": "ClusterBaseModel", "metadata": {"name": name},
            "spec": {"storage": {"storageUri": "hf://org/cluster"}}}


def eventually(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout`` seconds."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        pause.wait(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def name_of(obj: dict[str, Any]) -> str:
    return obj["metadata"]["name"]


class Recorder:
    """Collects handler calls and errors; tests wait on them with a timeout."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any, Any]] = []
        self.errors: list[InformerError] = []
        self.threads: set[str] = set()
        self._cond = threading.Condition()

    def _put(self, item: tuple[str, Any, Any]) -> None:
        with self._cond:
            self.threads.add(threading.current_thread().name)
            self.events.append(item)
            self._cond.notify_all()

    def on_add(self, obj: dict[str, Any]) -> None:
        self._put(("add", None, obj))

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self._put(("update", old, new))

    def on_delete(self, obj: dict[str, Any]) -> None:
        self._put(("delete", None, obj))

    def on_error(self, error: InformerError) -> None:
        with self._cond:
            self.errors.append(error)
            self._cond.notify_all()

    def handlers(self) -> dict[str, Callable[..., None]]:
        return {"on_add": self.on_add, "on_update": self.on_update, "on_delete": self.on_delete,
                "on_error": self.on_error}

    def summary(self) -> list[tuple[str, str]]:
        with self._cond:
            return [(kind, name_of(new)) for kind, _, new in self.events]

    def wait(self, predicate: Callable[[Recorder], bool], what: str, timeout: float = WAIT) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(f"timed out waiting for {what}; events {self.summary()}, "
                                     f"errors {[e.message for e in self.errors]}")

    def wait_event(self, kind: str, name: str) -> tuple[str, Any, Any]:
        self.wait(lambda r: any(k == kind and name_of(n) == name for k, _, n in r.events), f"{kind} {name}")
        with self._cond:
            return next(e for e in self.events if e[0] == kind and name_of(e[2]) == name)

    def wait_error(self, predicate: Callable[[InformerError], bool], what: str) -> InformerError:
        self.wait(lambda r: any(predicate(e) for e in r.errors), what)
        with self._cond:
            return next(e for e in self.errors if predicate(e))

    def clear(self) -> None:
        with self._cond:
            self.events.clear()
            self.errors.clear()


@pytest.fixture
def kube(fake_kube_factory: Callable[..., FakeKubeAPI]) -> FakeKubeAPI:  # noqa: F811
    server = fake_kube_factory(history_size=20, bookmark_interval=60.0)
    server.add_namespace("ome")
    server.add_namespace("team-a")
    return server


@pytest.fixture
def api(kube: FakeKubeAPI) -> Iterator[Any]:
    api_client = kube.api_client()
    yield api_client
    api_client.close()


@pytest.fixture
def started() -> Iterator[Callable[[Informer], Informer]]:
    """Start informers and make sure every one is stopped after the test."""
    informers: list[Informer] = []

    def start(informer: Informer) -> Informer:
        informers.append(informer)
        informer.start()
        return informer

    yield start
    for informer in informers:
        assert informer.stop(timeout=10), f"informer {informer.name} did not stop"


def watch_requests(kube: FakeKubeAPI, resource: str = "basemodels") -> list[Any]:
    return [r for r in kube.find_requests(verb="watch", resource=resource)]


def list_requests(kube: FakeKubeAPI, resource: str = "basemodels") -> list[Any]:
    return [r for r in kube.find_requests(verb="list", resource=resource)]


def synced_informer(kube: FakeKubeAPI, api: Any, started: Callable[[Informer], Informer], recorder: Recorder,
                    config: InformerConfig = FAST, watches: int = 1) -> Informer:
    informer = started(Informer.for_base_models(api, config=config, **recorder.handlers()))
    assert informer.wait_for_sync(WAIT)
    kube.wait_for_watches(watches, timeout=WAIT)
    return informer


# ---------------------------------------------------------------- list, watch and the cache


def test_initial_list_then_add_update_delete(kube: FakeKubeAPI, api: Any,
                                             started: Callable[[Informer], Informer]) -> None:
    kube.create("basemodels", base_model("m1"), namespace="ome")
    kube.create("basemodels", base_model("m2", "team-a"), namespace="team-a")
    recorder = Recorder()
    informer = Informer.for_base_models(api, config=FAST, **recorder.handlers())
    assert not informer.has_synced()
    started(informer)
    assert informer.wait_for_sync(WAIT)
    assert informer.has_synced()
    assert recorder.summary() == [("add", "m1"), ("add", "m2")]
    assert informer.keys() == [("ome", "m1"), ("team-a", "m2")]
    assert len(informer) == 2 and ("ome", "m1") in informer
    assert recorder.threads == {"informer-basemodels"}

    list_request = list_requests(kube)[0]
    assert list_request.path == "/apis/ome.io/v1beta1/basemodels"
    assert list_request.query["limit"] == "500"
    kube.wait_for_watches(1, timeout=WAIT)
    watch = watch_requests(kube)[0]
    assert watch.query["resourceVersion"] == informer.resource_version
    assert watch.query["allowWatchBookmarks"].lower() == "true"
    assert 60 <= int(watch.query["timeoutSeconds"]) <= 66

    kube.create("basemodels", base_model("m3"), namespace="ome")
    recorder.wait_event("add", "m3")
    kube.patch("basemodels", "m1", {"spec": {"storage": {"storageUri": "hf://org/other"}}}, namespace="ome")
    _, old, new = recorder.wait_event("update", "m1")
    assert old["spec"]["storage"]["storageUri"] == "hf://org/model"
    assert new["spec"]["storage"]["storageUri"] == "hf://org/other"
    assert informer.get("ome", "m1")["spec"]["storage"]["storageUri"] == "hf://org/other"
    kube.delete("basemodels", "m2", namespace="team-a")
    _, _, deleted = recorder.wait_event("delete", "m2")
    assert deleted["metadata"]["namespace"] == "team-a"
    assert informer.get("team-a", "m2") is None
    assert informer.keys() == [("ome", "m1"), ("ome", "m3")]
    assert informer.resource_version == kube.resource_version
    assert informer.list_count == 1 and not recorder.errors


def test_objects_handed_out_are_private_copies(kube: FakeKubeAPI, api: Any,
                                               started: Callable[[Informer], Informer]) -> None:
    kube.create("basemodels", base_model("m1"), namespace="ome")
    first, second = Recorder(), Recorder()

    def vandal(obj: dict[str, Any]) -> None:
        obj["spec"]["storage"]["storageUri"] = "hf://vandalised/model"
        first.on_add(obj)

    informer = Informer.for_base_models(api, config=FAST, on_add=vandal)
    informer.add_handlers(on_add=second.on_add)
    started(informer)
    assert informer.wait_for_sync(WAIT)
    assert second.events[0][2]["spec"]["storage"]["storageUri"] == "hf://org/model"
    copy = informer.get("ome", "m1")
    assert copy["spec"]["storage"]["storageUri"] == "hf://org/model"
    copy["metadata"]["labels"] = {"changed": "locally"}
    assert "labels" not in informer.get("ome", "m1")["metadata"]
    assert informer.list()[0]["spec"]["storage"]["storageUri"] == "hf://org/model"
    with pytest.raises(RuntimeError, match="before start"):
        informer.add_handlers(on_add=second.on_add)


def test_cache_reads_from_other_threads_while_events_arrive(kube: FakeKubeAPI, api: Any,
                                                           started: Callable[[Informer], Informer]) -> None:
    recorder = Recorder()
    informer = synced_informer(kube, api, started, recorder)
    problems: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        try:
            while not done.is_set():
                for obj in informer.list():
                    assert obj["metadata"]["namespace"] == "ome"
                for key in informer.keys():
                    informer.get(*key)
                assert len(informer) >= 0
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            problems.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for thread in readers:
        thread.start()
    try:
        for index in range(150):
            kube.create("basemodels", base_model(f"m{index:03d}"), namespace="ome")
            if index % 3 == 0:
                kube.delete("basemodels", f"m{index:03d}", namespace="ome")
        recorder.wait(lambda r: len(r.events) == 200, "150 adds and 50 deletes")
    finally:
        done.set()
        for thread in readers:
            thread.join(WAIT)
    assert not problems
    assert len(informer) == 100
    assert informer.resource_version == kube.resource_version


def test_paged_list(kube: FakeKubeAPI, api: Any, started: Callable[[Informer], Informer]) -> None:
    for index in range(1203):
        kube.create("basemodels", base_model(f"m{index:04d}"), namespace="ome")
    recorder = Recorder()
    informer = synced_informer(kube, api, started, recorder, dataclasses.replace(FAST, page_size=500))
    assert len(informer) == 1203
    assert len(recorder.events) == 1203
    pages = list_requests(kube)
    assert len(pages) == 3
    assert "continue" not in pages[0].query and pages[1].query["continue"] and pages[2].query["continue"]


def test_cluster_base_models_are_keyed_without_namespace(kube: FakeKubeAPI, api: Any,
                                                         started: Callable[[Informer], Informer]) -> None:
    kube.create("clusterbasemodels", cluster_base_model("c1"))
    kube.create("basemodels", base_model("not-a-cluster-model"), namespace="ome")
    recorder = Recorder()
    informer = started(Informer.for_cluster_base_models(api, config=FAST, **recorder.handlers()))
    assert informer.wait_for_sync(WAIT)
    assert informer.keys() == [("", "c1")]
    assert informer.get(None, "c1") == informer.get("", "c1")
    kube.wait_for_watches(1, timeout=WAIT)
    kube.create("clusterbasemodels", cluster_base_model("c2"))
    recorder.wait_event("add", "c2")
    assert watch_requests(kube, "clusterbasemodels")[0].path == "/apis/ome.io/v1beta1/clusterbasemodels"


def test_node_informer_follows_one_node(kube: FakeKubeAPI, api: Any, started: Callable[[Informer], Informer]) -> None:
    kube.add_node("node-a", labels={"gpu": "a10"})
    kube.add_node("node-b", labels={"gpu": "h100"})
    recorder = Recorder()
    informer = started(Informer.for_node(api, "node-a", config=FAST, **recorder.handlers()))
    assert informer.wait_for_sync(WAIT)
    assert informer.keys() == [("", "node-a")]
    assert recorder.events[0][2]["metadata"]["labels"] == {"gpu": "a10"}
    assert all(r.query["fieldSelector"] == "metadata.name=node-a" for r in kube.find_requests(resource="nodes"))
    kube.wait_for_watches(1, timeout=WAIT)
    kube.patch("nodes", "node-b", {"metadata": {"labels": {"gpu": "b200"}}})
    kube.patch("nodes", "node-a", {"metadata": {"labels": {"gpu": "h200", "zone": "z1"}}})
    _, old, new = recorder.wait_event("update", "node-a")
    assert old["metadata"]["labels"] == {"gpu": "a10"}
    assert new["metadata"]["labels"] == {"gpu": "h200", "zone": "z1"}
    assert all(name_of(obj) == "node-a" for _, _, obj in recorder.events)
    with pytest.raises(ValueError, match="node_name"):
        Informer.for_node(api, "")


def test_transform_drops_last_applied_and_managed_fields(kube: FakeKubeAPI, api: Any,
                                                         started: Callable[[Informer], Informer]) -> None:
    kube.create("basemodels", base_model("m1", annotations={
        "kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "me"}), namespace="ome")
    kube.create("basemodels", base_model("m2", annotations={
        "kubectl.kubernetes.io/last-applied-configuration": "{}"}), namespace="ome")
    recorder = Recorder()
    informer = synced_informer(kube, api, started, recorder)
    assert recorder.events[0][2]["metadata"]["annotations"] == {"keep": "me"}
    assert informer.get("ome", "m1")["metadata"]["annotations"] == {"keep": "me"}
    assert "annotations" not in informer.get("ome", "m2")["metadata"]
    # The fake server keeps no managedFields; the transform itself is checked directly.
    obj = {"metadata": {"name": "x", "managedFields": [{"manager": "kubectl"}],
                        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "a": "b"}}}
    assert strip_server_fields(obj) == {"metadata": {"name": "x", "annotations": {"a": "b"}}}


def test_custom_transform_or_none(kube: FakeKubeAPI, api: Any, started: Callable[[Informer], Informer]) -> None:
    kube.create("basemodels", base_model("m1", annotations={
        "kubectl.kubernetes.io/last-applied-configuration": "{}"}), namespace="ome")
    untouched = started(Informer.for_base_models(api, config=FAST, transform=None))

    def only_spec(obj: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {k: obj["metadata"][k] for k in ("name", "namespace", "uid", "resourceVersion")},
                "spec": obj["spec"]}

    slim = started(Informer.for_base_models(api, config=FAST, transform=only_spec))
    assert untouched.wait_for_sync(WAIT) and slim.wait_for_sync(WAIT)
    assert "kubectl.kubernetes.io/last-applied-configuration" in untouched.get("ome", "m1")["metadata"]["annotations"]
    assert set(slim.get("ome", "m1")) == {"metadata", "spec"}


# ---------------------------------------------------------------- 410, drops, silence and bookmarks


def test_expired_watch_error_event_relists_and_diffs(kube: FakeKubeAPI, api: Any,
                                                     started: Callable[[Informer], Informer]) -> None:
    for name in ("keep", "change", "gone", "recreated"):
        kube.create("basemodels", base_model(name), namespace="ome")
    recorder = Recorder()
    informer = synced_informer(kube, api, started, recorder)
    old_uid = informer.get("ome", "recreated")["metadata"]["uid"]
    recorder.clear()

    # While the watch hears nothing, things change and the history is compacted away.
    kube.silence_watches(path="basemodels")
    kube.patch("basemodels", "change", {"metadata": {"labels": {"v": "2"}}}, namespace="ome")
    kube.delete("basemodels", "gone", namespace="ome")
    kube.delete("basemodels", "recreated", namespace="ome")
    kube.create("basemodels", base_model("recreated", uri="hf://org/new"), namespace="ome")
    kube.create("basemodels", base_model("new"), namespace="ome")
    kube.compact()
    kube.drop_watches(path="basemodels")

    recorder.wait(lambda r: len(r.events) >= 5, "the relist diff")
    assert informer.list_count == 2
    assert sorted(recorder.summary()) == sorted([("delete", "gone"), ("update", "change"), ("delete", "recreated"),
                                                 ("add", "recreated"), ("add", "new")])
    kinds = {(kind, name_of(new)): (old, new) for kind, old, new in recorder.events}
    old, new = kinds[("update", "change")]
    assert "labels" not in old["metadata"] and new["metadata"]["labels"] == {"v": "2"}
    assert kinds[("delete", "recreated")][1]["metadata"]["uid"] == old_uid
    assert kinds[("add", "recreated")][1]["metadata"]["uid"] != old_uid
    assert kinds[("delete", "gone")][1]["spec"]["storage"]["storageUri"] == "hf://org/model"
    assert informer.keys() == [("ome", "change"), ("ome", "keep"), ("ome", "new"), ("ome", "recreated")]
    # The 410 arrived inside a 200 stream: the re-watch from the old version was answered 200.
    first, rewatch = watch_requests(kube)[:2]
    assert rewatch.status == 200 and rewatch.query["resourceVersion"] == first.query["resourceVersion"]
    # After the relist the informer watches from the new list's resourceVersion and keeps working.
    kube.wait_for_watches(1, timeout=WAIT)
    kube.create("basemodels", base_model("after"), namespace="ome")
    recorder.wait_event("add", "after")


def test_http_410_at_watch_start_relists(kube: FakeKubeAPI, api: Any, started: Callable[[Informer], Informer]) -> None:
    kube.create("basemodels", base_model("m1"), namespace="ome")
    kube.create("basemodels", base_model("m2"), namespace="ome")
    recorder = Recorder()
    informer = synced_informer(kube, api, started, recorder)
    recorder.clear()
    kube.silence_watches(path="basemodels")
    kube.delete("basemodels", "m1", namespace="ome")
    rule = kube.fail_next(1, 410, verb="watch", path="basemodels")
    kube.drop_watches(path="basemodels")
    _, _, deleted = recorder.wait_event("delete", "m1")
    assert deleted["metadata"]["name"] == "m1"
    assert rule.hits == 1
    assert informer.list_count == 2
    assert informer.keys() == [("ome", "m2")]
    assert not [e for e in recorder.errors if e.status == 410], "a 410 is routine, not an error"


def test_clean_end_of_stream_rewatches_from_last_resource_version(
        kube: FakeKubeAPI, api: Any, started: Callable[[Informer], Informer]) -> None:
    recorder = Recorder()
    informer = synced_informer(kube, api, started, recorder)
    kube.create("basemodels", base_model("m1"), namespace="ome")
    recorder.wait_event("add", "m1")
    last_rv = informer.resource_version
    assert last_rv == kube.get("basemodels", "m1", namespace="ome")["metadata"]["resourceVersion"]
    start = len(kube.requests)
    kube.drop_watches(graceful=True, path="basemodels")
    kube.wait_for_request(lambda r: r.verb == "watch" and r.query.get("resourceVersion") == last_rv,
                          timeout=WAIT, start=start)
    kube.create("basemodels", base_model("m2"), namespace="ome")
    recorder.wait_event("add", "m2")
    assert informer.list_count == 1 and len(list_requests(kube)) == 1
    assert not recorder.errors


def test_connection_cut_mid_stream_rewatches(kube: FakeKubeAPI, api: Any,
                                             started: Callable[[Informer], Informer]) -> None:
    recorder = Recorder()
    informer = synced_informer(kube, api, started, recorder)
    kube.drop_watches(path="basemodels")
    error = recorder.wait_error(lambda e: e.phase == "watch", "the dropped watch to be reported")
    assert error.status is None and "basemodels" in error.message
    kube.wait_for_watches(1, timeout=WAIT)
    kube.create("basemodels", base_model("m1"), namespace="ome")
    recorder.wait_event("add", "m1")
    assert informer.list_count == 1


def test_silent_watch_recovers_by_read_timeout(kube: FakeKubeAPI, api: Any,
                                               started: Callable[[Informer], Informer]) -> None:
    config = dataclasses.replace(FAST, read_timeout=1.0)
    recorder = Recorder()
    informer = synced_informer(kube, api, started, recorder, config)
    kube.silence_watches(path="basemodels")
    kube.create("basemodels", base_model("m1"), namespace="ome")
    # The change is not delivered by the silent stream; it arrives after the read timeout and re-watch.
    recorder.wait_event("add", "m1")
    error = recorder.errors[0]
    assert error.phase == "watch" and "silent" in error.message and error.retry_in == 0
    assert type(error.exception).__name__ == "ReadTimeoutError"
    assert informer.list_count == 1
    assert len(watch_requests(kube)) >= 2


def test_bookmarks_advance_the_resource_version(fake_kube_factory: Callable[..., FakeKubeAPI],  # noqa: F811
                                                started: Callable[[Informer], Informer]) -> None:
    kube = fake_kube_factory(history_size=5, bookmark_interval=0.2)
    kube.add_namespace("ome")
    kube.create("basemodels", base_model("m1"), namespace="ome")
    api_client = kube.api_client()
    try:
        with_bookmarks = started(Informer.for_base_models(api_client, config=FAST))
        without = started(Informer.for_base_models(api_client, config=dataclasses.replace(FAST, bookmarks=False)))
        assert with_bookmarks.wait_for_sync(WAIT) and without.wait_for_sync(WAIT)
        kube.wait_for_watches(2, timeout=WAIT)
        # Writes to another resource move the global resourceVersion far past the kept history.
        for index in range(12):
            kube.create("configmaps", {"metadata": {"name": f"cm{index}"}}, namespace="ome")
        target = kube.resource_version
        eventually(lambda: with_bookmarks.resource_version == target, "a bookmark with the current version")
        assert without.resource_version != target
        start = len(kube.requests)
        kube.drop_watches(graceful=True, path="basemodels")
        kube.wait_for_request(lambda r: r.verb == "watch" and r.query.get("resourceVersion") == target,
                              timeout=WAIT, start=start)
        # The informer without bookmarks resumes from an expired version and has to list again.
        eventually(lambda: without.list_count == 2, "the relist of the informer without bookmarks")
        kube.wait_for_watches(2, timeout=WAIT)
        assert with_bookmarks.list_count == 1
        assert without.list_count == 2
    finally:
        api_client.close()


# ---------------------------------------------------------------- failures at list and watch start


def test_server_errors_at_list_start_are_retried(kube: FakeKubeAPI, api: Any,
                                                 started: Callable[[Informer], Informer]) -> None:
    kube.create("basemodels", base_model("m1"), namespace="ome")
    kube.fail_next(2, 500, verb="list", path="basemodels")
    recorder = Recorder()
    informer = started(Informer.for_base_models(api, config=FAST, **recorder.handlers()))
    assert informer.wait_for_sync(WAIT)
    assert [(e.phase, e.status) for e in recorder.errors] == [("list", 500), ("list", 500)]
    assert all(0 < e.retry_in <= FAST.backoff_max for e in recorder.errors)
    assert "HTTP 500" in recorder.errors[0].message and "list of basemodels" in recorder.errors[0].message
    assert recorder.summary() == [("add", "m1")]
    assert informer.last_error is None


def test_too_many_requests_honours_retry_after(kube: FakeKubeAPI, api: Any,
                                               started: Callable[[Informer], Informer]) -> None:
    # urllib3 itself retries a GET answered 429 with Retry-After three times; the fourth reaches us.
    kube.fail_next(4, 429, verb="list", path="basemodels", retry_after=1)
    recorder = Recorder()
    informer = started(Informer.for_base_models(api, config=FAST, **recorder.handlers()))
    assert informer.wait_for_sync(WAIT + 10)
    assert len(recorder.errors) == 1
    error = recorder.errors[0]
    assert error.status == 429 and error.phase == "list"
    assert error.retry_in >= 1.0 > FAST.backoff_max
    assert len(list_requests(kube)) == 5


def test_errors_at_watch_start_are_retried(kube: FakeKubeAPI, api: Any,
                                           started: Callable[[Informer], Informer]) -> None:
    kube.fail_next(2, 503, verb="watch", path="basemodels")
    kube.fail_next(1, 500, verb="watch", path="basemodels")
    recorder = Recorder()
    informer = started(Informer.for_base_models(api, config=FAST, **recorder.handlers()))
    assert informer.wait_for_sync(WAIT)
    kube.wait_for_watches(1, timeout=WAIT)
    kube.create("basemodels", base_model("m1"), namespace="ome")
    recorder.wait_event("add", "m1")
    assert [(e.phase, e.status) for e in recorder.errors] == [("watch", 503), ("watch", 503), ("watch", 500)]
    assert informer.list_count == 1


def test_unauthorized_and_forbidden_are_reported_and_retried(fake_kube_factory: Callable[..., FakeKubeAPI],  # noqa: F811
                                                             started: Callable[[Informer], Informer]) -> None:
    kube = fake_kube_factory(tokens={"good-token": "agent"})
    kube.add_namespace("ome")
    kube.create("basemodels", base_model("m1"), namespace="ome")
    api_client = kube.api_client(token="wrong-token")
    try:
        recorder = Recorder()
        informer = started(Informer.for_base_models(api_client, config=FAST, **recorder.handlers()))
        recorder.wait(lambda r: len(r.errors) >= 3, "repeated 401s")
        assert {e.status for e in recorder.errors} == {401}
        assert "credentials and RBAC" in recorder.errors[0].message
        assert informer.running and not informer.has_synced()
        # Fixed credentials are picked up by the next attempt: no restart needed.
        api_client.configuration.api_key["authorization"] = "Bearer good-token"
        assert informer.wait_for_sync(WAIT)
        kube.wait_for_watches(1, timeout=WAIT)
        recorder.clear()
        kube.fail_next(2, 403, verb="watch", path="basemodels")
        kube.drop_watches(path="basemodels")
        recorder.wait(lambda r: sum(e.status == 403 for e in r.errors) == 2, "two 403s")
        kube.wait_for_watches(1, timeout=WAIT)
        kube.create("basemodels", base_model("m2"), namespace="ome")
        recorder.wait_event("add", "m2")
        assert informer.running
    finally:
        api_client.close()


def test_backoff_grows_and_is_capped(kube: FakeKubeAPI, api: Any, started: Callable[[Informer], Informer]) -> None:
    config = dataclasses.replace(FAST, backoff_initial=0.01, backoff_max=0.08)
    kube.fail_next(7, 500, verb="list", path="basemodels")
    recorder = Recorder()
    informer = started(Informer.for_base_models(api, config=config, rng=random.Random(7), **recorder.handlers()))
    assert informer.wait_for_sync(WAIT)
    delays = [e.retry_in for e in recorder.errors]
    assert len(delays) == 7
    ceilings = [min(0.08, 0.01 * 2**n) for n in range(7)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings)), delays
    assert delays[-1] >= 0.04


# ---------------------------------------------------------------- robustness of the informer itself


def test_stop_is_prompt_with_an_open_watch(kube: FakeKubeAPI, api: Any) -> None:
    config = dataclasses.replace(FAST, read_timeout=120.0, watch_timeout_seconds=600)
    recorder = Recorder()
    informer = Informer.for_base_models(api, config=config, **recorder.handlers()).start()
    assert informer.wait_for_sync(WAIT)
    kube.wait_for_watches(1, timeout=WAIT)
    # Without shutting the socket down the thread would sit in recv for the 120 s read timeout.
    assert informer.stop(timeout=WAIT)
    assert not informer.running
    kube.create("basemodels", base_model("late"), namespace="ome")
    kube.wait_for_watches(0, timeout=WAIT)
    assert recorder.events == [] and recorder.errors == []
    assert informer.stop() is True


def test_stop_during_backoff(kube: FakeKubeAPI, api: Any) -> None:
    config = dataclasses.replace(FAST, backoff_initial=300.0, backoff_max=600.0)
    kube.fail_next(1, 500, verb="list", path="basemodels")
    recorder = Recorder()
    informer = Informer.for_base_models(api, config=config, **recorder.handlers()).start()
    recorder.wait(lambda r: len(r.errors) == 1, "the first failure")
    assert recorder.errors[0].retry_in >= 150
    assert informer.stop(timeout=WAIT)
    assert not informer.has_synced()


def test_stop_from_a_handler(kube: FakeKubeAPI, api: Any) -> None:
    kube.create("basemodels", base_model("m1"), namespace="ome")
    kube.create("basemodels", base_model("m2"), namespace="ome")
    seen: list[str] = []
    results: list[bool] = []
    stopped = threading.Event()
    informer: Informer

    def on_add(obj: dict[str, Any]) -> None:
        seen.append(name_of(obj))
        results.append(informer.stop())
        stopped.set()

    informer = Informer.for_base_models(api, config=FAST, on_add=on_add)
    informer.start()  # assigned first: the handler may run before start() returns
    assert stopped.wait(WAIT)
    assert informer.stop(timeout=WAIT)
    assert seen == ["m1"] and results == [False]
    assert informer.get("ome", "m2") is not None, "the list was stored even though delivery stopped"


def test_failing_handler_does_not_stop_the_informer(kube: FakeKubeAPI, api: Any,
                                                    started: Callable[[Informer], Informer]) -> None:
    recorder = Recorder()

    def explode(obj: dict[str, Any]) -> None:
        if name_of(obj) == "bad":
            raise RuntimeError("handler bug")
        recorder.on_add(obj)

    informer = started(Informer.for_base_models(api, config=FAST, on_add=explode, on_error=recorder.on_error))
    assert informer.wait_for_sync(WAIT)
    kube.wait_for_watches(1, timeout=WAIT)
    kube.create("basemodels", base_model("bad"), namespace="ome")
    kube.create("basemodels", base_model("good"), namespace="ome")
    recorder.wait_event("add", "good")
    assert informer.keys() == [("ome", "bad"), ("ome", "good")]
    assert informer.running and not recorder.errors


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="read_timeout"):
        InformerConfig(read_timeout=0)
    with pytest.raises(ValueError, match="watch_timeout_seconds"):
        InformerConfig(watch_timeout_seconds=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="page_size"):
        InformerConfig(page_size=-1)
    with pytest.raises(ValueError, match="backoff_max"):
        InformerConfig(backoff_initial=5, backoff_max=1)
    with pytest.raises(TypeError, match="list_func"):
        Informer("x", "not callable")  # type: ignore[arg-type]


# ---------------------------------------------------------------- malformed answers (scripted list function)


class _ScriptedResponse:
    def __init__(self, body: bytes | None = None, lines: list[bytes] | None = None) -> None:
        self.data = body
        self._lines = lines or []
        self.released = False

    def stream(self, amt: Any = None, decode_content: Any = None) -> Iterator[bytes]:
        yield from self._lines

    def release_conn(self) -> None:
        self.released = True


def test_malformed_list_and_watch_answers_are_reported(kube: FakeKubeAPI) -> None:
    good_list = json.dumps({"kind": "BaseModelList", "metadata": {"resourceVersion": "7"},
                            "items": [base_model("m1") | {"metadata": {
                                "name": "m1", "namespace": "ome", "uid": "u1", "resourceVersion": "7",
                                "managedFields": [{"manager": "kubectl", "operation": "Update"}]}},
                                      {"metadata": {"namespace": "ome"}}, "junk"]})
    event = json.dumps({"type": "ADDED", "object": {"metadata": {"name": "m2", "namespace": "ome", "uid": "u2",
                                                                 "resourceVersion": "8"}}}).encode()
    nameless = json.dumps({"type": "MODIFIED", "object": {"metadata": {"resourceVersion": "9"}}}).encode()
    answers = [
        _ScriptedResponse(b"<html>proxy error</html>"),
        _ScriptedResponse(json.dumps({"metadata": {}, "items": []}).encode()),
        _ScriptedResponse(json.dumps({"metadata": {"resourceVersion": "7"}, "items": "nope"}).encode()),
        _ScriptedResponse(good_list.encode()),
        # An event split over two chunks, then a line that is not JSON.
        _ScriptedResponse(lines=[event[:20], event[20:] + b"\n" + nameless + b"\n{not json\n"]),
    ]
    calls: list[dict[str, Any]] = []
    done = threading.Event()

    def list_func(**kwargs: Any) -> _ScriptedResponse:
        calls.append(kwargs)
        if answers:
            return answers.pop(0)
        done.set()
        raise ApiException(status=500, reason="script finished")

    recorder = Recorder()
    informer = Informer("scripted", list_func, config=FAST, **recorder.handlers()).start()
    try:
        assert done.wait(WAIT)
    finally:
        assert informer.stop(timeout=WAIT)
    messages = [e.message for e in recorder.errors]
    assert "list of scripted is not JSON" in messages[0]
    assert "has no metadata.resourceVersion" in messages[1]
    assert "not a List object with an items array" in messages[2]
    # Objects that cannot be cached are skipped and reported; the others are not held back.
    assert messages[3] == "skipping item 1 of the list of scripted: object has no metadata.name"
    assert messages[4] == "skipping item 2 of the list of scripted: not an object but str"
    assert messages[5] == "skipping a MODIFIED event in the watch of scripted: object has no metadata.name"
    assert "sent a line that is not JSON" in messages[6] and "{not json" in messages[6]
    assert all(e.retry_in == 0 for e in recorder.errors[3:6])
    assert recorder.summary() == [("add", "m1"), ("add", "m2")]
    assert "managedFields" not in recorder.events[0][2]["metadata"]
    assert calls[4]["watch"] is True and calls[4]["resource_version"] == "7"
    assert calls[5]["resource_version"] == "9"


def test_expired_continue_token_lists_again_without_pages() -> None:
    def item(name: str, rv: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": "ome", "uid": f"uid-{name}", "resourceVersion": rv}}

    first_page = {"metadata": {"resourceVersion": "10", "continue": "token-1"}, "items": [item("a", "3")]}
    everything = {"metadata": {"resourceVersion": "12"}, "items": [item("a", "3"), item("b", "11")]}
    calls: list[dict[str, Any]] = []
    listed = threading.Event()

    def list_func(**kwargs: Any) -> _ScriptedResponse:
        calls.append(kwargs)
        if kwargs.get("watch"):
            listed.set()
            return _ScriptedResponse(lines=[])
        if kwargs.get("_continue"):
            raise ApiException(status=410, reason="Expired")
        return _ScriptedResponse(json.dumps(first_page if "limit" in kwargs else everything).encode())

    recorder = Recorder()
    informer = Informer("paged", list_func, config=dataclasses.replace(FAST, page_size=1), **recorder.handlers())
    informer.start()
    try:
        assert listed.wait(WAIT)
    finally:
        assert informer.stop(timeout=WAIT)
    assert [(c.get("limit"), c.get("_continue")) for c in calls[:3]] == [(1, None), (1, "token-1"), (None, None)]
    assert recorder.summary() == [("add", "a"), ("add", "b")]
    assert calls[3]["resource_version"] == "12"
    assert not recorder.errors


def test_repeated_expiry_right_after_listing_backs_off() -> None:
    listing = json.dumps({"metadata": {"resourceVersion": "5"}, "items": []}).encode()
    expired = json.dumps({"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired",
                                                      "message": "too old resource version: 5 (9)"}}).encode()
    calls: list[dict[str, Any]] = []

    def list_func(**kwargs: Any) -> _ScriptedResponse:
        calls.append(kwargs)
        return _ScriptedResponse(lines=[expired + b"\n"]) if kwargs.get("watch") else _ScriptedResponse(listing)

    recorder = Recorder()
    informer = Informer("expiring", list_func, config=FAST, on_error=recorder.on_error).start()
    try:
        error = recorder.wait_error(lambda e: e.status == 410, "the repeated expiry to be reported")
    finally:
        assert informer.stop(timeout=WAIT)
    assert "expired: too old resource version: 5 (9) again right after listing" in error.message
    assert error.retry_in > 0
    # list, watch (410), list, watch (410): only the second expiry is suspicious.
    assert [bool(c.get("watch")) for c in calls[:4]] == [False, True, False, True]
    assert informer.list_count >= 2
