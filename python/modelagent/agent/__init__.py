"""The agent's control loop: model identities, the Gopher (download/delete worker pool), model sources,
status sinks and the runner behind ``model-agent run``."""

from __future__ import annotations

from modelagent.agent.model_ref import BASE_MODEL, CLUSTER_BASE_MODEL, MODEL_KINDS, ModelRef

__all__ = ["BASE_MODEL", "CLUSTER_BASE_MODEL", "MODEL_KINDS", "ModelRef"]
