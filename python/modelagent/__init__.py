"""modelagent: the per-node model agent for LLM serving on Kubernetes.

The data path (downloads, verification, model metadata) is a C++ core in ``modelagent._core``;
this package is the public Python face of it and hosts the Kubernetes control loop.
"""

from __future__ import annotations

from modelagent._core import (
    InvalidStorageUri,
    ModelAgentError,
    ModelConfigError,
    ModelEntryError,
    SafetensorsError,
    __version__,
)

__all__ = [
    "InvalidStorageUri",
    "ModelAgentError",
    "ModelConfigError",
    "ModelEntryError",
    "SafetensorsError",
    "__version__",
]
