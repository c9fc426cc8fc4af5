"""``model-agent manifests``: CRDs, RBAC and DaemonSet as YAML; the committed examples match the output."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from modelagent import __version__
from modelagent.agent.config import resolve
from modelagent.cli import build_parser, main
from modelagent.manifests import ManifestError, ManifestOptions, build, crds, parse_sections

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "kubernetes"

# File name -> the `model-agent manifests` arguments that produce it (see examples/kubernetes/README.md).
GENERATED = {
    "00-crds.yaml": ["--only", "crds"],
    "10-rbac.yaml": ["--only", "rbac"],
    "20-daemonset.yaml": ["--only", "daemonset"],
}


def run_manifests(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["manifests", *args])
    out, err = capsys.readouterr()
    return code, out, err


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


# ------------------------------------------------------------------------- a small OpenAPI v3 validator

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def validate(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Errors of ``value`` against the subset of OpenAPI v3 that CRD schemas use.

    Unknown fields are errors, as with kubectl's default strict field validation, except under
    ``x-kubernetes-preserve-unknown-fields``.
    """
    where = path or "<root>"
    errors: list[str] = []
    kind = schema.get("type")
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{where}: expected integer, got {type(value).__name__}"]
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [f"{where}: expected number, got {type(value).__name__}"]
    elif kind is not None and not isinstance(value, _TYPES[kind]):
        return [f"{where}: expected {kind}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{where}: {value} below {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{where}: {value} above {schema['maximum']}")
    if kind == "array":
        for i, item in enumerate(value):
            errors += validate(item, schema.get("items", {}), f"{path}[{i}]")
    if kind == "object":
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{where}: missing required field {name!r}")
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            child = f"{path}.{name}" if path else name
            if props is not None and name in props:
                errors += validate(item, props[name], child)
            elif isinstance(extra, dict):
                errors += validate(item, extra, child)
            elif props is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
                errors.append(f"{child}: unknown field")
    return errors


def structural_problems(schema: dict[str, Any], path: str = "") -> list[str]:
    """Where ``schema`` is not structural (every node typed unless it preserves unknown fields)."""
    problems = []
    if "type" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields") \
            and not schema.get("x-kubernetes-int-or-string"):
        problems.append(f"{path or '<root>'}: no type")
    if schema.get("type") == "array" and "items" not in schema:
        problems.append(f"{path}: array without items")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{path}: both properties and additionalProperties")
    for name, child in schema.get("properties", {}).items():
        problems += structural_problems(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        problems += structural_problems(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        problems += structural_problems(schema["additionalProperties"], f"{path}{{}}")
    return problems


def test_validator_catches_what_it_should():
    schema = {"type": "object", "properties": {"a": {"type": "integer", "maximum": 3},
                                               "b": {"type": "string", "enum": ["x"]}}}
    assert validate({"a": 1, "b": "x"}, schema) == []
    assert validate({"a": 4}, schema) == ["a: 4 above 3"]
    assert validate({"a": True}, schema) == ["a: expected integer, got bool"]
    assert validate({"b": "y"}, schema) == ["b: 'y' not in ['x']"]
    assert validate({"c": 1}, schema) == ["c: unknown field"]


# ------------------------------------------------------------------------------------ output shape

def test_default_output_is_multi_document_yaml_of_named_objects(capsys):
    code, out, err = run_manifests(capsys)
    assert code == 0 and err == ""
    assert out.startswith("# Generated by: model-agent manifests\n")
    objects = docs(out)
    kinds = [o["kind"] for o in objects]
    assert kinds == ["CustomResourceDefinition", "CustomResourceDefinition", "Namespace", "ServiceAccount",
                     "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "DaemonSet"]
    for obj in objects:
        assert obj["apiVersion"] and obj["kind"] and obj["metadata"]["name"], obj


@pytest.mark.parametrize("only,kinds", [
    ("crds", {"CustomResourceDefinition"}),
    ("daemonset", {"DaemonSet"}),
    ("rbac,daemonset", {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                        "RoleBinding", "DaemonSet"}),
])
def test_only_selects_sections(capsys, only, kinds):
    code, out, _ = run_manifests(capsys, "--only", only)
    assert code == 0
    assert {o["kind"] for o in docs(out)} == kinds


def test_only_keeps_apply_order_and_accepts_repeats():
    assert parse_sections(["daemonset", "crds"]) == ("crds", "daemonset")
    assert parse_sections("rbac, crds") == ("crds", "rbac")
    assert parse_sections(None) == ("crds", "rbac", "daemonset")


@pytest.mark.parametrize("args,message", [
    (["--only", "crd"], "--only takes a comma-separated list of crds, rbac, daemonset, got crd"),
    (["--only", ","], "got nothing"),
    (["--namespace", "Bad_NS"], "--namespace must be a Kubernetes namespace name"),
    (["--models-root-dir", "models"], "--models-root-dir must be an absolute, normalised path"),
    (["--models-root-dir", "/"], "--models-root-dir must be an absolute, normalised path"),
    (["--models-root-dir", "/mnt/../models"], "--models-root-dir must be an absolute, normalised path"),
    (["--image", "a b"], "--image must be a non-empty image reference"),
    (["--priority-class", "Not A Class"], "--priority-class must be a PriorityClass name"),
    (["--secret-namespaces", "ok,BAD"], "--secret-namespaces: 'BAD' is not a Kubernetes namespace name"),
    (["--secret-namespaces", ","], "--secret-namespaces needs at least one namespace"),
])
def test_bad_options_exit_2_with_one_line(capsys, args, message):
    code, out, err = run_manifests(capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith("model-agent manifests: error: ") and message in err
    assert err.count("\n") == 1


def test_committed_examples_equal_the_output(capsys):
    for name, args in GENERATED.items():
        code, out, _ = run_manifests(capsys, *args)
        assert code == 0
        committed = (EXAMPLES / name).read_text(encoding="utf-8")
        assert committed == out, (f"examples/kubernetes/{name} is stale: regenerate it with "
                                  f"`model-agent manifests {' '.join(args)} > examples/kubernetes/{name}`")


# ---------------------------------------------------------------------------------------------- CRDs

def crd_schemas() -> dict[str, dict[str, Any]]:
    out = {}
    for crd in crds():
        (version,) = crd["spec"]["versions"]
        out[crd["spec"]["names"]["kind"]] = version["schema"]["openAPIV3Schema"]
    return out


def test_crds_are_ome_v1beta1_with_status_subresource_and_columns():
    by_name = {c["metadata"]["name"]: c for c in crds()}
    assert set(by_name) == {"basemodels.ome.io", "clusterbasemodels.ome.io"}
    assert by_name["basemodels.ome.io"]["spec"]["scope"] == "Namespaced"
    assert by_name["clusterbasemodels.ome.io"]["spec"]["scope"] == "Cluster"
    for crd in by_name.values():
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["spec"]["group"] == "ome.io"
        (version,) = crd["spec"]["versions"]
        assert version["name"] == "v1beta1" and version["served"] and version["storage"]
        assert version["subresources"] == {"status": {}}
        columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
        assert columns["Ready"] == ".status.state" and columns["Age"] == ".metadata.creationTimestamp"


def test_crd_schemas_are_structural_and_cover_the_spec():
    for kind, schema in crd_schemas().items():
        assert structural_problems(schema) == [], kind
        spec = schema["properties"]["spec"]["properties"]
        for field in ("storage", "modelFormat", "modelFramework", "modelType", "modelArchitecture",
                      "modelParameterSize", "maxTokens", "modelCapabilities", "quantization",
                      "modelConfiguration", "additionalMetadata"):
            assert field in spec, (kind, field)
        assert set(spec["storage"]["properties"]) >= {"storageUri", "path", "key", "parameters", "nodeSelector",
                                                      "nodeAffinity"}
        assert spec["quantization"]["enum"] == ["fp8", "fbgemm_fp8", "int4"]
        assert spec["modelConfiguration"]["x-kubernetes-preserve-unknown-fields"] is True
        assert schema["properties"]["status"]["x-kubernetes-preserve-unknown-fields"] is True


def example_models() -> list[tuple[str, dict[str, Any]]]:
    found = []
    files = [REPO / "examples" / "standalone" / "models.yaml", *sorted((EXAMPLES / "models").glob("*.yaml"))]
    for path in files:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("kind") in ("BaseModel", "ClusterBaseModel"):
                found.append((f"{path.name}:{doc['metadata']['name']}", doc))
    return found


def test_crd_schemas_accept_every_example_model():
    models = example_models()
    assert {m["kind"] for _, m in models} == {"BaseModel", "ClusterBaseModel"}
    assert len(models) >= 6
    schemas = crd_schemas()
    for where, model in models:
        assert validate(model, schemas[model["kind"]]) == [], where


def test_crd_schema_accepts_what_the_agent_writes_back():
    spec = {
        "storage": {"storageUri": "hf://meta-llama/Llama-3.1-8B-Instruct"},
        "modelType": "llama", "modelArchitecture": "LlamaForCausalLM",
        "modelFramework": {"name": "transformers", "version": "4.43.0.dev0"},
        "modelFormat": {"name": "safetensors", "version": "1.0.0"},
        "modelParameterSize": "8.03B", "maxTokens": 131072, "modelCapabilities": ["CHAT"],
        "quantization": "fp8",
        "modelConfiguration": {"architecture": "LlamaForCausalLM", "context_length": 131072, "has_vision": False},
    }
    obj = {"apiVersion": "ome.io/v1beta1", "kind": "BaseModel", "metadata": {"name": "m"}, "spec": spec,
           "status": {"state": "Ready", "nodesReady": ["n1"], "somethingNewer": {"x": 1}}}
    assert validate(obj, crd_schemas()["BaseModel"]) == []


BASE = {"apiVersion": "ome.io/v1beta1", "kind": "ClusterBaseModel", "metadata": {"name": "m"},
        "spec": {"storage": {"storageUri": "hf://org/m", "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["a100"]}]}]}}}}}


@pytest.mark.parametrize("mutate,error", [
    (lambda s: s.update(quantization="int8"), "spec.quantization: 'int8' not in"),
    (lambda s: s.update(maxTokens="4096"), "spec.maxTokens: expected integer"),
    (lambda s: s.update(maxTokens=2**31), "spec.maxTokens: 2147483648 above"),
    (lambda s: s.update(modelCapabilities="CHAT"), "spec.modelCapabilities: expected array"),
    (lambda s: s.update(modelFormat={"version": "1"}), "spec.modelFormat: missing required field 'name'"),
    (lambda s: s["storage"].update(storageURI="hf://x"), "spec.storage.storageURI: unknown field"),
    (lambda s: s["storage"].update(nodeSelector={"gpu": True}), "spec.storage.nodeSelector.gpu: expected string"),
    (lambda s: s["storage"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        [0]["matchExpressions"][0].update(operator="Equals"), "operator: 'Equals' not in"),
])
def test_crd_schema_rejects_bad_models(mutate, error):
    model = copy.deepcopy(BASE)
    assert validate(model, crd_schemas()["ClusterBaseModel"]) == []
    mutate(model["spec"])
    problems = validate(model, crd_schemas()["ClusterBaseModel"])
    assert any(error in p for p in problems), problems


# ---------------------------------------------------------------------------------------------- RBAC

def rules_of(objects: list[dict[str, Any]], kind: str) -> dict[str, set[str]]:
    verbs: dict[str, set[str]] = {}
    for role in by_kind(objects, kind):
        for rule in role["rules"]:
            for resource in rule["resources"]:
                verbs.setdefault(resource, set()).update(rule["verbs"])
    return verbs


def test_rbac_grants_only_the_verbs_the_agent_uses():
    objects = build(ManifestOptions(namespace="models-system"), ["rbac"])
    cluster = rules_of(objects, "ClusterRole")
    assert cluster == {
        "nodes": {"get", "list", "watch", "patch"},
        "basemodels": {"get", "list", "watch", "patch"},
        "clusterbasemodels": {"get", "list", "watch", "patch"},
        "secrets": {"get"},
    }
    (role,) = by_kind(objects, "Role")
    assert role["metadata"]["namespace"] == "models-system"
    assert rules_of(objects, "Role") == {"configmaps": {"get", "create", "update"}}
    for obj in objects:
        for rule in obj.get("rules", []):
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
    (sa,) = by_kind(objects, "ServiceAccount")
    for binding in by_kind(objects, "ClusterRoleBinding") + by_kind(objects, "RoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                        "namespace": "models-system"}]
    assert by_kind(objects, "Namespace")[0]["metadata"]["name"] == "models-system"


def test_secret_namespaces_replace_the_cluster_wide_secret_grant(capsys):
    code, out, _ = run_manifests(capsys, "--only", "rbac", "--secret-namespaces", "team-a,team-b")
    assert code == 0
    objects = docs(out)
    assert "secrets" not in rules_of(objects, "ClusterRole")
    secret_roles = [r for r in by_kind(objects, "Role") if r["rules"][0]["resources"] == ["secrets"]]
    assert sorted(r["metadata"]["namespace"] for r in secret_roles) == ["team-a", "team-b"]
    assert all(r["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}] for r in secret_roles)
    bindings = {(b["metadata"]["namespace"], b["roleRef"]["name"]) for b in by_kind(objects, "RoleBinding")}
    assert {("team-a", "ome-model-agent-secrets"), ("team-b", "ome-model-agent-secrets")} <= bindings


# ---------------------------------------------------------------------------------------------- DaemonSet

def the_daemonset(*args: str) -> dict[str, Any]:
    parser = build_parser()
    parsed = parser.parse_args(["manifests", "--only", "daemonset", *args])
    from modelagent.commands.manifests import options_from_args

    (ds,) = build(options_from_args(parsed), ["daemonset"])
    return ds


def test_daemonset_shape():
    ds = the_daemonset("--namespace", "models", "--models-root-dir", "/raid/models", "--image", "reg/agent:1")
    assert ds["metadata"]["namespace"] == "models"
    spec = ds["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in spec["selector"]["matchLabels"].items())
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": "8080",
                           "prometheus.io/path": "/metrics"}
    assert pod["terminationGracePeriodSeconds"] >= 15
    assert pod["serviceAccountName"] == "ome-model-agent"
    (container,) = pod["containers"]
    assert container["image"] == "reg/agent:1"
    assert container["ports"] == [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in container["env"]
    assert {"name": "MODEL_AGENT_NAMESPACE", "value": "models"} in container["env"]
    assert {"name": "MODEL_AGENT_MODELS_ROOT_DIR", "value": "/raid/models"} in container["env"]
    resources = container["resources"]
    assert resources["requests"] == {"cpu": "100m", "memory": "256Mi"} and "memory" in resources["limits"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert volumes["models"]["hostPath"] == {"path": "/raid/models", "type": "DirectoryOrCreate"}
    assert mounts["models"] == "/raid/models"
    assert "affinity" not in pod and "priorityClassName" not in pod
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


def test_daemonset_command_is_a_valid_model_agent_run():
    ds = the_daemonset("--namespace", "models", "--models-root-dir", "/raid/models")
    (container,) = ds["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:2] == ["model-agent", "run"]
    args = build_parser().parse_args(command[1:])
    environ = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    environ["NODE_NAME"] = "gpu-node-7"  # what the downward API fills in
    settings = resolve(args, environ=environ)
    assert settings.namespace == "models"
    assert settings.models_root_dir == "/raid/models"
    assert settings.port == container["ports"][0]["containerPort"]
    assert settings.node_name == "gpu-node-7" and not settings.is_standalone


def test_daemonset_gpu_affinity_and_priority_class_options():
    pod = the_daemonset("--gpu-nodes-only", "--priority-class", "system-node-critical")["spec"]["template"]["spec"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "nvidia.com/gpu", "operator": "In", "values": ["true"]}]}]
    assert pod["priorityClassName"] == "system-node-critical"


def test_default_image_tag_is_this_version():
    (container,) = the_daemonset()["spec"]["template"]["spec"]["containers"]
    assert container["image"].endswith(":" + __version__)


def test_header_reproduces_the_command(capsys):
    code, out, _ = run_manifests(capsys, "--namespace", "x", "--only", "daemonset,rbac", "--gpu-nodes-only")
    assert code == 0
    first = out.splitlines()[0]
    assert first == "# Generated by: model-agent manifests --namespace x --gpu-nodes-only --only rbac,daemonset"
    argv = first.removeprefix("# Generated by: model-agent ").split()
    assert main(argv) == 0
    assert capsys.readouterr().out == out


def test_manifest_error_is_a_value_error():
    with pytest.raises(ManifestError):
        build(ManifestOptions(namespace=""))
    assert issubclass(ManifestError, ValueError)


def test_operator_docs_settings_table_matches_the_agent():
    from modelagent.agent.config import OPTIONS

    by_flag = {o.flag: o for o in OPTIONS}
    text = (REPO / "docs" / "operators.md").read_text(encoding="utf-8")
    section = text.split("## 3. Settings", 1)[1].split("## 4.", 1)[0]
    rows = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| `--")]
    assert len(rows) >= 5
    for flag_cell, default_cell in rows:
        # "`--flag`" or "`--flag` / `ENV_VAR`" (a variable the option also reads)
        flag, _, alias = (part.strip().strip("`") for part in flag_cell.partition(" / "))
        assert flag in by_flag, flag
        assert not alias or alias in by_flag[flag].env, (flag, alias)
        default = by_flag[flag].default
        expected = "—" if default is None else f"{default:g}" if isinstance(default, float) else str(default)
        assert default_cell.strip().strip("`") == expected, flag


# ------------------------------------------------------- field names checked against the official client

_CLIENT_MODELS = {
    "CustomResourceDefinition": "V1CustomResourceDefinition", "Namespace": "V1Namespace",
    "ServiceAccount": "V1ServiceAccount", "ClusterRole": "V1ClusterRole",
    "ClusterRoleBinding": "V1ClusterRoleBinding", "Role": "V1Role", "RoleBinding": "V1RoleBinding",
    "DaemonSet": "V1DaemonSet",
}


def client_round_trip(obj: dict[str, Any]) -> Any:
    """``obj`` decoded into the official client's model and encoded again: a misspelt field disappears."""
    from kubernetes import client

    api = client.ApiClient()
    text = json.dumps(obj)
    try:
        model = api.deserialize(text, _CLIENT_MODELS[obj["kind"]], "application/json")
    except TypeError:  # clients before 33 take a response object
        model = api.deserialize(SimpleNamespace(data=text), _CLIENT_MODELS[obj["kind"]])
    return api.sanitize_for_serialization(model)


def test_every_field_is_known_to_the_kubernetes_api():
    options = ManifestOptions(gpu_nodes_only=True, priority_class="high", secret_namespaces=("a",))
    for obj in build(options):
        assert client_round_trip(obj) == obj, obj["kind"]


def test_round_trip_catches_a_misspelt_field():
    (ds,) = build(ManifestOptions(), ["daemonset"])
    broken = copy.deepcopy(ds)
    broken["spec"]["template"]["spec"]["containers"][0]["containerPorts"] = [{"containerPort": 1}]
    assert client_round_trip(broken) != broken
