"""Identity of one model the agent manages: a BaseModel or a ClusterBaseModel."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelagent._core import configmap_key, node_label_key

BASE_MODEL = "BaseModel"
CLUSTER_BASE_MODEL = "ClusterBaseModel"
MODEL_KINDS = (BASE_MODEL, CLUSTER_BASE_MODEL)


@dataclass(frozen=True)
class ModelRef:
    """One model object: kind, namespace (``None`` for a ClusterBaseModel), name and uid.

    The uid tells apart two objects that had the same name at different times (deleted, then
    re-created); the names derived from it (label key, ConfigMap key) depend only on kind,
    namespace and name, exactly as OME derives them.
    """

    kind: str
    namespace: str | None
    name: str
    uid: str = ""

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model kind must be BaseModel or ClusterBaseModel, got {self.kind!r}")
        if not self.name:
            raise ValueError(f"{self.kind} has an empty name")
        if self.kind == BASE_MODEL and not self.namespace:
            raise ValueError(f"BaseModel {self.name!r} has no namespace")
        if self.kind == CLUSTER_BASE_MODEL and self.namespace:
            raise ValueError(
                f"ClusterBaseModel {self.name!r} must not have a namespace (got {self.namespace!r})"
            )

    @property
    def label_key(self) -> str:
        """The node label key OME uses for this model (``models.ome.io/...``)."""
        return node_label_key(self.kind, self.name, self.namespace)

    @property
    def configmap_key(self) -> str:
        """The key of this model's entry in the node's ConfigMap."""
        return configmap_key(self.kind, self.name, self.namespace)

    @property
    def display(self) -> str:
        """Human-readable identity: ``BaseModel ns/name`` or ``ClusterBaseModel name``."""
        if self.kind == BASE_MODEL:
            return f"BaseModel {self.namespace}/{self.name}"
        return f"ClusterBaseModel {self.name}"

    @property
    def metric_labels(self) -> tuple[str, str, str]:
        """``(model_type, namespace, name)`` as the ``model_agent_*`` metrics label them."""
        return (self.kind, self.namespace or "", self.name)

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> ModelRef:
        """Build from a BaseModel/ClusterBaseModel object as the Kubernetes API returns it (a dict).

        Raises ``ValueError`` naming the missing or wrong field.
        """
        if not isinstance(obj, Mapping):
            raise ValueError(f"model object must be a mapping, got {type(obj).__name__}")
        kind = obj.get("kind")
        meta = obj.get("metadata")
        if not isinstance(meta, Mapping):
            raise ValueError(f"{kind or 'model object'} has no metadata")
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{kind or 'model object'} has no metadata.name")
        if kind not in MODEL_KINDS:
            raise ValueError(
                f"object {name!r}: kind must be BaseModel or ClusterBaseModel, got {kind!r}"
            )
        namespace = meta.get("namespace") or None
        if kind == CLUSTER_BASE_MODEL:
            namespace = None
        uid = meta.get("uid") or ""
        return cls(kind=str(kind), namespace=namespace, name=name, uid=str(uid))
