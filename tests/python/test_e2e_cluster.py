"""End-to-end: `model-agent run` against a Kubernetes API server, once on the fake and once on a real one.

Every test runs for both values of the session fixture ``kube_cluster`` (``fake``: the in-repo
:class:`~modelagent.testing.kube_api.FakeKubeAPI`; ``real``: a real kube-apiserver, see
tests/python/e2e_support.py for where it comes from). On both, the agent's CRDs and RBAC come from
``model-agent manifests`` and the agent authenticates as its ServiceAccount, so a permission the agent lacks
(or a request the fake would accept and the real server refuses) fails here. A behaviour that differs
between the two is a bug in the fake.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from e2e_support import E2ECluster, E2ESetupError, Scope, admin_client, real_cluster_kubeconfig, status_of, wait_until
from modelagent import configmap_key, node_label_key
from modelagent.testing.agent_process import AgentProcess
from modelagent.testing.kube_api import FakeKubeAPI
from modelagent.testing.model_factory import DEFAULT_CONFIG

pytestmark = pytest.mark.timeout(300)

CONFIGMAP_LIMIT = 1048576
AGENT_ARGS = ["--num-download-worker", "1", "--progress-interval", "0.2"]
FIRST_CONFIG = {
    "modelType": "llama", "modelArchitecture": "LlamaForCausalLM",
    "modelFramework": {"name": "transformers", "version": "4.44.0"},
    "modelFormat": {"name": "safetensors", "version": "1.0.0"},
    "modelParameterSize": "1.05M", "maxTokens": 512, "modelCapabilities": ["CHAT"],
    "decodedModelConfiguration": {
        "architecture": "LlamaForCausalLM", "context_length": 512, "has_vision": False, "model_size_bytes": 2097152,
        "model_type": "llama", "parameter_count": "1.05M", "torch_dtype": "bfloat16", "transformers_version": "4.44.0"},
}
"""The ConfigMap ``config`` OME's controller reads for the default synthetic model (a tiny Llama, 2 MiB)."""


# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session", params=["fake", "real"])
def kube_cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2ECluster]:
    """The agent's CRDs, RBAC and ServiceAccount installed on the fake or on a real API server."""
    workdir = tmp_path_factory.mktemp(f"e2e-{request.param}")
    if request.param == "fake":
        fake = FakeKubeAPI(tokens={"admin-token": "e2e-admin"}).start()
        api = fake.api_client("admin-token")
        cluster = E2ECluster("fake", api, workdir, fake=fake)
        try:
            cluster.install()
            yield cluster
        finally:
            api.close()
            fake.stop()
        return
    try:
        kubeconfig, stop, skip = real_cluster_kubeconfig(workdir)
    except E2ESetupError as error:
        pytest.fail(str(error), pytrace=False)
    if skip is not None:
        pytest.skip(skip)
    try:
        api = admin_client(kubeconfig)
        cluster = E2ECluster("real", api, workdir)
        cluster.audit_log = kubeconfig.parent / "audit.log"
        try:
            cluster.install()
            yield cluster
        finally:
            cluster.teardown()
            api.close()
    finally:
        stop()


@pytest.fixture
def scope(kube_cluster: E2ECluster) -> Iterator[Scope]:
    """This test's namespaces, Nodes and models, deleted at teardown."""
    with kube_cluster.scope() as created:
        yield created


@pytest.fixture
def start_agent(kube_cluster: E2ECluster, model_agent_factory: Callable[..., AgentProcess],
                fake_hub: Any) -> Callable[..., AgentProcess]:
    """Start a ready agent for ``node`` as the ServiceAccount, downloading from ``fake_hub``."""
    def start(node: str, *, namespace: str | None = None, args: list[str] | None = None,
              models_root: Path | None = None, wait_ready: bool = True) -> AgentProcess:
        return model_agent_factory(kubeconfig=kube_cluster.agent_kubeconfig, node_name=node,
                                   namespace=namespace or kube_cluster.agent_namespace, hf_endpoint=fake_hub.url,
                                   args=AGENT_ARGS + (args or []), models_root=models_root, wait_ready=wait_ready)
    return start


def entry_of(scope: Scope, node: str, key: str) -> dict[str, Any] | None:
    text = scope.configmap_data(node).get(key)
    return None if text is None else json.loads(text)


def wait_entry(scope: Scope, node: str, key: str, status: str | None, timeout: float = 60) -> dict[str, Any] | None:
    """Wait until the ConfigMap entry has ``status`` (None: until it is gone)."""
    if status is None:
        wait_until(lambda: entry_of(scope, node, key) is None, f"entry {key} removed from ConfigMap {node}", timeout)
        return None
    return wait_until(lambda: (e := entry_of(scope, node, key)) is not None and e.get("status") == status and e,
                      f"entry {key} of ConfigMap {node} to be {status}", timeout)


def wait_label(scope: Scope, node: str, key: str, value: str | None, timeout: float = 60) -> None:
    wait_until(lambda: scope.node_labels(node).get(key) == value, f"label {key}={value} on node {node}", timeout)


# --------------------------------------------------------------------------------------------- lifecycle


def test_base_model_created_updated_deleted(kube_cluster, scope, start_agent, fake_hub, synthetic_model):
    team = scope.namespace()
    node = scope.node()
    fake_hub.add_repo("org/first", synthetic_model(seed=1).repo_files())
    fake_hub.add_repo("org/second", synthetic_model(seed=2, config=dict(DEFAULT_CONFIG, num_hidden_layers=3)).repo_files())
    agent = start_agent(node)
    key, label = configmap_key("BaseModel", "m", team), node_label_key("BaseModel", "m", team)
    assert (key, label) == (f"{team}.basemodel.m", f"models.ome.io/{team}.basemodel.m")

    scope.model("BaseModel", "m", "hf://org/first", namespace=team)
    entry = wait_entry(scope, node, key, "Ready")
    wait_label(scope, node, label, "Ready")
    assert entry == {"name": "m", "status": "Ready", "config": FIRST_CONFIG}
    configmap = kube_cluster.core.read_namespaced_config_map(node, kube_cluster.agent_namespace)
    assert configmap.metadata.labels == {"models.ome/basemodel-status": "true", "node": node}
    assert configmap.metadata.annotations["models.ome.io/node-name"] == node
    assert configmap.metadata.annotations["models.ome.io/managed-by"] == "model-agent"
    folder = agent.models_root / "basemodels" / team / "m"
    assert (folder / "config.json").is_file()

    # Update: a new storageUri downloads the other repo and the entry follows it.
    fake_hub.clear_requests()
    scope.patch_model("BaseModel", "m", {"spec": {"storage": {"storageUri": "hf://org/second"}}}, namespace=team)
    wait_until(lambda: fake_hub.find_requests(path="org/second"), "a download of org/second")
    wait_entry(scope, node, key, "Ready")
    wait_until(lambda: json.loads((folder / "config.json").read_text()).get("num_hidden_layers") == 3,
               "the second repo's config.json in the model folder")
    assert scope.node_labels(node)[label] == "Ready"

    scope.delete_model("BaseModel", "m", namespace=team)
    wait_entry(scope, node, key, None)
    wait_label(scope, node, label, None)
    wait_until(lambda: not folder.exists(), f"{folder} removed")
    assert agent.running


def test_cluster_base_model_and_base_model_side_by_side(kube_cluster, scope, start_agent, fake_hub, synthetic_model):
    team = scope.namespace()
    node = scope.node()
    fake_hub.add_repo("org/shared", synthetic_model(seed=4).repo_files())
    agent = start_agent(node)
    cluster_name = kube_cluster.unique("cbm")
    cluster_key = configmap_key("ClusterBaseModel", cluster_name)
    assert cluster_key == f"clusterbasemodel.{cluster_name}"
    scope.model("ClusterBaseModel", cluster_name, "hf://org/shared")
    scope.model("BaseModel", "local", "hf://org/shared", namespace=team)

    cluster_entry = wait_entry(scope, node, cluster_key, "Ready")
    wait_entry(scope, node, configmap_key("BaseModel", "local", team), "Ready")
    wait_label(scope, node, f"models.ome.io/clusterbasemodel.{cluster_name}", "Ready")
    wait_label(scope, node, f"models.ome.io/{team}.basemodel.local", "Ready")
    assert cluster_entry == {"name": cluster_name, "status": "Ready", "config": FIRST_CONFIG}
    assert sorted(str(p.relative_to(agent.models_root)) for p in agent.models_root.rglob("config.json")) == [
        f"basemodels/{team}/local/config.json", f"clusterbasemodels/{cluster_name}/config.json"]

    scope.delete_model("ClusterBaseModel", cluster_name)
    wait_entry(scope, node, cluster_key, None)
    wait_label(scope, node, f"models.ome.io/clusterbasemodel.{cluster_name}", None)
    assert entry_of(scope, node, configmap_key("BaseModel", "local", team))["status"] == "Ready"


# --------------------------------------------------------------------------------------------- placement


def test_node_selector_and_node_label_changes(kube_cluster, scope, start_agent, fake_hub, synthetic_model):
    team = scope.namespace()
    node = scope.node({"pool": "a"})
    fake_hub.add_repo("org/m", synthetic_model(seed=5).repo_files())
    start_agent(node)
    key_a, key_b = configmap_key("BaseModel", "for-a", team), configmap_key("BaseModel", "for-b", team)
    label_a, label_b = node_label_key("BaseModel", "for-a", team), node_label_key("BaseModel", "for-b", team)

    scope.model("BaseModel", "for-b", "hf://org/m", namespace=team, spec={"storage": {
        "storageUri": "hf://org/m", "nodeSelector": {"pool": "b"}}})
    scope.model("BaseModel", "for-a", "hf://org/m", namespace=team, spec={"storage": {
        "storageUri": "hf://org/m", "nodeSelector": {"pool": "a"}}})
    wait_entry(scope, node, key_a, "Ready")
    wait_label(scope, node, label_a, "Ready")
    # for-b was created first and the agent handles events in order: by now it was seen and left alone.
    assert entry_of(scope, node, key_b) is None and label_b not in scope.node_labels(node)

    kube_cluster.core.patch_node(node, {"metadata": {"labels": {"pool": "b"}}})
    wait_entry(scope, node, key_b, "Ready")
    wait_label(scope, node, label_b, "Ready")
    wait_entry(scope, node, key_a, None)
    wait_label(scope, node, label_a, None)


# --------------------------------------------------------------------------------------------- watches


def test_agent_restart_catches_up_and_watch_resumes(kube_cluster, scope, start_agent, fake_hub, synthetic_model,
                                                   tmp_path):
    team = scope.namespace()
    node = scope.node()
    fake_hub.add_repo("org/m", synthetic_model(seed=6).repo_files())
    root = tmp_path / "models"
    first = start_agent(node, models_root=root)
    scope.model("BaseModel", "kept", "hf://org/m", namespace=team)
    scope.model("BaseModel", "gone", "hf://org/m", namespace=team)
    wait_entry(scope, node, configmap_key("BaseModel", "kept", team), "Ready")
    wait_entry(scope, node, configmap_key("BaseModel", "gone", team), "Ready")
    assert first.stop() == 0

    # While no agent runs: one model deleted, one created. The next agent starts from a fresh list.
    scope.delete_model("BaseModel", "gone", namespace=team)
    scope.model("BaseModel", "new", "hf://org/m", namespace=team)
    second = start_agent(node, models_root=root)
    wait_entry(scope, node, configmap_key("BaseModel", "new", team), "Ready")
    wait_entry(scope, node, configmap_key("BaseModel", "gone", team), None)
    wait_label(scope, node, node_label_key("BaseModel", "gone", team), None)
    assert entry_of(scope, node, configmap_key("BaseModel", "kept", team))["status"] == "Ready"

    if kube_cluster.fake is not None:
        # The fake can also cut the watches and forget its history: the agent re-lists (410) and goes on.
        kube_cluster.fake.compact()
        assert kube_cluster.fake.drop_watches() >= 1
    scope.model("BaseModel", "after", "hf://org/m", namespace=team)
    wait_entry(scope, node, configmap_key("BaseModel", "after", team), "Ready")
    assert second.running


# --------------------------------------------------------------------------------------------- ConfigMap


def test_concurrent_configmap_writer_loses_nothing(kube_cluster, scope, start_agent, fake_hub, synthetic_model):
    team = scope.namespace()
    node = scope.node()
    for i in range(3):
        fake_hub.add_repo(f"org/m{i}", synthetic_model(seed=10 + i).repo_files())
    ns = kube_cluster.agent_namespace
    counter = "example.com/other-writer"
    kube_cluster.core.create_namespaced_config_map(ns, {"metadata": {"name": node, "annotations": {counter: "0"}}})
    start_agent(node)
    stop = threading.Event()
    writes = {"count": 0, "conflicts": 0}

    def other_writer() -> None:
        # Read-modify-write with the resourceVersion, like `kubectl annotate` against the agent's writes.
        core = client.CoreV1Api(kube_cluster.admin)
        while not stop.is_set():
            configmap = core.read_namespaced_config_map(node, ns)
            configmap.metadata.annotations = dict(configmap.metadata.annotations or {},
                                                  **{counter: str(writes["count"] + 1)})
            try:
                core.replace_namespaced_config_map(node, ns, configmap)
                writes["count"] += 1
            except ApiException as error:
                assert error.status == 409, error
                writes["conflicts"] += 1
            time.sleep(0.01)

    thread = threading.Thread(target=other_writer, daemon=True)
    thread.start()
    try:
        for i in range(3):
            scope.model("BaseModel", f"m{i}", f"hf://org/m{i}", namespace=team)
        for i in range(3):
            wait_entry(scope, node, configmap_key("BaseModel", f"m{i}", team), "Ready", timeout=120)
    finally:
        stop.set()
        thread.join(10)
    configmap = kube_cluster.core.read_namespaced_config_map(node, ns)
    # Neither writer lost an update: the last counter the other writer stored, and every entry Ready.
    assert writes["count"] > 0 and configmap.metadata.annotations[counter] == str(writes["count"])
    assert configmap.metadata.annotations["models.ome.io/managed-by"] == "model-agent"
    data = configmap.data or {}
    assert all(json.loads(data[configmap_key("BaseModel", f"m{i}", team)])["status"] == "Ready" for i in range(3))


def test_configmap_over_1_mib_is_refused_and_reported(kube_cluster, scope, start_agent, fake_hub, synthetic_model):
    team = scope.namespace()
    node = scope.node()
    ns = kube_cluster.agent_namespace
    with pytest.raises(ApiException) as too_big:
        kube_cluster.core.create_namespaced_config_map(
            ns, {"metadata": {"name": node}, "data": {"filler": "x" * (CONFIGMAP_LIMIT + 1)}})
    assert too_big.value.status == 422
    assert status_of(too_big.value)["message"] == (
        f'ConfigMap "{node}" is invalid: []: Too long: may not be more than {CONFIGMAP_LIMIT} bytes')

    # Someone else's data leaves less room than one entry needs: the agent's write is refused and logged.
    kube_cluster.core.create_namespaced_config_map(
        ns, {"metadata": {"name": node}, "data": {"filler": "x" * (CONFIGMAP_LIMIT - 16)}})
    fake_hub.add_repo("org/m", synthetic_model(seed=7).repo_files())
    agent = start_agent(node)
    scope.model("BaseModel", "m", "hf://org/m", namespace=team)
    record = agent.wait_for_log(lambda r: r.get("level") == "error" and "Too long" in r.get("msg", ""), timeout=60,
                                what="an error log about the ConfigMap size")
    assert f"ConfigMap {ns}/{node}" in record["msg"]
    assert (f'ConfigMap "{node}" is invalid: []: Too long: may not be more than {CONFIGMAP_LIMIT} bytes'
            in record["msg"])
    assert configmap_key("BaseModel", "m", team) not in scope.configmap_data(node)
    assert agent.running


# --------------------------------------------------------------------------------------------- validation


def test_long_model_names_give_valid_labels_and_invalid_labels_are_refused(kube_cluster, scope, start_agent,
                                                                          fake_hub, synthetic_model):
    team = scope.namespace()
    node = scope.node()
    long_name = "a-very-long-model-name-" + "x" * 170
    label = node_label_key("BaseModel", long_name, team)
    assert len(label.split("/", 1)[1]) <= 63
    fake_hub.add_repo("org/m", synthetic_model(seed=8).repo_files())
    start_agent(node)
    scope.model("BaseModel", long_name, "hf://org/m", namespace=team)
    wait_entry(scope, node, configmap_key("BaseModel", long_name, team), "Ready")
    wait_label(scope, node, label, "Ready")

    # What the server says to a label the agent would never write: identical on both servers.
    too_long = "models.ome.io/" + "b" * 64
    with pytest.raises(ApiException) as refused:
        kube_cluster.core.patch_node(node, [{"op": "add", "path": "/metadata/labels/" + too_long.replace("/", "~1"),
                                             "value": "Ready"}])
    status = status_of(refused.value)
    assert refused.value.status == 422 and status["reason"] == "Invalid"
    assert status["message"] == (f'Node "{node}" is invalid: metadata.labels: Invalid value: "{too_long}": '
                                 "name part must be no more than 63 bytes")
    assert [c["field"] for c in status["details"]["causes"]] == ["metadata.labels"] * 4
    with pytest.raises(ApiException) as bad_value:
        kube_cluster.core.patch_node(node, {"metadata": {"labels": {"models.ome.io/x": "v" * 64}}})
    assert status_of(bad_value.value)["message"] == (
        f'Node "{node}" is invalid: metadata.labels: Invalid value: "{"v" * 64}": must be no more than 63 bytes')


# --------------------------------------------------------------------------------------------- back-fill


def test_model_config_parser_back_fills_the_spec(kube_cluster, scope, start_agent, fake_hub, synthetic_model):
    team = scope.namespace()
    node = scope.node()
    fake_hub.add_repo("org/m", synthetic_model(seed=9).repo_files())
    start_agent(node)
    scope.model("BaseModel", "filled", "hf://org/m", namespace=team)
    scope.model("BaseModel", "skipped", "hf://org/m", namespace=team,
                annotations={"ome.oracle.com/skip-config-parsing": "true"})
    scope.model("BaseModel", "preset", "hf://org/m", namespace=team, spec={
        "storage": {"storageUri": "hf://org/m"}, "modelFormat": {"name": "custom-format"}})
    for name in ("filled", "skipped", "preset"):
        wait_entry(scope, node, configmap_key("BaseModel", name, team), "Ready")

    filled = wait_until(lambda: (spec := scope.get_model("BaseModel", "filled", team)["spec"]).get("modelArchitecture")
                        and spec, "the back-filled spec of BaseModel filled")
    back_filled = {
        "modelType": "llama", "modelArchitecture": "LlamaForCausalLM", "modelParameterSize": "1.05M",
        "maxTokens": 512, "modelCapabilities": ["CHAT"],
        "modelConfiguration": FIRST_CONFIG["decodedModelConfiguration"],
        "modelFramework": {"name": "transformers", "version": "4.44.0"},
    }
    assert filled == {"storage": {"storageUri": "hf://org/m"}, "modelFormat": {"name": "safetensors", "version": "1.0.0"},
                      **back_filled}
    assert scope.get_model("BaseModel", "skipped", team)["spec"] == {"storage": {"storageUri": "hf://org/m"}}
    preset = wait_until(lambda: (spec := scope.get_model("BaseModel", "preset", team)["spec"]).get("modelType")
                        and spec, "the back-filled spec of BaseModel preset")
    assert preset == {"storage": {"storageUri": "hf://org/m"}, "modelFormat": {"name": "custom-format"}, **back_filled}


# --------------------------------------------------------------------------------------------- watches


def test_a_watch_from_an_expired_resource_version_gets_a_410_error_event(kube_cluster, scope):
    """The agent's informer lists again when its watch expires; tests/python/test_informer.py proves that on
    the fake's expiry, so the fake's expiry must be the real server's: a 200 stream whose only event is an
    ERROR carrying a 410 Expired Status."""
    team = scope.namespace()
    scope.model("BaseModel", "m", "hf://org/m", namespace=team)
    if kube_cluster.fake is not None:
        kube_cluster.fake.compact()  # a real server's watch cache starts after resourceVersion 1 anyway
    response = kube_cluster.custom.list_namespaced_custom_object(
        "ome.io", "v1beta1", team, "basemodels", watch=True, resource_version="1", timeout_seconds=10,
        _preload_content=False, _request_timeout=30)
    try:
        assert response.status == 200
        lines = [line for line in response.read().split(b"\n") if line.strip()]
    finally:
        response.release_conn()
    assert len(lines) == 1, lines
    event = json.loads(lines[0])
    assert event["type"] == "ERROR"
    status = event["object"]
    message = status.pop("message")
    assert status == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Expired",
                      "code": 410}
    assert re.fullmatch(r"too old resource version: 1 \(\d+\)", message), message


# --------------------------------------------------------------------------------------------- RBAC


def test_service_account_has_least_privilege(kube_cluster, scope):
    team = scope.namespace()
    user = kube_cluster.service_account

    def forbidden(call: Callable[[client.ApiClient], Any]) -> dict[str, Any]:
        with pytest.raises(ApiException) as refused:
            kube_cluster.agent_client_call(call)
        assert refused.value.status == 403, refused.value.body
        return status_of(refused.value)

    status = forbidden(lambda api: client.CoreV1Api(api).list_pod_for_all_namespaces())
    assert status["message"] == (f'pods is forbidden: User "{user}" cannot list resource "pods" in API group "" '
                                 "at the cluster scope")
    assert (status["reason"], status["details"]) == ("Forbidden", {"kind": "pods"})
    node = scope.node()
    status = forbidden(lambda api: client.CoreV1Api(api).delete_node(node))
    assert status["message"] == (f'nodes "{node}" is forbidden: User "{user}" cannot delete resource "nodes" in '
                                 'API group "" at the cluster scope')
    status = forbidden(lambda api: client.CoreV1Api(api).create_namespaced_config_map(team, {"metadata": {"name": "x"}}))
    assert status["message"] == (f'configmaps is forbidden: User "{user}" cannot create resource "configmaps" in '
                                 f'API group "" in the namespace "{team}"')
    status = forbidden(lambda api: client.CustomObjectsApi(api).delete_namespaced_custom_object(
        "ome.io", "v1beta1", team, "basemodels", "m"))
    assert status["message"] == (f'basemodels.ome.io "m" is forbidden: User "{user}" cannot delete resource '
                                 f'"basemodels" in API group "ome.io" in the namespace "{team}"')
    assert status["details"] == {"name": "m", "group": "ome.io", "kind": "basemodels"}
    status = forbidden(lambda api: client.CoreV1Api(api).patch_node_status(node, {"metadata": {"labels": {"a": "b"}}}))
    assert 'cannot patch resource "nodes/status"' in status["message"]

    # What the ServiceAccount may do: its own ConfigMaps (not list them), nodes, models.
    ns = kube_cluster.agent_namespace
    kube_cluster.agent_client_call(lambda api: client.CoreV1Api(api).create_namespaced_config_map(
        ns, {"metadata": {"name": node}, "data": {}}))
    forbidden(lambda api: client.CoreV1Api(api).list_namespaced_config_map(ns))
    forbidden(lambda api: client.CoreV1Api(api).delete_namespaced_config_map(node, ns))
    kube_cluster.agent_client_call(lambda api: client.CoreV1Api(api).patch_node(node, {"metadata": {"labels": {
        "models.ome.io/probe": "Ready"}}}))
    kube_cluster.agent_client_call(lambda api: client.CustomObjectsApi(api).list_cluster_custom_object(
        "ome.io", "v1beta1", "clusterbasemodels"))


def test_agent_reports_a_refused_configmap_write(kube_cluster, scope, start_agent, fake_hub, synthetic_model):
    """Run the agent with a namespace where its Role does not apply: the ConfigMap writes get 403."""
    team = scope.namespace()
    node = scope.node()
    fake_hub.add_repo("org/m", synthetic_model(seed=11).repo_files())
    agent = start_agent(node, namespace=team, wait_ready=False)
    agent.wait_ready(60)
    scope.model("BaseModel", "m", "hf://org/m", namespace=team)
    wanted = (f'configmaps "{node}" is forbidden: User "{kube_cluster.service_account}" cannot get resource '
              f'"configmaps" in API group "" in the namespace "{team}"')
    record = agent.wait_for_log(lambda r: r.get("level") == "error" and "forbidden" in r.get("msg", ""),
                                timeout=60, what="an error log about the refused ConfigMap")
    assert f"ConfigMap {team}/{node}" in record["msg"] and "403" in record["msg"]
    assert wanted in record["msg"]
    # The refused entry does not stop the model: it is downloaded and its node label says so.
    label = node_label_key("BaseModel", "m", team)
    wait_label(scope, node, label, "Ready")
    assert agent.running


def test_agent_uses_exactly_the_granted_permissions(kube_cluster, scope, start_agent, fake_hub, synthetic_model):
    """Every permission of the manifests' RBAC is one the agent uses (apart from token Secrets), and it
    uses nothing else: read from the fake's request log or the real control plane's audit log."""
    since = time.time()
    if kube_cluster.used_permissions(since) is None:
        pytest.skip(f"no audit log at {kube_cluster.audit_log}: only scripts/control-plane's API server writes one")
    team = scope.namespace()
    node = scope.node()
    fake_hub.add_repo("org/m", synthetic_model(seed=12).repo_files())
    agent = start_agent(node)
    cluster_name = kube_cluster.unique("cbm")
    scope.model("BaseModel", "m", "hf://org/m", namespace=team)
    scope.model("ClusterBaseModel", cluster_name, "hf://org/m")
    wait_entry(scope, node, configmap_key("BaseModel", "m", team), "Ready")
    wait_entry(scope, node, configmap_key("ClusterBaseModel", cluster_name), "Ready")
    wait_until(lambda: scope.get_model("ClusterBaseModel", cluster_name)["spec"].get("modelType"),
               "the ClusterBaseModel's back-filled spec")
    scope.delete_model("BaseModel", "m", namespace=team)
    wait_entry(scope, node, configmap_key("BaseModel", "m", team), None)
    assert agent.stop() == 0

    granted = kube_cluster.granted_permissions()
    used = wait_until(lambda: (u := kube_cluster.used_permissions(since)) and ("update", "", "configmaps") in u and u,
                      "the agent's requests in the log", 10)
    assert used <= granted, f"used without a grant: {sorted(used - granted)}"
    assert granted - used == {("get", "", "secrets")}, f"granted but unused: {sorted(granted - used)}"
