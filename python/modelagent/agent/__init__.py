"""The agent's control loop: model identities, the Gopher (download/delete worker pool), model sources,
status sinks and the runner behind ``model-agent run``.

Public names follow OME's agent: :class:`Scout`, :class:`Gopher`, :class:`GopherTask`,
:class:`ConfigMapReconciler`, :class:`NodeLabelReconciler`, :class:`ModelConfigParser`. Names from
modules that pull in the Kubernetes client are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from modelagent.agent.model_ref import BASE_MODEL, CLUSTER_BASE_MODEL, MODEL_KINDS, ModelRef
from modelagent.agent.tasks import GopherTask, TaskType

_LAZY = {
    "Gopher": "modelagent.agent.gopher",
    "FileModelSource": "modelagent.agent.file_source",
    "AgentRunner": "modelagent.agent.runner",
    "Settings": "modelagent.agent.config",
    "StatusSink": "modelagent.agent.status_sink",
    "Scout": "modelagent.agent.scout",
    "KubernetesModelSource": "modelagent.agent.scout",
    "NodeLabelReconciler": "modelagent.agent.node_labels",
    "ConfigMapReconciler": "modelagent.agent.configmap",
    "KubernetesStatusSink": "modelagent.agent.kubernetes_sink",
    "FileStatusSink": "modelagent.agent.file_sink",
    "ModelConfigParser": "modelagent.agent.config_parser",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modelagent.agent' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from modelagent.agent.config import Settings
    from modelagent.agent.config_parser import ModelConfigParser
    from modelagent.agent.configmap import ConfigMapReconciler
    from modelagent.agent.file_sink import FileStatusSink
    from modelagent.agent.file_source import FileModelSource
    from modelagent.agent.gopher import Gopher
    from modelagent.agent.kubernetes_sink import KubernetesStatusSink
    from modelagent.agent.node_labels import NodeLabelReconciler
    from modelagent.agent.runner import AgentRunner
    from modelagent.agent.scout import KubernetesModelSource, Scout
    from modelagent.agent.status_sink import StatusSink

__all__ = [
    "BASE_MODEL",
    "CLUSTER_BASE_MODEL",
    "MODEL_KINDS",
    "AgentRunner",
    "ConfigMapReconciler",
    "FileModelSource",
    "FileStatusSink",
    "Gopher",
    "GopherTask",
    "KubernetesModelSource",
    "KubernetesStatusSink",
    "ModelConfigParser",
    "ModelRef",
    "NodeLabelReconciler",
    "Scout",
    "Settings",
    "StatusSink",
    "TaskType",
]
