"""Kubernetes manifests for running the agent as a DaemonSet: CRDs, RBAC and the DaemonSet itself.

``model-agent manifests`` prints them; ``examples/kubernetes/`` holds the output for the defaults.

Names follow OME's shipped deployment (ServiceAccount and ClusterRole ``ome-model-agent``, DaemonSet
``ome-model-agent-daemonset`` with the same selector label), so applying these over an OME installation
replaces OME's agent in place with a rolling update instead of running two agents per node.

RBAC is limited to what the agent calls:

* Nodes (cluster scope): ``get`` and ``patch`` (its own node's labels), ``list`` and ``watch`` (the Scout's
  informer on its own node, field-selected by name).
* BaseModels / ClusterBaseModels: ``get``, ``list``, ``watch`` (the Scout) and ``patch`` (spec back-fill
  with a JSON merge patch).
* Secrets: ``get`` only, but cluster-wide: a BaseModel's token Secret lives in the model's own namespace,
  which is not known in advance. :attr:`ManifestOptions.secret_namespaces` narrows it to per-namespace Roles.
* ConfigMaps: ``get``, ``create``, ``update`` in the agent's namespace only (a Role, not a ClusterRole).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from modelagent import __version__

GROUP = "ome.io"
VERSION = "v1beta1"
SECTIONS: tuple[str, ...] = ("crds", "rbac", "daemonset")
DEFAULT_IMAGE = f"ghcr.io/modelagent/model-agent:{__version__}"
DEFAULT_NAMESPACE = "ome"
DEFAULT_MODELS_ROOT = "/mnt/models"
APP_NAME = "ome-model-agent"
DAEMONSET_NAME = "ome-model-agent-daemonset"
# OME's selector label; keeping it lets `kubectl apply` take over OME's DaemonSet (selectors are immutable).
SELECTOR = {"app.kubernetes.io/component": DAEMONSET_NAME}
METRICS_PORT = 8080
QUANTIZATIONS = ("fp8", "fbgemm_fp8", "int4")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class ManifestError(ValueError):
    """An option cannot produce a valid manifest; the message names the option."""


@dataclass(frozen=True)
class ManifestOptions:
    """What ``model-agent manifests`` varies.

    Attributes:
        namespace: namespace of the ServiceAccount, DaemonSet and the per-node ConfigMaps (given to the
            agent as ``MODEL_AGENT_NAMESPACE``; also where ClusterBaseModel token Secrets are looked up).
        image: container image of the agent.
        models_root_dir: models folder on the host, mounted at the same path in the container and given to
            the agent as ``MODEL_AGENT_MODELS_ROOT_DIR`` (``spec.storage.path`` means the same on host and pod).
        gpu_nodes_only: run only on nodes labelled ``nvidia.com/gpu=true`` (OME's shipped affinity).
        priority_class: ``priorityClassName`` of the pods, or None.
        secret_namespaces: None grants ``get`` on Secrets cluster-wide; a list grants it only in these
            namespaces (BaseModels elsewhere then download without their token).
        extra_args: further ``model-agent run`` arguments appended to the container's command.
    """

    namespace: str = DEFAULT_NAMESPACE
    image: str = DEFAULT_IMAGE
    models_root_dir: str = DEFAULT_MODELS_ROOT
    gpu_nodes_only: bool = False
    priority_class: str | None = None
    secret_namespaces: tuple[str, ...] | None = None
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    def validate(self) -> None:
        """Raise :class:`ManifestError` naming the first bad option."""
        if not _is_dns_label(self.namespace):
            raise ManifestError(f"--namespace must be a Kubernetes namespace name (lowercase letters, digits, "
                                f"'-', at most 63), got {self.namespace!r}")
        if not self.image or any(c.isspace() for c in self.image):
            raise ManifestError(f"--image must be a non-empty image reference without spaces, got {self.image!r}")
        root = self.models_root_dir
        if not root.startswith("/") or posixpath.normpath(root) != root.rstrip("/") or root.rstrip("/") == "":
            raise ManifestError(f"--models-root-dir must be an absolute, normalised path other than '/', "
                                f"got {root!r}")
        if self.priority_class is not None and not _DNS_SUBDOMAIN.match(self.priority_class):
            raise ManifestError(f"--priority-class must be a PriorityClass name, got {self.priority_class!r}")
        if self.secret_namespaces is not None:
            for ns in self.secret_namespaces:
                if not _is_dns_label(ns):
                    raise ManifestError(f"--secret-namespaces: {ns!r} is not a Kubernetes namespace name")


def _is_dns_label(text: str) -> bool:
    return len(text) <= 63 and bool(_DNS_LABEL.match(text))


# ---------------------------------------------------------------------------------------------- CRDs

def _string(description: str | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if description:
        schema["description"] = description
    schema.update(extra)
    return schema


def _string_map(description: str) -> dict[str, Any]:
    return {"type": "object", "description": description, "additionalProperties": {"type": "string"}}


def _string_list(description: str) -> dict[str, Any]:
    return {"type": "array", "description": description, "items": {"type": "string"},
            "x-kubernetes-list-type": "atomic"}


def _name_version(description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "required": ["name"],
        "properties": {"name": _string("name"), "version": _string("version, e.g. 1.0.0")},
    }


def _node_selector_requirement() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["key", "operator"],
        "properties": {
            "key": _string("label key (matchFields: only metadata.name)"),
            "operator": _string("In, NotIn, Exists, DoesNotExist, Gt, Lt",
                                enum=["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]),
            "values": _string_list("values (one integer for Gt/Lt, none for Exists/DoesNotExist)"),
        },
    }


def _node_selector_term() -> dict[str, Any]:
    return {
        "type": "object",
        "x-kubernetes-map-type": "atomic",
        "properties": {
            "matchExpressions": {"type": "array", "items": _node_selector_requirement(),
                                 "x-kubernetes-list-type": "atomic"},
            "matchFields": {"type": "array", "items": _node_selector_requirement(),
                            "x-kubernetes-list-type": "atomic"},
        },
    }


def _node_affinity() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "nodes that keep a copy; only the required terms are evaluated, with the scheduler's "
                       "semantics",
        "properties": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "type": "object",
                "x-kubernetes-map-type": "atomic",
                "required": ["nodeSelectorTerms"],
                "properties": {
                    "nodeSelectorTerms": {"type": "array", "items": _node_selector_term(),
                                          "x-kubernetes-list-type": "atomic"},
                },
            },
            "preferredDuringSchedulingIgnoredDuringExecution": {
                "type": "array",
                "x-kubernetes-list-type": "atomic",
                "items": {
                    "type": "object",
                    "required": ["preference", "weight"],
                    "properties": {
                        "preference": _node_selector_term(),
                        "weight": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 100},
                    },
                },
            },
        },
    }


def model_spec_schema() -> dict[str, Any]:
    """OpenAPI v3 schema of ``spec`` shared by BaseModel and ClusterBaseModel (OME's BaseModelSpec)."""
    storage = {
        "type": "object",
        "description": "where the model comes from, where it goes and which nodes keep a copy",
        "properties": {
            "storageUri": _string("source: hf://org/name[@revision], local:///path, oci://..., pvc://..., "
                                  "vendor://..., s3://..., gs://..., az://..., github://..."),
            "path": _string("destination folder on the node (inside the agent's --models-root-dir); "
                            "default <models-root>/basemodels/<namespace>/<name> or "
                            "<models-root>/clusterbasemodels/<name>"),
            "schemaPath": _string("path of the model's schema inside the storage"),
            "key": _string("name of the Secret holding the download token (BaseModel: its namespace; "
                           "ClusterBaseModel: the agent's namespace)"),
            "parameters": _string_map("storage parameters: secretKey (data key in the Secret, default "
                                      "'token'), token, auth, region"),
            "nodeSelector": {**_string_map("node labels a node must have to keep a copy"),
                             "x-kubernetes-map-type": "atomic"},
            "nodeAffinity": _node_affinity(),
        },
    }
    return {
        "type": "object",
        "description": "the model: its source and storage, and metadata (empty fields are filled by the "
                       "agent after download)",
        "properties": {
            "storage": storage,
            "modelFormat": _name_version("weights format, e.g. safetensors 1.0.0"),
            "modelFramework": _name_version("framework, e.g. transformers 4.43.0"),
            "modelType": _string("config.json model_type, e.g. llama"),
            "modelArchitecture": _string("config.json architectures[0], e.g. LlamaForCausalLM"),
            "modelParameterSize": _string("parameter count, e.g. 8.03B"),
            "maxTokens": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 2147483647,
                          "description": "context length"},
            "modelCapabilities": _string_list("e.g. TEXT_GENERATION, CHAT, EMBEDDING, VISION"),
            "quantization": _string("weight quantization", enum=list(QUANTIZATIONS)),
            "modelConfiguration": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                                   "description": "summary of the model's configuration (written by the agent)"},
            "displayName": _string("user-friendly name"),
            "version": _string("model version"),
            "disabled": {"type": "boolean", "description": "whether the model is disabled"},
            "vendor": _string("vendor, e.g. Meta"),
            "compartmentID": _string("deprecated OCI compartment id"),
            "servingMode": _string_list("e.g. On-demand, Dedicated"),
            "additionalMetadata": _string_map("free-form metadata, e.g. type: Serving"),
        },
    }


def model_status_schema() -> dict[str, Any]:
    """``status`` as OME's controller writes it; unknown fields are kept."""
    return {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "lifecycle": {"type": "string"},
            "state": {"type": "string"},
            "nodesReady": _string_list("nodes whose copy is Ready"),
            "nodesFailed": _string_list("nodes whose copy Failed"),
        },
    }


_PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Ready", "type": "string", "jsonPath": ".status.state"},
    {"name": "URI", "type": "string", "jsonPath": ".spec.storage.storageUri"},
    {"name": "Architecture", "type": "string", "jsonPath": ".spec.modelArchitecture"},
    {"name": "Size", "type": "string", "jsonPath": ".spec.modelParameterSize"},
    {"name": "Max Tokens", "type": "integer", "jsonPath": ".spec.maxTokens", "priority": 1},
    {"name": "Quantization", "type": "string", "jsonPath": ".spec.quantization", "priority": 1},
    {"name": "Nodes Ready", "type": "string", "jsonPath": ".status.nodesReady", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _crd(kind: str, plural: str, scope: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": scope,
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()},
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [dict(c) for c in _PRINTER_COLUMNS],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": f"{kind}: a model that nodes download and keep on local disk",
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": model_spec_schema(),
                        "status": model_status_schema(),
                    },
                }},
            }],
        },
    }


def crds() -> list[dict[str, Any]]:
    """The BaseModel (namespaced) and ClusterBaseModel (cluster) CustomResourceDefinitions."""
    return [_crd("BaseModel", "basemodels", "Namespaced"), _crd("ClusterBaseModel", "clusterbasemodels", "Cluster")]


# ---------------------------------------------------------------------------------------------- RBAC

def _labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": "model-agent", **SELECTOR}


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = _labels()
    return meta


def rbac(options: ManifestOptions) -> list[dict[str, Any]]:
    """Namespace, ServiceAccount, ClusterRole/Role and bindings with the verbs the agent uses."""
    ns = options.namespace
    subject = [{"kind": "ServiceAccount", "name": APP_NAME, "namespace": ns}]
    cluster_rules: list[dict[str, Any]] = [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": [GROUP], "resources": ["basemodels", "clusterbasemodels"],
         "verbs": ["get", "list", "watch", "patch"]},
    ]
    if options.secret_namespaces is None:
        cluster_rules.append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(APP_NAME, ns)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": _meta(APP_NAME),
         "rules": cluster_rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": _meta(APP_NAME),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": APP_NAME},
         "subjects": subject},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta(APP_NAME, ns),
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "update"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": _meta(APP_NAME, ns),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": APP_NAME},
         "subjects": subject},
    ]
    for secret_ns in options.secret_namespaces or ():
        name = f"{APP_NAME}-secrets"
        objects.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                        "metadata": _meta(name, secret_ns),
                        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]})
        objects.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                        "metadata": _meta(name, secret_ns),
                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                        "subjects": subject})
    return objects


# ---------------------------------------------------------------------------------------------- DaemonSet

def daemonset(options: ManifestOptions) -> list[dict[str, Any]]:
    """The agent's DaemonSet."""
    root = options.models_root_dir.rstrip("/")
    command = ["model-agent", "run", "--port", str(METRICS_PORT), "--log-format", "json", *options.extra_args]
    probe_port = {"port": "metrics"}
    container: dict[str, Any] = {
        "name": "model-agent",
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        # Settings as environment variables so that `kubectl exec ... model-agent status` inside the pod
        # finds the same namespace and models root as the agent.
        "env": [
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "MODEL_AGENT_NAMESPACE", "value": options.namespace},
            {"name": "MODEL_AGENT_MODELS_ROOT_DIR", "value": root},
        ],
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "livenessProbe": {"httpGet": {"path": "/livez", **probe_port}, "initialDelaySeconds": 10,
                          "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 6},
        "readinessProbe": {"httpGet": {"path": "/readyz", **probe_port}, "initialDelaySeconds": 5,
                           "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "models", "mountPath": root}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    pod_spec: dict[str, Any] = {
        "serviceAccountName": APP_NAME,
        "terminationGracePeriodSeconds": 30,
        "containers": [container],
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "volumes": [
            {"name": "models", "hostPath": {"path": root, "type": "DirectoryOrCreate"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    }
    if options.gpu_nodes_only:
        pod_spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "nvidia.com/gpu", "operator": "In", "values": ["true"]}]}]}}}
    if options.priority_class is not None:
        pod_spec["priorityClassName"] = options.priority_class
    return [{
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": _meta(DAEMONSET_NAME, options.namespace),
        "spec": {
            "selector": {"matchLabels": dict(SELECTOR)},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {
                    "labels": _labels(),
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(METRICS_PORT),
                                    "prometheus.io/path": "/metrics"},
                },
                "spec": pod_spec,
            },
        },
    }]


# ---------------------------------------------------------------------------------------------- output

def parse_sections(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"crds,rbac"`` (or a list of such strings) → sections in :data:`SECTIONS` order; None → all."""
    if text is None:
        return SECTIONS
    parts = [text] if isinstance(text, str) else list(text)
    wanted = {p.strip() for part in parts for p in part.split(",") if p.strip()}
    unknown = sorted(wanted - set(SECTIONS))
    if unknown or not wanted:
        raise ManifestError(f"--only takes a comma-separated list of {', '.join(SECTIONS)}, got "
                            f"{', '.join(unknown) if unknown else 'nothing'}")
    return tuple(s for s in SECTIONS if s in wanted)


def build(options: ManifestOptions | None = None, sections: Iterable[str] = SECTIONS) -> list[dict[str, Any]]:
    """Every object of the chosen sections, in apply order (CRDs, then RBAC, then the DaemonSet)."""
    options = options or ManifestOptions()
    options.validate()
    chosen = set(sections)
    objects: list[dict[str, Any]] = []
    if "crds" in chosen:
        objects += crds()
    if "rbac" in chosen:
        objects += rbac(options)
    if "daemonset" in chosen:
        objects += daemonset(options)
    return objects


def render(objects: Sequence[dict[str, Any]], header: str | None = None) -> str:
    """Multi-document YAML (``---`` between objects), optionally preceded by ``#`` comment lines."""
    body = yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False, width=1000,
                              explicit_start=True)
    if not header:
        return body
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comment + body


__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_MODELS_ROOT",
    "DEFAULT_NAMESPACE",
    "SECTIONS",
    "ManifestError",
    "ManifestOptions",
    "build",
    "crds",
    "daemonset",
    "model_spec_schema",
    "parse_sections",
    "rbac",
    "render",
]
