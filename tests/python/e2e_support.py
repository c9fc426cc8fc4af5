"""Clusters for the end-to-end suite (tests/python/test_e2e_cluster.py): the fake API server and a real one.

An :class:`E2ECluster` is set up once per session: the agent's CRDs and RBAC from ``model-agent manifests``
are installed into a namespace of its own, and its ServiceAccount gets a bearer token (TokenRequest on a
real server, a registered token on the fake), so the agent under test runs with exactly the permissions
the manifests grant. Tests use :meth:`E2ECluster.scope` for unique names and explicit clean-up: a real
control plane has no garbage collector and no namespace controller.

Where the real cluster comes from (first match wins):

* ``MODELAGENT_TEST_KUBECONFIG``: any cluster (the control plane of ``scripts/control-plane``, kind, ...).
  The kubeconfig's user must be allowed to create CRDs, RBAC, Nodes and namespaces. Plain ``KUBECONFIG``
  is deliberately not used: the suite creates Nodes, and a developer's everyday cluster must not get them.
* otherwise ``scripts/control-plane up`` is run once for the session (and ``down`` at its end) when the
  binaries are cached, or when ``MODELAGENT_E2E_BUILD=1`` allows the first build (about 10 minutes).
* ``MODELAGENT_E2E_REAL=0`` leaves the real cluster out explicitly (its tests are skipped with that reason).
  Anything else that prevents a real cluster fails the tests that need it.
"""

from __future__ import annotations

import calendar
import contextlib
import itertools
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from modelagent.testing.kube_api import FakeKubeAPI

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTROL_PLANE = REPO_ROOT / "scripts" / "control-plane"
GROUP, VERSION = "ome.io", "v1beta1"
PLURALS = {"BaseModel": "basemodels", "ClusterBaseModel": "clusterbasemodels"}
WAIT_TIMEOUT = 60.0
"""Default bound of every wait in the suite, in seconds."""


class E2ESetupError(RuntimeError):
    """The real cluster could not be reached or prepared; the message says what to do."""


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = WAIT_TIMEOUT,
               interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except ApiException as error:
            last_error = error
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_error.status} {last_error.reason})" if isinstance(last_error, ApiException) else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{extra}")
        time.sleep(interval)


def status_of(error: ApiException) -> dict[str, Any]:
    """The Status object of an API error."""
    return json.loads(error.body)


# ------------------------------------------------------------------------------------------------ clusters


class E2ECluster:
    """One API server with the agent's CRDs, RBAC and ServiceAccount installed.

    Attributes:
        kind: ``"fake"`` or ``"real"``.
        admin: an ``ApiClient`` with full rights (for setting up and asserting).
        agent_namespace: the namespace of the agent's ServiceAccount, Role and per-node ConfigMaps.
        service_account: the agent's user name, ``system:serviceaccount:<ns>:ome-model-agent``.
        agent_kubeconfig: a kubeconfig authenticating as that ServiceAccount.
        rbac: the RBAC objects installed (as rendered by ``model-agent manifests``).
        fake: the :class:`FakeKubeAPI` (None for a real cluster).
    """

    def __init__(self, kind: str, admin: client.ApiClient, workdir: Path, fake: FakeKubeAPI | None = None) -> None:
        self.kind = kind
        self.admin = admin
        self.fake = fake
        self.workdir = workdir
        self.run_id = uuid.uuid4().hex[:6]
        self.agent_namespace = f"ma-e2e-{self.run_id}"
        self.core = client.CoreV1Api(admin)
        self.custom = client.CustomObjectsApi(admin)
        self.service_account = f"system:serviceaccount:{self.agent_namespace}:ome-model-agent"
        self.rbac: list[dict[str, Any]] = []
        self.agent_kubeconfig = workdir / "agent-kubeconfig"
        self.audit_log: Path | None = None
        """The API server's audit log (the control plane of scripts/control-plane writes one)."""
        self._cluster_scoped: list[tuple[str, str]] = []
        self._names = itertools.count(1)

    # -------------------------------------------------------------------------------------------- set-up

    def install(self) -> None:
        """Install CRDs and RBAC for :attr:`agent_namespace` and write :attr:`agent_kubeconfig`."""
        rendered = subprocess.run(
            [sys.executable, "-m", "modelagent", "manifests", "--only", "crds,rbac", "--namespace", self.agent_namespace],
            capture_output=True, text=True, timeout=120, check=False)
        if rendered.returncode != 0:
            raise E2ESetupError(f"model-agent manifests failed (exit {rendered.returncode}): {rendered.stderr[-2000:]}")
        docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
        for doc in docs:
            if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                # Cluster-scoped names are shared by every run on the cluster: make them unique to this run.
                doc["metadata"]["name"] += f"-{self.run_id}"
                if doc["kind"] == "ClusterRoleBinding":
                    doc["roleRef"]["name"] += f"-{self.run_id}"
        self.rbac = [d for d in docs if d["kind"] in ("ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding")]
        if self.fake is not None:
            self.fake.add_namespace(self.agent_namespace)
            self.fake.load_rbac(self.rbac)
            token = secrets.token_hex(16)
            self.fake.add_token(token, self.service_account)
            self.fake.write_kubeconfig(self.agent_kubeconfig, token=token, namespace=self.agent_namespace)
            return
        from kubernetes import utils

        for doc in docs:
            if doc["kind"] == "CustomResourceDefinition":
                self._apply_crd(doc)
            else:
                utils.create_from_dict(self.admin, doc)
                if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                    self._cluster_scoped.append((doc["kind"], doc["metadata"]["name"]))
        self._wait_crds_established([d for d in docs if d["kind"] == "CustomResourceDefinition"])
        token = self.core.create_namespaced_service_account_token(
            "ome-model-agent", self.agent_namespace, {"spec": {"expirationSeconds": 3600}}).status.token
        self._write_token_kubeconfig(token)
        # RBAC is enforced at once but its informer may lag a moment behind the create.
        wait_until(lambda: self._sa_can_list_nodes(), "the ServiceAccount's ClusterRoleBinding to take effect", 30)

    def _apply_crd(self, doc: dict[str, Any]) -> None:
        ext = client.ApiextensionsV1Api(self.admin)
        try:
            ext.create_custom_resource_definition(doc)
        except ApiException as error:
            if error.status != 409:
                raise
            current = ext.read_custom_resource_definition(doc["metadata"]["name"])
            doc = dict(doc, metadata=dict(doc["metadata"], resourceVersion=current.metadata.resource_version))
            ext.replace_custom_resource_definition(doc["metadata"]["name"], doc)

    def _wait_crds_established(self, crds: list[dict[str, Any]]) -> None:
        ext = client.ApiextensionsV1Api(self.admin)
        for crd in crds:
            name = crd["metadata"]["name"]
            wait_until(lambda: any(c.type == "Established" and c.status == "True" for c in
                                   (ext.read_custom_resource_definition(name).status.conditions or [])),
                       f"CRD {name} to be Established", 30)
        for crd in crds:  # the new resources must also be served (discovery lags Established a little)
            plural = crd["spec"]["names"]["plural"]
            wait_until(lambda: self._list_ok(plural), f"{plural} to be served", 30)

    def _list_ok(self, plural: str) -> bool:
        try:
            self.custom.list_cluster_custom_object(GROUP, VERSION, plural, limit=1)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def _write_token_kubeconfig(self, token: str) -> None:
        admin_config = self.admin.configuration
        ca = admin_config.ssl_ca_cert
        cluster: dict[str, Any] = {"server": admin_config.host}
        if ca:
            cluster["certificate-authority"] = ca
        if not admin_config.verify_ssl:
            cluster["insecure-skip-tls-verify"] = True
        kubeconfig = {
            "apiVersion": "v1", "kind": "Config", "current-context": "agent",
            "clusters": [{"name": "e2e", "cluster": cluster}],
            "users": [{"name": "agent", "user": {"token": token}}],
            "contexts": [{"name": "agent", "context": {"cluster": "e2e", "user": "agent",
                                                       "namespace": self.agent_namespace}}],
        }
        self.agent_kubeconfig.write_text(json.dumps(kubeconfig))
        self.agent_kubeconfig.chmod(0o600)

    def _sa_can_list_nodes(self) -> bool:
        try:
            self.agent_client_call(lambda api: client.CoreV1Api(api).list_node(limit=1))
        except ApiException as error:
            if error.status == 403:
                return False
            raise
        return True

    def agent_client_call(self, call: Callable[[client.ApiClient], Any]) -> Any:
        """Run ``call`` with an ``ApiClient`` authenticated as the agent's ServiceAccount."""
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(self.agent_kubeconfig), client_configuration=configuration)
        with client.ApiClient(configuration) as api:
            return call(api)

    def granted_permissions(self) -> set[tuple[str, str, str]]:
        """(verb, API group, resource) for every rule of the installed ClusterRoles and Roles."""
        return {(verb, group, resource)
                for doc in self.rbac if doc["kind"] in ("ClusterRole", "Role")
                for rule in doc.get("rules") or []
                for verb in rule["verbs"] for group in rule["apiGroups"] for resource in rule["resources"]}

    def used_permissions(self, since: float) -> set[tuple[str, str, str]] | None:
        """(verb, API group, resource) of the ServiceAccount's requests since ``since`` (a ``time.time()``)
        that were not refused, from the fake's request log or the control plane's audit log; None when the
        cluster's audit log is not available (a cluster not started by scripts/control-plane)."""
        used: set[tuple[str, str, str]] = set()
        if self.fake is not None:
            for record in self.fake.requests:
                if record.user == self.service_account and record.time >= since and record.status not in (401, 403):
                    group = GROUP if record.resource in PLURALS.values() else ""
                    resource = record.resource + (f"/{record.subresource}" if record.subresource else "")
                    used.add((record.verb, group, resource))
            return used
        if self.audit_log is None or not self.audit_log.is_file():
            return None
        with open(self.audit_log, encoding="utf-8") as log:
            for line in log:
                event = json.loads(line)
                ref = event.get("objectRef") or {}
                if (event.get("user", {}).get("username") != self.service_account or not ref.get("resource")
                        or (event.get("responseStatus") or {}).get("code") in (401, 403)):
                    continue
                received = event["requestReceivedTimestamp"]
                if calendar.timegm(time.strptime(received[:19], "%Y-%m-%dT%H:%M:%S")) < since - 1:
                    continue
                resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
                used.add((event["verb"], ref.get("apiGroup", ""), resource))
        return used

    def teardown(self) -> None:
        """Remove what :meth:`install` created that a controller-less cluster would otherwise keep."""
        if self.fake is not None:
            return
        rbac = client.RbacAuthorizationV1Api(self.admin)
        for kind, name in self._cluster_scoped:
            with contextlib.suppress(ApiException):
                if kind == "ClusterRole":
                    rbac.delete_cluster_role(name)
                else:
                    rbac.delete_cluster_role_binding(name)
        with contextlib.suppress(ApiException):
            self.core.delete_namespace(self.agent_namespace)

    # -------------------------------------------------------------------------------------------- per test

    def unique(self, prefix: str) -> str:
        """A DNS-label name unique on the cluster: ``<prefix>-<run id>-<n>``."""
        return f"{prefix}-{self.run_id}-{next(self._names)}"

    @contextlib.contextmanager
    def scope(self) -> Iterator[Scope]:
        """A :class:`Scope` whose objects are deleted when the block ends."""
        scope = Scope(self)
        try:
            yield scope
        finally:
            scope.cleanup()


class Scope:
    """Objects one test creates; :meth:`cleanup` deletes them (the cluster has no garbage collector)."""

    def __init__(self, cluster: E2ECluster) -> None:
        self.cluster = cluster
        self._undo: list[Callable[[], Any]] = []

    def namespace(self, prefix: str = "team") -> str:
        name = self.cluster.unique(prefix)
        self.cluster.core.create_namespace({"metadata": {"name": name}})
        self._undo.append(lambda: self.cluster.core.delete_namespace(name))
        return name

    def node(self, labels: dict[str, str] | None = None) -> str:
        """Create a Node (no kubelet creates one) and remember the agent's ConfigMap for it."""
        name = self.cluster.unique("node")
        all_labels = {"kubernetes.io/hostname": name, **(labels or {})}
        self.cluster.core.create_node({"metadata": {"name": name, "labels": all_labels}})
        self._undo.append(lambda: self.cluster.core.delete_node(name))
        self._undo.append(lambda: self.cluster.core.delete_namespaced_config_map(name, self.cluster.agent_namespace))
        return name

    def model(self, kind: str, name: str, uri: str, namespace: str | None = None,
              spec: dict[str, Any] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
        """Create a BaseModel (``namespace`` given) or ClusterBaseModel."""
        body: dict[str, Any] = {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": kind,
            "metadata": {"name": name, **({"annotations": annotations} if annotations else {})},
            "spec": {"storage": {"storageUri": uri}, **(spec or {})},
        }
        custom, plural = self.cluster.custom, PLURALS[kind]
        if namespace is None:
            created = custom.create_cluster_custom_object(GROUP, VERSION, plural, body)
            self._undo.append(lambda: custom.delete_cluster_custom_object(GROUP, VERSION, plural, name))
        else:
            body["metadata"]["namespace"] = namespace
            created = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
            self._undo.append(lambda: custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name))
        return created

    def get_model(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        custom, plural = self.cluster.custom, PLURALS[kind]
        if namespace is None:
            return custom.get_cluster_custom_object(GROUP, VERSION, plural, name)
        return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)

    def patch_model(self, kind: str, name: str, patch: dict[str, Any], namespace: str | None = None) -> None:
        custom, plural = self.cluster.custom, PLURALS[kind]
        if namespace is None:
            custom.patch_cluster_custom_object(GROUP, VERSION, plural, name, patch)
        else:
            custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, patch)

    def delete_model(self, kind: str, name: str, namespace: str | None = None) -> None:
        custom, plural = self.cluster.custom, PLURALS[kind]
        if namespace is None:
            custom.delete_cluster_custom_object(GROUP, VERSION, plural, name)
        else:
            custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)

    def node_labels(self, node: str) -> dict[str, str]:
        return dict(self.cluster.core.read_node(node).metadata.labels or {})

    def configmap_data(self, node: str) -> dict[str, str]:
        try:
            return dict(self.cluster.core.read_namespaced_config_map(node, self.cluster.agent_namespace).data or {})
        except ApiException as error:
            if error.status == 404:
                return {}
            raise

    def cleanup(self) -> None:
        for undo in reversed(self._undo):
            try:
                undo()
            except ApiException as error:
                if error.status != 404:
                    raise
        self._undo.clear()


# ------------------------------------------------------------------------------------------------ sources


def real_cluster_kubeconfig(workdir: Path) -> tuple[Path | None, Callable[[], None], str | None]:
    """(kubeconfig, stop, skip reason) for the real cluster, following the module's rules."""
    if os.environ.get("MODELAGENT_E2E_REAL", "").strip() == "0":
        return None, lambda: None, "MODELAGENT_E2E_REAL=0: the real-cluster half of the suite is switched off"
    given = os.environ.get("MODELAGENT_TEST_KUBECONFIG")
    if given:
        path = Path(given)
        if not path.is_file():
            raise E2ESetupError(f"MODELAGENT_TEST_KUBECONFIG={given}: no such file")
        return path, lambda: None, None
    if not CONTROL_PLANE.is_file():
        raise E2ESetupError(f"MODELAGENT_TEST_KUBECONFIG is unset and {CONTROL_PLANE} is missing")
    if not _binaries_cached() and os.environ.get("MODELAGENT_E2E_BUILD") != "1":
        raise E2ESetupError(
            "no real cluster: MODELAGENT_TEST_KUBECONFIG is unset and the control-plane binaries are not "
            "built. Run `scripts/control-plane build` once (about 10 minutes), set MODELAGENT_E2E_BUILD=1 to let the "
            "suite build them, point MODELAGENT_TEST_KUBECONFIG at a cluster, or set MODELAGENT_E2E_REAL=0 to skip the real half")
    env = _control_plane_env(workdir)
    up = subprocess.run(["bash", str(CONTROL_PLANE), "up"], capture_output=True, text=True, env=env,
                        timeout=3600 if os.environ.get("MODELAGENT_E2E_BUILD") == "1" else 300)
    if up.returncode != 0:
        raise E2ESetupError(f"scripts/control-plane up failed (exit {up.returncode}):\n{up.stderr[-3000:]}")

    def stop() -> None:
        subprocess.run(["bash", str(CONTROL_PLANE), "down"], capture_output=True, text=True, env=env, timeout=120)

    return Path(up.stdout.strip().splitlines()[-1]), stop, None


def _control_plane_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    # A run directory of the session's own, so a developer's running control plane is left alone.
    env.setdefault("MODELAGENT_CONTROL_PLANE_DIR", str(workdir / "control-plane"))
    return env


def _binaries_cached() -> bool:
    cached = subprocess.run(["bash", "-c", f'source "{REPO_ROOT}/scripts/control-plane.d/versions"; '
                             'd="${XDG_CACHE_HOME:-$HOME/.cache}/modelagent/control-plane/'
                             'k8s-v${K8S_VERSION}_etcd-v${ETCD_VERSION}/bin"; [[ -x $d/etcd && -x $d/kube-apiserver ]]'],
                            timeout=30)
    return cached.returncode == 0


def admin_client(kubeconfig: Path) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    return client.ApiClient(configuration)


__all__ = ["E2ECluster", "E2ESetupError", "Scope", "WAIT_TIMEOUT", "admin_client", "real_cluster_kubeconfig",
           "status_of", "wait_until"]
