"""Check that a cluster behind a kubeconfig is a working API server for the agent's tests.

    python scripts/control-plane.d/check.py KUBECONFIG [MANIFESTS.yaml ...]

Checks, with the official ``kubernetes`` client: version and namespaces with the kubeconfig's
credentials, 401 without them, 409 for a stale resourceVersion, a watch resumed from a
resourceVersion. Each MANIFESTS file (e.g. ``model-agent manifests --only crds,rbac``) is applied;
CRDs must become Established and accept a custom resource; a ServiceAccount from the manifests gets a
token through TokenRequest and must be allowed exactly what its RBAC rules say for a few probes.
Prints one line per check and exits 1 on the first failure. Objects it creates are deleted again.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable

import yaml
from kubernetes import client, config, utils, watch
from kubernetes.client.rest import ApiException


def ok(what: str) -> None:
    print(f"ok: {what}", flush=True)


def fail(what: str) -> None:
    print(f"FAILED: {what}", flush=True)
    sys.exit(1)


def expect_status(code: int, what: str, call: Callable[[], Any]) -> None:
    try:
        call()
    except ApiException as e:
        if e.status == code:
            ok(f"{what} -> {code}")
            return
        fail(f"{what}: expected {code}, got {e.status} {e.reason}")
    fail(f"{what}: expected {code}, the call succeeded")


def bare_configuration() -> client.Configuration:
    """The kubeconfig's server and CA without its credentials (nor its token refresh hook)."""
    loaded = client.Configuration.get_default_copy()
    bare = client.Configuration(host=loaded.host)
    bare.ssl_ca_cert = loaded.ssl_ca_cert
    bare.verify_ssl = loaded.verify_ssl
    return bare


def basic_checks(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    ok(f"version {client.VersionApi(api).get_code().git_version}")
    names = [n.metadata.name for n in core.list_namespace().items]
    if "default" not in names:
        fail(f"namespace list lacks default: {names}")
    ok(f"list namespaces: {names}")

    anonymous = bare_configuration()
    with client.ApiClient(anonymous) as no_token:
        expect_status(401, "list namespaces without a token", client.CoreV1Api(no_token).list_namespace)

    name = "control-plane-check"
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": name}, "data": {"a": "1"}})
    try:
        start_rv = cm.metadata.resource_version
        core.patch_namespaced_config_map(name, "default", {"data": {"a": "2"}})
        cm.data = {"a": "3"}
        expect_status(409, "PUT with a stale resourceVersion",
                      lambda: core.replace_namespaced_config_map(name, "default", cm))
        events = [(ev["type"], ev["object"].data) for ev in watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version=start_rv,
            field_selector=f"metadata.name={name}", timeout_seconds=2)]
        if events != [("MODIFIED", {"a": "2"})]:
            fail(f"watch from resourceVersion {start_rv}: got {events}")
        ok(f"watch from resourceVersion {start_rv} -> {events}")
    finally:
        core.delete_namespaced_config_map(name, "default")


def wait_established(ext: client.ApiextensionsV1Api, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        crd = ext.read_custom_resource_definition(name)
        if any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])):
            ok(f"CRD {name} Established")
            return
        time.sleep(0.2)
    fail(f"CRD {name} not Established after {timeout} s")


def exercise_crd(api: client.ApiClient, crd: dict[str, Any]) -> None:
    spec = crd["spec"]
    group, plural, kind = spec["group"], spec["names"]["plural"], spec["names"]["kind"]
    version = next(v["name"] for v in spec["versions"] if v.get("storage"))
    custom = client.CustomObjectsApi(api)
    body = {"apiVersion": f"{group}/{version}", "kind": kind,
            "metadata": {"name": "control-plane-check"},
            "spec": {"storage": {"storageUri": "hf://org/model"}}}
    if spec["scope"] == "Namespaced":
        custom.create_namespaced_custom_object(group, version, "default", plural, body)
        got = custom.get_namespaced_custom_object(group, version, "default", plural, "control-plane-check")
        custom.delete_namespaced_custom_object(group, version, "default", plural, "control-plane-check")
    else:
        custom.create_cluster_custom_object(group, version, plural, body)
        got = custom.get_cluster_custom_object(group, version, plural, "control-plane-check")
        custom.delete_cluster_custom_object(group, version, plural, "control-plane-check")
    ok(f"created, read and deleted a {kind} (generation {got['metadata'].get('generation')})")


def rule_allows(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(group in r.get("apiGroups", []) and resource in r.get("resources", [])
               and verb in r.get("verbs", []) for r in rules)


def check_service_account(api: client.ApiClient, sa: dict[str, Any], docs: list[dict[str, Any]]) -> None:
    ns, name = sa["metadata"]["namespace"], sa["metadata"]["name"]
    subject = ("ServiceAccount", name, ns)
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    bound = [roles[b["roleRef"]["name"]] for b in docs if b["kind"] == "ClusterRoleBinding"
             and subject in [(s.get("kind"), s.get("name"), s.get("namespace")) for s in b.get("subjects", [])]
             and b["roleRef"]["name"] in roles]
    rules = [r for role in bound for r in role.get("rules", [])]

    token = client.CoreV1Api(api).create_namespaced_service_account_token(
        name, ns, {"spec": {"expirationSeconds": 600}}).status.token
    ok(f"TokenRequest for ServiceAccount {ns}/{name}")
    sa_config = bare_configuration()
    sa_config.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(sa_config) as sa_api:
        review = client.AuthenticationV1Api(sa_api).create_self_subject_review({})
        if review.status.user_info.username != f"system:serviceaccount:{ns}:{name}":
            fail(f"the token authenticates as {review.status.user_info.username}")
        ok(f"the token authenticates as {review.status.user_info.username}")
        authz = client.AuthorizationV1Api(sa_api)
        for group, resource, verb in [("", "nodes", "list"), ("", "nodes", "patch"), ("", "nodes", "delete"),
                                      ("ome.io", "clusterbasemodels", "watch"), ("", "pods", "list"),
                                      ("", "secrets", "list")]:
            allowed = authz.create_self_subject_access_review(
                {"spec": {"resourceAttributes": {"group": group, "resource": resource, "verb": verb}}}
            ).status.allowed
            if allowed != rule_allows(rules, group, resource, verb):
                fail(f"{verb} {resource}: allowed={allowed}, the ClusterRole says {not allowed}")
            ok(f"ServiceAccount may{'' if allowed else ' not'} {verb} {resource} cluster-wide")
        if rule_allows(rules, "", "nodes", "list"):
            client.CoreV1Api(sa_api).list_node()
            ok("ServiceAccount lists nodes")
        expect_status(403, "ServiceAccount lists pods", lambda: client.CoreV1Api(sa_api).list_pod_for_all_namespaces())


def apply_manifests(api: client.ApiClient, path: str) -> None:
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    for doc in docs:
        try:
            utils.create_from_dict(api, doc)
        except utils.FailToCreateError as e:
            if any(getattr(x, "status", None) != 409 for x in e.api_exceptions):
                fail(f"{path}: applying {doc['kind']} {doc['metadata']['name']}: {e}")
    ok(f"applied {len(docs)} objects from {path}")
    ext = client.ApiextensionsV1Api(api)
    for crd in (d for d in docs if d["kind"] == "CustomResourceDefinition"):
        wait_established(ext, crd["metadata"]["name"])
        exercise_crd(api, crd)
    for sa in (d for d in docs if d["kind"] == "ServiceAccount"):
        check_service_account(api, sa, docs)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    config.load_kube_config(argv[1])
    with client.ApiClient() as api:
        basic_checks(api)
        for path in argv[2:]:
            apply_manifests(api, path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
