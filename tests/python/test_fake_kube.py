"""The fake Kubernetes API server, driven through the official ``kubernetes`` client."""

from __future__ import annotations

import base64
import http.client
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from modelagent.testing import _kube_patch as patches
from modelagent.testing._kube_selectors import LabelSelector, SelectorError
from modelagent.testing.kube_api import ApiError, FakeKubeAPI
from modelagent.testing.kube_fixtures import (  # noqa: F401 - fixtures
    fake_kube,
    fake_kube_factory,
    kube_api_client,
    kube_config_file,
)

GROUP, VERSION = "ome.io", "v1beta1"
LABEL_NAME_ERROR = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


@pytest.fixture
def core(kube_api_client: Any) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api_client)


@pytest.fixture
def custom(kube_api_client: Any) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api_client)


def status_of(exc: ApiException) -> dict[str, Any]:
    return json.loads(exc.body)


def base_model(name: str, uri: str = "hf://org/model", **meta: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "BaseModel", "metadata": {"name": name, **meta},
            "spec": {"storage": {"storageUri": uri}}}


def cluster_base_model(name: str, uri: str = "hf://org/model", **meta: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ClusterBaseModel", "metadata": {"name": name, **meta},
            "spec": {"storage": {"storageUri": uri}}}


class Collector:
    """Runs ``watch.Watch().stream(...)`` in a thread and hands its events (or error) over a queue."""

    END = "end-of-stream"

    def __init__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.watch = watch.Watch()
        self.items: queue.Queue[Any] = queue.Queue()
        self.thread = threading.Thread(target=self._run, args=(func, args, kwargs), daemon=True)
        self.thread.start()

    def _run(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            for event in self.watch.stream(func, *args, **kwargs):
                self.items.put(event)
        except Exception as exc:  # handed to the test thread
            self.items.put(exc)
        finally:
            self.items.put(self.END)

    def next(self, timeout: float = 30.0) -> Any:
        return self.items.get(timeout=timeout)

    def next_event(self, timeout: float = 30.0) -> dict[str, Any]:
        item = self.next(timeout)
        if not isinstance(item, dict):
            raise AssertionError(f"expected a watch event, got {item!r}")
        return item

    def stop(self) -> None:
        self.watch.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def collectors() -> Iterator[list[Collector]]:
    started: list[Collector] = []
    yield started
    for c in started:
        c.stop()


def summary(event: dict[str, Any]) -> tuple[str, str]:
    obj = event["raw_object"]
    return event["type"], obj["metadata"]["name"]


def first_events(func: Callable[..., Any], *args: Any, count: int, **kwargs: Any) -> list[dict[str, Any]]:
    """The first ``count`` events of a watch, then the watch is stopped.

    The server's ``timeoutSeconds`` stays far away, so how soon the watch ends cannot decide what it sent;
    a test that wants "nothing else" puts a marker change last and reads up to it.
    """
    w = watch.Watch()
    events: list[dict[str, Any]] = []
    for event in w.stream(func, *args, timeout_seconds=60, **kwargs):
        events.append(event)
        if len(events) == count:
            w.stop()
    return events


def handler_threads_since(before: set[threading.Thread]) -> list[threading.Thread]:
    """The HTTP server's connection threads started since ``before`` (a ``threading.enumerate()`` set)."""
    return [t for t in threading.enumerate() if t not in before and "process_request" in t.name]


def watch_lines(conn: http.client.HTTPConnection, path: str, count: int,
                before_reading: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """GET a watch ``path`` over plain HTTP and read its first ``count`` event lines (``before_reading`` runs
    once the first line arrived, when the watch is registered)."""
    conn.request("GET", path)
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
    lines = []
    for _ in range(count):
        line = resp.readline()
        assert line, f"the watch ended after {lines}"
        lines.append(json.loads(line))
        if before_reading is not None and len(lines) == 1:
            before_reading()
    return lines


# ---------------------------------------------------------------------------------------- CRUD


def test_node_crud_and_not_found_status(core: client.CoreV1Api, fake_kube: FakeKubeAPI) -> None:
    created = core.create_node({"metadata": {"name": "n1", "labels": {"zone": "a"}}})
    assert created.metadata.uid and created.metadata.creation_timestamp is not None
    assert created.metadata.resource_version == fake_kube.resource_version
    assert created.metadata.generation is None
    got = core.read_node("n1")
    assert got.metadata.labels == {"zone": "a"}
    got.metadata.labels["zone"] = "b"
    updated = core.replace_node("n1", got)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    assert updated.metadata.uid == created.metadata.uid
    assert [n.metadata.name for n in core.list_node().items] == ["n1"]
    core.delete_node("n1")
    with pytest.raises(ApiException) as err:
        core.read_node("n1")
    assert err.value.status == 404
    assert status_of(err.value) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'nodes "n1" not found', "reason": "NotFound",
        "details": {"name": "n1", "kind": "nodes"}, "code": 404,
    }


def test_configmap_crud_conflict_and_already_exists(core: client.CoreV1Api) -> None:
    cm = core.create_namespaced_config_map("ome", {"metadata": {"name": "node-1"}, "data": {"a": "1"}})
    stale_rv = cm.metadata.resource_version
    cm.data["b"] = "2"
    fresh = core.replace_namespaced_config_map("node-1", "ome", cm)
    assert fresh.data == {"a": "1", "b": "2"}

    cm.metadata.resource_version = stale_rv
    cm.data["c"] = "3"
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("node-1", "ome", cm)
    assert err.value.status == 409
    body = status_of(err.value)
    assert body["reason"] == "Conflict"
    assert body["message"] == ('Operation cannot be fulfilled on configmaps "node-1": the object has been '
                               "modified; please apply your changes to the latest version and try again")
    assert body["details"] == {"name": "node-1", "kind": "configmaps"}

    cm.metadata.resource_version = None
    unconditional = core.replace_namespaced_config_map("node-1", "ome", cm)
    assert unconditional.data == {"a": "1", "b": "2", "c": "3"}

    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("ome", {"metadata": {"name": "node-1"}})
    assert err.value.status == 409
    assert status_of(err.value)["reason"] == "AlreadyExists"
    assert status_of(err.value)["message"] == 'configmaps "node-1" already exists'

    result = core.delete_namespaced_config_map("node-1", "ome")  # kubernetes 37 returns a dict here
    assert result["kind"] == "Status" and result["status"] == "Success"
    assert result["details"]["name"] == "node-1" and result["details"]["kind"] == "configmaps"
    assert core.list_namespaced_config_map("ome").items == []


def test_create_in_missing_namespace_and_with_resource_version(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("nope", {"metadata": {"name": "x"}})
    assert err.value.status == 404 and status_of(err.value)["message"] == 'namespaces "nope" not found'
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("ome", {"metadata": {"name": "x", "resourceVersion": "3"}})
    assert err.value.status == 500
    assert "resourceVersion should not be set on objects to be created" in status_of(err.value)["message"]


def test_secret_string_data_and_bad_base64(core: client.CoreV1Api) -> None:
    secret = core.create_namespaced_secret("default", {"metadata": {"name": "hf"}, "stringData": {"token": "hf_x"}})
    assert secret.type == "Opaque"
    assert secret.data == {"token": base64.b64encode(b"hf_x").decode()}
    assert secret.string_data is None
    assert core.read_namespaced_secret("hf", "default").data["token"] == "aGZfeA=="
    with pytest.raises(ApiException) as err:
        core.create_namespaced_secret("default", {"metadata": {"name": "bad"}, "data": {"token": "@@@@"}})
    assert err.value.status == 400
    assert status_of(err.value)["message"] == (
        'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 0')
    core.delete_namespaced_secret("hf", "default")
    assert core.list_namespaced_secret("default").items == []


def test_generate_name_and_pagination(core: client.CoreV1Api) -> None:
    names = {core.create_namespaced_config_map("default", {"metadata": {"generateName": "cm-"}}).metadata.name
             for _ in range(5)}
    assert len(names) == 5 and all(n.startswith("cm-") and len(n) == 8 for n in names)
    first = core.list_namespaced_config_map("default", limit=2)
    assert len(first.items) == 2 and first.metadata._continue and first.metadata.remaining_item_count == 3
    seen = [i.metadata.name for i in first.items]
    token = first.metadata._continue
    while token:
        page = core.list_namespaced_config_map("default", limit=2, _continue=token)
        seen += [i.metadata.name for i in page.items]
        token = page.metadata._continue
    assert sorted(seen) == sorted(names) and len(seen) == 5


def test_namespace_deletion_waits_for_finalizers(core: client.CoreV1Api, fake_kube: FakeKubeAPI) -> None:
    core.create_namespace({"metadata": {"name": "team"}})
    assert core.read_namespace("team").metadata.labels == {"kubernetes.io/metadata.name": "team"}
    core.create_namespaced_config_map("team", {"metadata": {"name": "plain"}})
    core.create_namespaced_config_map("team", {"metadata": {"name": "held", "finalizers": ["x.io/hold"]}})
    core.delete_namespace("team")
    ns = core.read_namespace("team")
    assert ns.status.phase == "Terminating" and ns.metadata.deletion_timestamp is not None
    assert [c["metadata"]["name"] for c in fake_kube.list_objects("configmaps", "team")] == ["held"]
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("team", {"metadata": {"name": "late"}})
    assert err.value.status == 403 and "because it is being terminated" in status_of(err.value)["message"]
    core.patch_namespaced_config_map("held", "team", [{"op": "remove", "path": "/metadata/finalizers"}])
    assert not fake_kube.exists("namespaces", "team")


def test_base_model_crud_generation_and_status(custom: client.CustomObjectsApi) -> None:
    created = custom.create_namespaced_custom_object(GROUP, VERSION, "default", "basemodels",
                                                     {**base_model("llama"), "status": {"state": "Ready"}})
    assert created["metadata"]["generation"] == 1
    assert "status" not in created  # the status subresource ignores status on create
    got = custom.get_namespaced_custom_object(GROUP, VERSION, "default", "basemodels", "llama")
    got["spec"]["storage"]["storageUri"] = "hf://org/other"
    replaced = custom.replace_namespaced_custom_object(GROUP, VERSION, "default", "basemodels", "llama", got)
    assert replaced["metadata"]["generation"] == 2
    labelled = custom.patch_namespaced_custom_object(GROUP, VERSION, "default", "basemodels", "llama",
                                                     {"metadata": {"labels": {"team": "a"}}})
    assert labelled["metadata"]["generation"] == 2 and labelled["metadata"]["labels"] == {"team": "a"}
    with_status = custom.patch_namespaced_custom_object_status(GROUP, VERSION, "default", "basemodels", "llama",
                                                               {"status": {"state": "Ready"}})
    assert with_status["status"] == {"state": "Ready"} and with_status["metadata"]["generation"] == 2
    with_status["status"] = {"state": "Failed"}
    with_status["spec"]["storage"]["storageUri"] = "hf://org/third"
    main = custom.replace_namespaced_custom_object(GROUP, VERSION, "default", "basemodels", "llama", with_status)
    assert main["status"] == {"state": "Ready"}  # the main endpoint ignores status
    assert main["metadata"]["generation"] == 3
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, "default", "basemodels")
    assert listed["kind"] == "BaseModelList" and [i["metadata"]["name"] for i in listed["items"]] == ["llama"]
    everywhere = custom.list_cluster_custom_object(GROUP, VERSION, "basemodels")
    assert len(everywhere["items"]) == 1
    custom.delete_namespaced_custom_object(GROUP, VERSION, "default", "basemodels", "llama")
    with pytest.raises(ApiException) as err:
        custom.get_namespaced_custom_object(GROUP, VERSION, "default", "basemodels", "llama")
    assert err.value.status == 404
    assert status_of(err.value)["message"] == 'basemodels.ome.io "llama" not found'
    assert status_of(err.value)["details"] == {"name": "llama", "group": "ome.io", "kind": "basemodels"}


def test_cluster_base_model_crud(custom: client.CustomObjectsApi) -> None:
    created = custom.create_cluster_custom_object(GROUP, VERSION, "clusterbasemodels", cluster_base_model("phi"))
    assert "namespace" not in created["metadata"]
    with pytest.raises(ApiException) as err:
        custom.create_cluster_custom_object(GROUP, VERSION, "clusterbasemodels", cluster_base_model("phi"))
    assert err.value.status == 409 and status_of(err.value)["reason"] == "AlreadyExists"
    stale = dict(created)
    custom.patch_cluster_custom_object(GROUP, VERSION, "clusterbasemodels", "phi", {"spec": {"maxTokens": 4096}})
    with pytest.raises(ApiException) as err:
        custom.replace_cluster_custom_object(GROUP, VERSION, "clusterbasemodels", "phi", stale)
    assert err.value.status == 409 and status_of(err.value)["details"]["group"] == "ome.io"
    custom.delete_cluster_custom_object(GROUP, VERSION, "clusterbasemodels", "phi")
    assert custom.list_cluster_custom_object(GROUP, VERSION, "clusterbasemodels")["items"] == []


def test_custom_resource_needs_kind(custom: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object(GROUP, VERSION, "default", "basemodels", {"metadata": {"name": "x"}})
    assert err.value.status == 400 and "Object 'Kind' is missing" in status_of(err.value)["message"]


def test_node_status_subresource(core: client.CoreV1Api) -> None:
    core.create_node({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.0.0.0/24"},
                      "status": {"capacity": {"cpu": "8"}}})
    node = core.read_node("n1")
    assert node.status.capacity == {"cpu": "8"}  # nodes may set status on create
    node.status.capacity = {"cpu": "1"}
    node.metadata.labels = {"a": "b"}
    updated = core.replace_node("n1", node)
    assert updated.status.capacity == {"cpu": "8"} and updated.metadata.labels == {"a": "b"}
    patched = core.patch_node_status("n1", {"status": {"capacity": {"cpu": "4"}}, "spec": {"unschedulable": True},
                                            "metadata": {"labels": {"c": "d"}}})
    assert patched.status.capacity == {"cpu": "4"}
    assert patched.spec.unschedulable is None and patched.spec.pod_cidr == "10.0.0.0/24"  # /status resets spec
    assert patched.metadata.labels == {"a": "b", "c": "d"}


def test_dry_run_and_delete_collection(core: client.CoreV1Api, fake_kube: FakeKubeAPI) -> None:
    rv = fake_kube.resource_version
    preview = core.create_namespaced_config_map("ome", {"metadata": {"name": "x"}}, dry_run="All")
    assert preview.metadata.name == "x" and preview.metadata.resource_version is None
    assert fake_kube.resource_version == rv and not fake_kube.exists("configmaps", "x", "ome")
    for name, app in [("a", "one"), ("b", "one"), ("c", "two")]:
        core.create_namespaced_config_map("ome", {"metadata": {"name": name, "labels": {"app": app}}})
    core.delete_collection_namespaced_config_map("ome", label_selector="app=one")
    assert [c["metadata"]["name"] for c in fake_kube.list_objects("configmaps", "ome")] == ["c"]


def test_direct_helpers_without_http(fake_kube: FakeKubeAPI) -> None:
    created = fake_kube.create("BaseModel", {"metadata": {"name": "m"}, "spec": {"a": 1}}, namespace="ome")
    assert created["kind"] == "BaseModel" and created["metadata"]["namespace"] == "ome"
    status = fake_kube.update_status("basemodels", {**created, "status": {"state": "Ready"}, "spec": {"a": 2}})
    assert status["status"] == {"state": "Ready"} and status["spec"] == {"a": 1}
    with pytest.raises(ApiError) as err:
        fake_kube.update("basemodels", created)  # the resourceVersion is stale now
    assert err.value.code == 409 and err.value.status()["reason"] == "Conflict"
    assert fake_kube.patch("basemodels", "m", {"spec": {"a": 3}}, namespace="ome")["metadata"]["generation"] == 2
    fake_kube.delete("basemodels", "m", namespace="ome")
    assert not fake_kube.exists("basemodels", "m", namespace="ome")
    with pytest.raises(ApiError) as err:
        fake_kube.get("basemodels", "m", namespace="ome")
    assert err.value.code == 404


# ---------------------------------------------------------------------------------------- patches


def test_json_patch_node_label_with_escaping(core: client.CoreV1Api, fake_kube: FakeKubeAPI) -> None:
    core.create_node({"metadata": {"name": "n1"}})
    key_path = "/metadata/labels/models.ome.io~1default.basemodel.llama"
    with pytest.raises(ApiException) as err:  # labels map missing: the add has no parent
        core.patch_node("n1", [{"op": "add", "path": key_path, "value": "Ready"}])
    assert err.value.status == 422
    core.patch_node("n1", [{"op": "add", "path": "/metadata/labels", "value": {}}])
    patched = core.patch_node("n1", [{"op": "add", "path": key_path, "value": "Ready"}])
    assert patched.metadata.labels == {"models.ome.io/default.basemodel.llama": "Ready"}
    assert fake_kube.requests[-1].content_type == "application/json-patch+json"

    removed = core.patch_node("n1", [{"op": "remove", "path": key_path}])
    assert removed.metadata.labels == {}
    with pytest.raises(ApiException) as err:
        core.patch_node("n1", [{"op": "remove", "path": key_path}])
    assert err.value.status == 422
    body = status_of(err.value)
    assert body["reason"] == "Invalid"
    assert body["message"] == "the server rejected our request due to an error in our request"
    assert "Unable to remove nonexistent key: models.ome.io/default.basemodel.llama" in \
        body["details"]["causes"][0]["message"]

    with pytest.raises(ApiException) as err:
        core.patch_node("n1", [{"op": "test", "path": "/metadata/name", "value": "other"},
                               {"op": "add", "path": "/metadata/labels/x", "value": "y"}])
    assert err.value.status == 422
    assert core.read_node("n1").metadata.labels == {}  # a failing op leaves the object unchanged


def test_json_patch_label_value_is_validated(core: client.CoreV1Api) -> None:
    core.create_node({"metadata": {"name": "n1", "labels": {}}})
    with pytest.raises(ApiException) as err:
        core.patch_node("n1", [{"op": "add", "path": "/metadata/labels/ok", "value": "not ok!"}])
    assert err.value.status == 422
    assert status_of(err.value)["message"].startswith(
        'Node "n1" is invalid: metadata.labels: Invalid value: "not ok!": a valid label must be an empty string')


def test_strategic_merge_patch_on_core_and_415_on_custom(core: client.CoreV1Api, custom: client.CustomObjectsApi,
                                                         fake_kube: FakeKubeAPI) -> None:
    core.create_node({"metadata": {"name": "n1", "labels": {"a": "1", "b": "2"}}})
    patched = core.patch_node("n1", {"metadata": {"labels": {"a": None, "c": "3"}}})
    assert patched.metadata.labels == {"b": "2", "c": "3"}
    assert fake_kube.requests[-1].content_type == "application/strategic-merge-patch+json"

    core.create_namespaced_config_map("default", {"metadata": {"name": "cm", "finalizers": ["x.io/a"]}})
    smp = core.patch_namespaced_config_map("cm", "default", {"metadata": {"finalizers": ["x.io/b"]}})
    assert smp.metadata.finalizers == ["x.io/a", "x.io/b"]  # finalizers merge under SMP
    merged = core.patch_namespaced_config_map("cm", "default", {"metadata": {"finalizers": ["x.io/c"]}},
                                              _content_type="application/merge-patch+json")
    assert merged.metadata.finalizers == ["x.io/c"]  # ... and are replaced by a merge patch
    core.patch_namespaced_config_map("cm", "default", {"metadata": {"finalizers": None}},
                                     _content_type="application/merge-patch+json")

    custom.create_namespaced_custom_object(GROUP, VERSION, "default", "basemodels", base_model("m"))
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(GROUP, VERSION, "default", "basemodels", "m", {"spec": {}},
                                              _content_type="application/strategic-merge-patch+json")
    assert err.value.status == 415
    assert status_of(err.value)["reason"] == "UnsupportedMediaType"
    assert "application/merge-patch+json" in status_of(err.value)["message"]


def test_merge_patch_of_custom_resource_spec(custom: client.CustomObjectsApi, fake_kube: FakeKubeAPI) -> None:
    obj = base_model("m")
    obj["spec"]["modelFormat"] = {"name": "safetensors"}
    custom.create_namespaced_custom_object(GROUP, VERSION, "default", "basemodels", obj)
    patched = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", "basemodels", "m",
        {"spec": {"modelType": "llama", "modelFormat": None, "storage": {"path": "/models/m"}}})
    assert patched["spec"] == {"storage": {"storageUri": "hf://org/model", "path": "/models/m"}, "modelType": "llama"}
    assert patched["metadata"]["generation"] == 2
    assert fake_kube.requests[-1].content_type == "application/merge-patch+json"
    stale = custom.patch_namespaced_custom_object(GROUP, VERSION, "default", "basemodels", "m",
                                                  {"metadata": {"labels": {"x": "y"}}})
    with pytest.raises(ApiException) as err:  # a patch that names an old resourceVersion is a precondition
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, "default", "basemodels", "m",
            {"metadata": {"resourceVersion": str(int(stale["metadata"]["resourceVersion"]) - 1)}})
    assert err.value.status == 409


def test_json_patch_rfc6902_operations() -> None:
    doc = {"a": {"b~c": [1, 2], "d/e": "x"}, "f": "g"}
    out = patches.apply_json_patch(doc, [
        {"op": "add", "path": "/a/b~0c/-", "value": 3},
        {"op": "add", "path": "/a/b~0c/0", "value": 0},
        {"op": "replace", "path": "/a/d~1e", "value": "y"},
        {"op": "copy", "from": "/f", "path": "/h"},
        {"op": "move", "from": "/f", "path": "/i"},
        {"op": "test", "path": "/a/b~0c", "value": [0, 1, 2, 3]},
        {"op": "remove", "path": "/a/b~0c/1"},
    ])
    assert out == {"a": {"b~c": [0, 2, 3], "d/e": "y"}, "h": "g", "i": "g"}
    assert doc == {"a": {"b~c": [1, 2], "d/e": "x"}, "f": "g"}  # the input is not modified
    for bad in ([{"op": "replace", "path": "/zz", "value": 1}], [{"op": "test", "path": "/f", "value": 1}],
                [{"op": "add", "path": "/a/b~0c/9", "value": 1}], [{"op": "frobnicate", "path": "/f"}],
                [{"op": "test", "path": "/a/b~0c", "value": [True, 2]}]):
        with pytest.raises(patches.PatchError):
            patches.apply_json_patch(doc, bad)
    assert patches.apply_merge_patch({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"b": None}, "d": [2]}) == \
        {"a": {"c": 2}, "d": [2]}


# ---------------------------------------------------------------------------------------- validation


def test_label_validation_messages(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.create_node({"metadata": {"name": "n2", "labels": {"bad key!": "v"}}})
    assert err.value.status == 422
    body = status_of(err.value)
    assert body["reason"] == "Invalid"
    assert body["message"] == f'Node "n2" is invalid: metadata.labels: Invalid value: "bad key!": {LABEL_NAME_ERROR}'
    assert body["details"]["kind"] == "Node" and body["details"]["name"] == "n2"
    assert body["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "metadata.labels",
                                          "message": f'Invalid value: "bad key!": {LABEL_NAME_ERROR}'}]

    long_name = "x" * 64
    with pytest.raises(ApiException) as err:
        core.create_node({"metadata": {"name": "n2", "labels": {f"models.ome.io/{long_name}": "v", "k": "v" * 64}}})
    message = status_of(err.value)["message"]
    assert message.startswith('Node "n2" is invalid: [metadata.labels: ')
    assert f'Invalid value: "models.ome.io/{long_name}": name part must be no more than 63 bytes' in message
    assert f'Invalid value: "{"v" * 64}": must be no more than 63 bytes' in message

    with pytest.raises(ApiException) as err:
        core.create_node({"metadata": {"name": "n2", "labels": {"Bad_Prefix/x": "v"}}})
    assert "prefix part a lowercase RFC 1123 subdomain must consist of lower case" in status_of(err.value)["message"]
    ok = core.create_node({"metadata": {"name": "n2", "labels": {("a" * 253) + "/" + ("b" * 63): "v" * 63, "e": ""}}})
    assert len(ok.metadata.labels) == 2


def test_object_name_validation(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("default", {"metadata": {"name": "Bad_Name"}})
    assert err.value.status == 422
    assert status_of(err.value)["message"].startswith(
        'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain')
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("default", {"metadata": {}})
    assert status_of(err.value)["message"] == (
        'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required')


def test_configmap_size_limit_and_keys(core: client.CoreV1Api) -> None:
    limit = 1024 * 1024
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("ome", {"metadata": {"name": "big"}, "data": {"a": "x" * (limit + 1)}})
    assert err.value.status == 422
    body = status_of(err.value)
    assert body["message"] == 'ConfigMap "big" is invalid: []: Too long: may not be more than 1048576 bytes'
    assert body["details"]["causes"] == [
        {"reason": "FieldValueTooLong", "message": "Too long: may not be more than 1048576 bytes", "field": "[]"}]

    binary = base64.b64encode(b"\0" * 100).decode()
    exact = core.create_namespaced_config_map(
        "ome", {"metadata": {"name": "big"}, "data": {"a": "x" * (limit - 100)}, "binaryData": {"b": binary}})
    assert len(exact.data["a"]) == limit - 100
    exact.data["a"] += "x"  # binaryData counts decoded bytes: now one byte over
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("big", "ome", exact)
    assert err.value.status == 422 and "Too long: may not be more than 1048576 bytes" in status_of(err.value)["message"]

    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("ome", {"metadata": {"name": "keys"}, "data": {"bad/key": "v"}})
    assert status_of(err.value)["message"] == (
        'ConfigMap "keys" is invalid: data[bad/key]: Invalid value: "bad/key": a valid config key must consist of '
        "alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used "
        "for validation is '[-._a-zA-Z0-9]+')")
    core.create_namespaced_config_map("ome", {"metadata": {"name": "keys"},
                                              "data": {"clusterbasemodel.phi": "{}", "ns.basemodel.x_Y-1": "{}"}})


def test_wrong_json_types_are_bad_requests(core: client.CoreV1Api, fake_kube: FakeKubeAPI) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", fake_kube.port, timeout=10)
    try:
        conn.request("POST", "/api/v1/namespaces/default/configmaps",
                     body=json.dumps({"metadata": {"name": "x", "labels": {"a": 1}}}),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 400
        assert body["message"] == ('ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot '
                                   "unmarshal number into Go struct field ObjectMeta.metadata.labels of type string")
        conn.request("POST", "/api/v1/namespaces/default/configmaps", body=b"{not json",
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 400 and "json parse error" in json.loads(resp.read())["message"]
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------- selectors


def test_label_and_field_selectors_on_list(core: client.CoreV1Api) -> None:
    for name, labels in [("n1", {"tier": "gpu", "zone": "a"}), ("n2", {"tier": "cpu", "zone": "b"}),
                         ("n3", {"tier": "gpu"}), ("n4", {"count": "8"})]:
        core.create_node({"metadata": {"name": name, "labels": labels}})

    def names(**kw: Any) -> list[str]:
        return [n.metadata.name for n in core.list_node(**kw).items]

    assert names(label_selector="tier=gpu") == ["n1", "n3"]
    assert names(label_selector="tier==gpu,zone=a") == ["n1"]
    assert names(label_selector="tier!=gpu") == ["n2", "n4"]
    assert names(label_selector="zone in (a, b)") == ["n1", "n2"]
    assert names(label_selector="zone notin (a)") == ["n2", "n3", "n4"]
    assert names(label_selector="zone") == ["n1", "n2"]
    assert names(label_selector="!zone") == ["n3", "n4"]
    assert names(label_selector="count>7") == ["n4"]
    assert names(field_selector="metadata.name=n2") == ["n2"]
    assert names(field_selector="metadata.name!=n2", label_selector="tier") == ["n1", "n3"]
    with pytest.raises(ApiException) as err:
        core.list_node(label_selector="zone in (a")
    assert err.value.status == 400
    with pytest.raises(ApiException) as err:
        core.list_node(field_selector="spec.podCIDR=x")
    assert err.value.status == 400 and status_of(err.value)["message"] == "field label not supported: spec.podCIDR"


def test_field_selectors_on_namespaced_and_custom(core: client.CoreV1Api, custom: client.CustomObjectsApi) -> None:
    for ns in ("default", "ome"):
        core.create_namespaced_config_map(ns, {"metadata": {"name": "same"}})
    everywhere = core.list_config_map_for_all_namespaces(field_selector="metadata.namespace=ome")
    assert [(c.metadata.namespace, c.metadata.name) for c in everywhere.items] == [("ome", "same")]
    with pytest.raises(ApiException) as err:
        custom.list_cluster_custom_object(GROUP, VERSION, "clusterbasemodels", field_selector="spec.x=y")
    assert status_of(err.value)["message"] == (
        '"spec.x" is not a known field selector: only "metadata.name", "metadata.namespace"')


def test_label_selector_parser() -> None:
    sel = LabelSelector.parse("a in (x,),b notin (y),!c,d,e!=f,g=")
    assert sel.matches({"a": "x", "d": "1", "g": ""})
    assert sel.matches({"a": "", "d": "1", "g": ""})
    assert not sel.matches({"a": "x", "d": "1", "g": "", "c": "z"})
    assert not sel.matches({"a": "x", "b": "y", "d": "1", "g": ""})
    assert not sel.matches({"a": "x", "d": "1", "e": "f", "g": ""})
    for bad in ("a in ()", "a b", "=x", "a in (x", "bad key=1", "a=b=c", "a<b", "a,,b"):
        with pytest.raises(SelectorError):
            LabelSelector.parse(bad)


# ---------------------------------------------------------------------------------------- watches


def test_watch_from_zero_then_live_changes(core: client.CoreV1Api, fake_kube: FakeKubeAPI,
                                           collectors: list[Collector]) -> None:
    core.create_namespaced_config_map("ome", {"metadata": {"name": "a"}})
    core.create_namespaced_config_map("ome", {"metadata": {"name": "b"}})
    c = Collector(core.list_namespaced_config_map, "ome", resource_version="0")
    collectors.append(c)
    assert [summary(c.next_event()) for _ in range(2)] == [("ADDED", "a"), ("ADDED", "b")]
    fake_kube.wait_for_watches(1)
    core.patch_namespaced_config_map("a", "ome", {"data": {"k": "v"}})
    core.delete_namespaced_config_map("b", "ome")
    modified, deleted = c.next_event(), c.next_event()
    assert summary(modified) == ("MODIFIED", "a") and modified["object"].data == {"k": "v"}
    assert summary(deleted) == ("DELETED", "b")
    assert deleted["object"].metadata.resource_version == fake_kube.resource_version
    assert c.watch.resource_version == fake_kube.resource_version


def test_watch_from_resource_version_replays_only_later_changes(core: client.CoreV1Api) -> None:
    first = core.create_namespaced_config_map("ome", {"metadata": {"name": "a"}})
    core.create_namespaced_config_map("ome", {"metadata": {"name": "b"}})
    core.patch_namespaced_config_map("a", "ome", {"data": {"x": "1"}})
    core.create_namespaced_config_map("ome", {"metadata": {"name": "end"}})  # marker: the last change
    events = first_events(core.list_namespaced_config_map, "ome", count=3,
                          resource_version=first.metadata.resource_version)
    assert [summary(e) for e in events] == [("ADDED", "b"), ("MODIFIED", "a"), ("ADDED", "end")]
    rvs = [int(e["object"].metadata.resource_version) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(first.metadata.resource_version)


def test_watch_too_old_resource_version_raises_410(fake_kube_factory: Callable[..., FakeKubeAPI]) -> None:
    kube = fake_kube_factory(history_size=3)
    with kube.api_client() as api:
        core = client.CoreV1Api(api)
        old = core.create_namespaced_config_map("default", {"metadata": {"name": "c0"}}).metadata.resource_version
        for i in range(1, 5):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
        kube.clear_requests()
        with pytest.raises(ApiException) as err:
            for _ in watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=old):
                pytest.fail("no event expected from an expired resourceVersion")
        assert err.value.status == 410
        assert err.value.reason.startswith(f"Expired: too old resource version: {old} (")
        watches = kube.find_requests(verb="watch")
        assert [r.query["resourceVersion"] for r in watches] == [old, old]  # retried once, same RV
        with pytest.raises(ApiException) as err:  # with timeout_seconds the client does not retry
            list(watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=old,
                                      timeout_seconds=60))
        assert err.value.status == 410 and len(kube.find_requests(verb="watch")) == 3
        recent = core.list_namespaced_config_map("default").metadata.resource_version
        assert list(watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=recent,
                                         timeout_seconds=1)) == []


def test_compact_expires_every_older_version(core: client.CoreV1Api, fake_kube: FakeKubeAPI) -> None:
    rv = core.create_namespaced_config_map("ome", {"metadata": {"name": "a"}}).metadata.resource_version
    core.patch_namespaced_config_map("a", "ome", {"data": {"x": "1"}})
    fake_kube.compact()
    with pytest.raises(ApiException) as err:
        list(watch.Watch().stream(core.list_namespaced_config_map, "ome", resource_version=rv, timeout_seconds=60))
    assert err.value.status == 410


def test_watch_bookmarks(fake_kube_factory: Callable[..., FakeKubeAPI]) -> None:
    kube = fake_kube_factory(bookmark_interval=0.2)
    with kube.api_client() as api:
        custom = client.CustomObjectsApi(api)
        custom.create_cluster_custom_object(GROUP, VERSION, "clusterbasemodels", cluster_base_model("phi"))
        w = watch.Watch()
        events = []
        for event in w.stream(custom.list_cluster_custom_object, GROUP, VERSION, "clusterbasemodels",
                              allow_watch_bookmarks=True, timeout_seconds=10):
            events.append(event)
            if event["type"] == "BOOKMARK":
                w.stop()
        assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
        mark = events[-1]["raw_object"]
        assert mark == {"kind": "ClusterBaseModel", "apiVersion": "ome.io/v1beta1",
                        "metadata": {"resourceVersion": kube.resource_version}}
        assert w.resource_version == kube.resource_version
        assert kube.find_requests(verb="watch")[0].query["allowWatchBookmarks"] == "true"


def test_watch_without_bookmark_permission_gets_none(fake_kube_factory: Callable[..., FakeKubeAPI]) -> None:
    kube = fake_kube_factory(bookmark_interval=0.05)
    with kube.api_client() as api:
        core = client.CoreV1Api(api)
        events = list(watch.Watch().stream(core.list_node, timeout_seconds=1))
        assert events == []


def test_timeout_seconds_ends_the_stream(core: client.CoreV1Api, fake_kube: FakeKubeAPI) -> None:
    core.create_node({"metadata": {"name": "n1"}})
    current = core.list_node().metadata.resource_version
    # From the current resourceVersion: nothing to send, so only the timeout can end the stream. (With
    # initial events, a server thread stalled past the 1 s deadline would end it before sending them.)
    started = time.monotonic()
    events = list(watch.Watch().stream(core.list_node, resource_version=current, timeout_seconds=1))
    assert events == []
    assert time.monotonic() - started >= 1.0  # a lower bound: the server holds the stream open until then
    (request,) = fake_kube.find_requests(verb="watch")
    assert request.query["timeoutSeconds"] == "1" and request.status == 200
    fake_kube.wait_for_watches(0, timeout=30)  # the server closes its side just after the client finishes reading


def test_watch_selector_transitions(core: client.CoreV1Api, fake_kube: FakeKubeAPI,
                                    collectors: list[Collector]) -> None:
    c = Collector(core.list_namespaced_config_map, "ome", label_selector="app=a")
    collectors.append(c)
    fake_kube.wait_for_watches(1)
    core.create_namespaced_config_map("ome", {"metadata": {"name": "x", "labels": {"app": "b"}}})
    core.create_namespaced_config_map("ome", {"metadata": {"name": "y", "labels": {"app": "a"}}})
    before = core.patch_namespaced_config_map("y", "ome", {"data": {"k": "1"}})
    left = core.patch_namespaced_config_map("y", "ome", {"metadata": {"labels": {"app": "b"}}})
    core.patch_namespaced_config_map("y", "ome", {"data": {"k": "2"}})  # not matching: not seen
    core.patch_namespaced_config_map("y", "ome", {"metadata": {"labels": {"app": "a"}}})
    seen = [c.next_event() for _ in range(4)]
    assert [summary(e) for e in seen] == [("ADDED", "y"), ("MODIFIED", "y"), ("DELETED", "y"), ("ADDED", "y")]
    gone = seen[2]["raw_object"]
    assert gone["metadata"]["labels"] == {"app": "a"}  # the last state that matched ...
    assert gone["data"] == before.data
    assert gone["metadata"]["resourceVersion"] == left.metadata.resource_version  # ... at the new RV
    assert seen[3]["raw_object"]["data"] == {"k": "2"}


def test_single_object_watch_by_field_selector(core: client.CoreV1Api, fake_kube: FakeKubeAPI,
                                               collectors: list[Collector]) -> None:
    core.create_node({"metadata": {"name": "me"}})
    core.create_node({"metadata": {"name": "other"}})
    c = Collector(core.list_node, field_selector="metadata.name=me")
    collectors.append(c)
    assert summary(c.next_event()) == ("ADDED", "me")
    fake_kube.wait_for_watches(1)
    core.patch_node("other", {"metadata": {"labels": {"a": "b"}}})
    core.patch_node("me", {"metadata": {"labels": {"a": "b"}}})
    event = c.next_event()
    assert summary(event) == ("MODIFIED", "me") and event["object"].metadata.labels == {"a": "b"}


def test_finalizer_deletion_flow(custom: client.CustomObjectsApi, fake_kube: FakeKubeAPI,
                                 collectors: list[Collector]) -> None:
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, "default", "basemodels", base_model("m", finalizers=["basemodels.ome.io/finalizer"]))
    c = Collector(custom.list_namespaced_custom_object, GROUP, VERSION, "default", "basemodels",
                  resource_version=created["metadata"]["resourceVersion"])
    collectors.append(c)
    fake_kube.wait_for_watches(1)
    pending = custom.delete_namespaced_custom_object(GROUP, VERSION, "default", "basemodels", "m")
    assert pending["metadata"]["deletionTimestamp"] and pending["metadata"]["generation"] == 2
    still = custom.get_namespaced_custom_object(GROUP, VERSION, "default", "basemodels", "m")
    assert still["metadata"]["deletionTimestamp"] == pending["metadata"]["deletionTimestamp"]
    again = custom.delete_namespaced_custom_object(GROUP, VERSION, "default", "basemodels", "m")
    assert again["metadata"]["resourceVersion"] == still["metadata"]["resourceVersion"]  # no new write
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(GROUP, VERSION, "default", "basemodels", "m",
                                              {"metadata": {"finalizers": ["a.io/x", "basemodels.ome.io/finalizer"]}})
    assert err.value.status == 422 and "no new finalizers can be added" in status_of(err.value)["message"]
    custom.patch_namespaced_custom_object(GROUP, VERSION, "default", "basemodels", "m",
                                          {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as err:
        custom.get_namespaced_custom_object(GROUP, VERSION, "default", "basemodels", "m")
    assert err.value.status == 404
    modified, deleted = c.next_event(), c.next_event()
    assert modified["type"] == "MODIFIED" and modified["object"]["metadata"]["deletionTimestamp"]
    assert deleted["type"] == "DELETED"
    assert int(deleted["object"]["metadata"]["resourceVersion"]) == int(fake_kube.resource_version)


def test_delete_preconditions(core: client.CoreV1Api) -> None:
    cm = core.create_namespaced_config_map("ome", {"metadata": {"name": "a"}})
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map("a", "ome", body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(resource_version="1")))
    assert err.value.status == 409 and "Precondition failed: ResourceVersion in precondition: 1" in \
        status_of(err.value)["message"]
    core.delete_namespaced_config_map("a", "ome", body=client.V1DeleteOptions(
        preconditions=client.V1Preconditions(uid=cm.metadata.uid)))


def test_python_client_22_query_style(fake_kube: FakeKubeAPI) -> None:
    """kubernetes 22.6 sends booleans as ``True`` and URL-encodes the selector's ``=``."""
    fake_kube.add_node("n1")
    fake_kube.add_node("n2")
    conn = http.client.HTTPConnection("127.0.0.1", fake_kube.port, timeout=30)
    try:
        # n2 would come right after n1 if the selector were ignored; the change to n1 marks the end.
        lines = watch_lines(conn, "/api/v1/nodes?fieldSelector=metadata.name%3Dn1&watch=True"
                                  "&allowWatchBookmarks=True&timeoutSeconds=60", 2,
                            lambda: fake_kube.patch("nodes", "n1", {"metadata": {"labels": {"a": "b"}}}))
    finally:
        conn.close()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in lines] == [("ADDED", "n1"), ("MODIFIED", "n1")]
    assert lines[0]["object"]["kind"] == "Node"


def test_watch_with_initial_events_end_bookmark(fake_kube: FakeKubeAPI) -> None:
    fake_kube.add_node("n1")
    conn = http.client.HTTPConnection("127.0.0.1", fake_kube.port, timeout=30)
    try:
        lines = watch_lines(conn, "/api/v1/nodes?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                                  "&allowWatchBookmarks=true&timeoutSeconds=60", 2)
    finally:
        conn.close()
    assert [e["type"] for e in lines] == ["ADDED", "BOOKMARK"]
    assert lines[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_all_namespace_watch_of_custom_resources(custom: client.CustomObjectsApi, fake_kube: FakeKubeAPI,
                                                 collectors: list[Collector]) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, "default", "basemodels", base_model("a"))
    custom.create_namespaced_custom_object(GROUP, VERSION, "ome", "basemodels", base_model("b"))
    c = Collector(custom.list_cluster_custom_object, GROUP, VERSION, "basemodels")
    collectors.append(c)
    first = [c.next_event() for _ in range(2)]
    assert [(e["type"], e["object"]["metadata"]["namespace"]) for e in first] == [("ADDED", "default"),
                                                                                   ("ADDED", "ome")]
    fake_kube.wait_for_watches(1)
    fake_kube.patch("basemodels", "b", {"spec": {"modelType": "phi"}}, namespace="ome")
    event = c.next_event()
    assert event["type"] == "MODIFIED" and event["object"]["spec"]["modelType"] == "phi"
    assert event["object"]["metadata"]["generation"] == 2


def test_stopping_the_server_ends_open_watches(fake_kube_factory: Callable[..., FakeKubeAPI]) -> None:
    kube = fake_kube_factory()
    kube.add_node("n1")
    with kube.api_client() as api:
        c = Collector(client.CoreV1Api(api).list_node, timeout_seconds=60)
        assert summary(c.next_event()) == ("ADDED", "n1")
        kube.wait_for_watches(1)
        kube.stop()
        assert c.next() == Collector.END  # a clean end of stream, no error
        c.thread.join(10)
        assert not c.thread.is_alive()


# ---------------------------------------------------------------------------------------- faults


def test_graceful_watch_drop_client_reconnects(core: client.CoreV1Api, fake_kube: FakeKubeAPI,
                                               collectors: list[Collector]) -> None:
    core.create_node({"metadata": {"name": "n1"}})
    c = Collector(core.list_node)
    collectors.append(c)
    assert summary(c.next_event()) == ("ADDED", "n1")
    fake_kube.wait_for_watches(1)
    seen_rv = c.watch.resource_version
    assert fake_kube.drop_watches(graceful=True) == 1
    second = fake_kube.wait_for_request(lambda r: r.verb == "watch" and "resourceVersion" in r.query)
    assert second.query["resourceVersion"] == seen_rv
    core.create_node({"metadata": {"name": "n2"}})
    assert summary(c.next_event()) == ("ADDED", "n2")
    assert c.items.empty()  # n1 is not replayed


def test_abrupt_watch_drop_raises_and_caller_resumes(core: client.CoreV1Api, fake_kube: FakeKubeAPI,
                                                     collectors: list[Collector]) -> None:
    core.create_node({"metadata": {"name": "n1"}})
    c = Collector(core.list_node)
    collectors.append(c)
    assert summary(c.next_event()) == ("ADDED", "n1")
    fake_kube.wait_for_watches(1)
    assert fake_kube.drop_watches() == 1
    error = c.next()
    assert isinstance(error, urllib3.exceptions.ProtocolError)
    assert c.next() == Collector.END
    core.create_node({"metadata": {"name": "n2"}})
    resumed = Collector(core.list_node, resource_version=c.watch.resource_version, timeout_seconds=60)
    collectors.append(resumed)
    assert summary(resumed.next_event()) == ("ADDED", "n2")
    core.create_node({"metadata": {"name": "n3"}})  # a marker: nothing (no n1 replay) comes in between
    assert summary(resumed.next_event()) == ("ADDED", "n3")


def test_fail_next_500_then_success(core: client.CoreV1Api, fake_kube: FakeKubeAPI) -> None:
    rule = fake_kube.fail_next(2, 500, verb="list", path=r"/configmaps$")
    core.list_namespace()  # does not match
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            core.list_namespaced_config_map("ome")
        assert err.value.status == 500 and status_of(err.value)["reason"] == "InternalError"
    assert core.list_namespaced_config_map("ome").items == []
    assert rule.hits == 2 and rule.remaining == 0
    assert [r.status for r in fake_kube.find_requests(verb="list", resource="configmaps")] == [500, 500, 200]


def test_fail_next_429_with_retry_after(fake_kube: FakeKubeAPI) -> None:
    fake_kube.fail_next(1, 429, verb="create", path="/configmaps", retry_after=7)
    with fake_kube.api_client() as api:
        core = client.CoreV1Api(api)
        with pytest.raises(ApiException) as err:  # POST is never retried by urllib3
            core.create_namespaced_config_map("ome", {"metadata": {"name": "a"}})
        assert err.value.status == 429 and err.value.headers["Retry-After"] == "7"
        assert status_of(err.value)["reason"] == "TooManyRequests"
        assert status_of(err.value)["details"] == {"retryAfterSeconds": 7}
        core.create_namespaced_config_map("ome", {"metadata": {"name": "a"}})


def test_urllib3_retries_idempotent_429_with_retry_after(fake_kube: FakeKubeAPI) -> None:
    """The client's default urllib3 Retry (3 tries) waits out Retry-After on 413/429/503 for GET/PUT/DELETE."""
    fake_kube.add_node("n1")
    fake_kube.fail_next(2, 429, verb="get", path="/nodes/n1", retry_after=0)
    with fake_kube.api_client() as api:
        assert client.CoreV1Api(api).read_node("n1").metadata.name == "n1"
    assert [r.status for r in fake_kube.find_requests(verb="get", resource="nodes")] == [429, 429, 200]
    fake_kube.fail_next(4, 429, verb="get", path="/nodes/n1", retry_after=0)
    with fake_kube.api_client() as api:
        with pytest.raises(ApiException) as err:  # more than three: the 429 reaches the caller
            client.CoreV1Api(api).read_node("n1")
    assert err.value.status == 429
    fake_kube.fail_next(1, 500, verb="get", path="/nodes/n1")
    with fake_kube.api_client() as api:
        with pytest.raises(ApiException) as err:  # no Retry-After: no retry
            client.CoreV1Api(api).read_node("n1")
    assert err.value.status == 500


def test_fail_next_409_on_update(core: client.CoreV1Api, fake_kube: FakeKubeAPI) -> None:
    cm = core.create_namespaced_config_map("ome", {"metadata": {"name": "a"}})
    fake_kube.fail_next(1, 409, verb="update")
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("a", "ome", cm)
    assert err.value.status == 409 and status_of(err.value)["message"].startswith(
        'Operation cannot be fulfilled on configmaps "a"')
    core.replace_namespaced_config_map("a", "ome", cm)


def test_silent_watch_hits_client_read_timeout(core: client.CoreV1Api, fake_kube: FakeKubeAPI) -> None:
    fake_kube.add_node("n1")
    fake_kube.silence_watches(future=1)
    before = set(threading.enumerate())
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        for _ in watch.Watch().stream(core.list_node, _request_timeout=(5, 0.5)):
            pytest.fail("a silent watch sends nothing")
    # The client may give up before the server even got to the request. Let the server finish that watch (it
    # takes the silence, notices the client hung up and ends) so the next watch cannot be the one silenced.
    fake_kube.wait_for_request(lambda r: r.verb == "watch", timeout=30)
    for handler in handler_threads_since(before):
        handler.join(30)
    fake_kube.wait_for_watches(0, timeout=30)
    assert [summary(e) for e in first_events(core.list_node, count=1)] == [("ADDED", "n1")]


def test_silence_an_open_watch(core: client.CoreV1Api, fake_kube: FakeKubeAPI,
                               collectors: list[Collector]) -> None:
    fake_kube.add_node("n1")
    # The client gives up after 1 s without data. Should the server take that long to send the first event, or
    # this thread stall that long before silence_watches() (the watch is gone then: 0 silenced), the attempt
    # proves nothing: start over with a new watch.
    for _attempt in range(5):
        fake_kube.wait_for_watches(0, timeout=30)
        c = Collector(core.list_node, _request_timeout=(5, 1))
        collectors.append(c)
        first = c.next()
        if isinstance(first, urllib3.exceptions.ReadTimeoutError):
            continue
        assert isinstance(first, dict) and summary(first) == ("ADDED", "n1")
        if fake_kube.silence_watches() == 1:
            break
        assert isinstance(c.next(), urllib3.exceptions.ReadTimeoutError)
    else:
        pytest.fail("the watch never stayed open until silence_watches()")
    fake_kube.add_node("n2")
    assert isinstance(c.next(), urllib3.exceptions.ReadTimeoutError)


def test_delay_holds_a_response(core: client.CoreV1Api, fake_kube: FakeKubeAPI) -> None:
    rule = fake_kube.delay(3.0, count=1, verb="create")
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        core.create_namespaced_config_map("ome", {"metadata": {"name": "slow"}}, _request_timeout=(5, 0.3))
    # like a slow real server, the write still happens after the client gave up
    fake_kube.wait_for_request(lambda r: r.verb == "create" and r.status == 201, timeout=30)
    assert rule.hits == 1  # counted by the server thread, which may not have run before the client gave up
    assert core.read_namespaced_config_map("slow", "ome").metadata.name == "slow"
    core.create_namespaced_config_map("ome", {"metadata": {"name": "fast"}}, _request_timeout=(5, 5))


def test_concurrent_updates_with_conflict_retry(fake_kube: FakeKubeAPI) -> None:
    fake_kube.create("configmaps", {"metadata": {"name": "counter"}, "data": {"n": "0"}}, namespace="ome")
    conflicts = []

    def bump(times: int) -> None:
        with fake_kube.api_client() as api:
            core = client.CoreV1Api(api)
            for _ in range(times):
                for _attempt in range(200):
                    cm = core.read_namespaced_config_map("counter", "ome")
                    cm.data["n"] = str(int(cm.data["n"]) + 1)
                    try:
                        core.replace_namespaced_config_map("counter", "ome", cm)
                        break
                    except ApiException as exc:
                        assert exc.status == 409
                        conflicts.append(1)
                else:
                    raise AssertionError("too many conflicts")

    threads = [threading.Thread(target=bump, args=(5,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert fake_kube.get("configmaps", "counter", "ome")["data"]["n"] == "20"
    updates = fake_kube.find_requests(verb="update")
    assert len(updates) == 20 + len(conflicts)
    assert sum(r.status == 409 for r in updates) == len(conflicts)


# ---------------------------------------------------------------------------------------- clients, auth, CLI


def test_dynamic_client_discovery(kube_api_client: Any, tmp_path: Path) -> None:
    dyn = DynamicClient(kube_api_client, cache_file=str(tmp_path / "discovery.json"))
    models = dyn.resources.get(api_version="ome.io/v1beta1", kind="BaseModel")
    assert models.namespaced and models.name == "basemodels"
    models.create(body=base_model("dyn"), namespace="ome")
    assert [m.metadata.name for m in models.get(namespace="ome").items] == ["dyn"]
    nodes = dyn.resources.get(api_version="v1", kind="Node")
    nodes.create(body={"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    assert nodes.get(name="n1").metadata.name == "n1"
    cluster = dyn.resources.get(api_version="ome.io/v1beta1", kind="ClusterBaseModel")
    assert not cluster.namespaced
    version = client.VersionApi(kube_api_client).get_code()
    assert version.major == "1" and version.git_version.startswith("v1.")


def test_bearer_token_auth(fake_kube_factory: Callable[..., FakeKubeAPI]) -> None:
    kube = fake_kube_factory(tokens={"s3cret": "alice"})
    with kube.api_client(token="wrong") as api:
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(api).list_node()
    assert err.value.status == 401 and status_of(err.value)["reason"] == "Unauthorized"
    anonymous = client.Configuration()
    anonymous.host = kube.url
    with client.ApiClient(anonymous) as api:
        with pytest.raises(ApiException) as err:
            client.CoreV1Api(api).list_node()
        assert err.value.status == 401
        assert client.VersionApi(api).get_code().major == "1"
    with kube.api_client() as api:
        assert client.CoreV1Api(api).list_node().items == []
    assert [(r.user, r.status) for r in kube.find_requests(verb="list")] == [(None, 401), (None, 401), ("alice", 200)]


def test_kubeconfig_file(fake_kube_factory: Callable[..., FakeKubeAPI], tmp_path: Path) -> None:
    kube = fake_kube_factory(tokens={"t0k": "agent"})
    path = kube.write_kubeconfig(tmp_path / "kubeconfig", namespace="ome")
    api = config.new_client_from_config(config_file=str(path))
    try:
        names = [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items]
    finally:
        api.close()
    assert "default" in names
    assert kube.find_requests(verb="list")[0].user == "agent"
    contexts, active = config.list_kube_config_contexts(config_file=str(path))
    assert active["context"]["namespace"] == "ome"


def test_kube_config_file_fixture(kube_config_file: Path, fake_kube: FakeKubeAPI) -> None:
    api = config.new_client_from_config(config_file=str(kube_config_file))
    try:
        assert "ome" in [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items]
    finally:
        api.close()


def test_unknown_paths_and_methods(fake_kube: FakeKubeAPI) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", fake_kube.port, timeout=10)
    try:
        for method, path, code in [("GET", "/api/v1/pods", 404), ("GET", "/apis/apps/v1", 404),
                                   ("GET", "/api/v1/configmaps/x", 404), ("POST", "/api/v1/nodes/n1", 405),
                                   ("GET", "/api/v1/namespaces/default/nodes", 404),
                                   ("DELETE", "/api/v1/namespaces/default/configmaps/x/status", 404)]:
            conn.request(method, path)
            resp = conn.getresponse()
            body = json.loads(resp.read())
            assert (resp.status, body["kind"], body["code"]) == (code, "Status", code), (method, path)
    finally:
        conn.close()


def test_command_line_server(tmp_path: Path) -> None:
    port_file, kubeconfig = tmp_path / "port", tmp_path / "kubeconfig"
    proc = subprocess.Popen([sys.executable, "-m", "modelagent.testing.kube_api", "--port", "0",
                             "--port-file", str(port_file), "--kubeconfig", str(kubeconfig), "--namespace", "ome"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        api = config.new_client_from_config(config_file=str(kubeconfig))
        try:
            names = [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items]
        finally:
            api.close()
        assert "ome" in names
        assert f"127.0.0.1:{port_file.read_text().strip()}" in json.loads(kubeconfig.read_text())["clusters"][0][
            "cluster"]["server"]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0 and "listening on http://127.0.0.1:" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def test_constructor_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="history_size"):
        FakeKubeAPI(history_size=0)
    with pytest.raises(ValueError, match="bookmark_interval"):
        FakeKubeAPI(bookmark_interval=0)
    with pytest.raises(KeyError, match="unknown resource 'pods'"):
        FakeKubeAPI().get("pods", "x")
    kube = FakeKubeAPI()
    with pytest.raises(ValueError, match="unsupported fault status"):
        kube.fail_next(1, 418)


def test_a_reset_keep_alive_connection_is_not_reported_as_a_server_error(
    fake_kube: FakeKubeAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket
    import struct

    before = set(threading.enumerate())
    conn = http.client.HTTPConnection("127.0.0.1", fake_kube.port, timeout=10)
    conn.request("GET", "/api/v1/nodes")
    assert conn.getresponse().read()
    (handler,) = handler_threads_since(before)
    # Close with an RST (linger 0) while the server waits for the next request on the connection.
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    # The connection's handler thread sees the reset, reports any error (handle_error) and ends: join it.
    handler.join(30)
    assert not handler.is_alive()
    httpd = fake_kube._httpd
    assert httpd is not None and not httpd.connections
    assert "Traceback" not in capsys.readouterr().err
