"""Local fake servers and a pytest plugin for integration tests that drive modelagent.

* :mod:`modelagent.testing.hf_hub` - :class:`FakeHub`, a fake Hugging Face Hub (hub + CDN on loopback);
* :mod:`modelagent.testing.oci_object_storage` - :class:`FakeObjectStorage`, a fake OCI Object Storage that
  verifies request signatures; :mod:`modelagent.testing.oci_identity` - fake IMDS, federation and OKE endpoints;
* :mod:`modelagent.testing.model_factory` - synthetic model directories (config, tokenizer, safetensors);
* :mod:`modelagent.testing.plugin` - pytest fixtures (``fake_hub``, ``synthetic_model``, ...).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FakeHub": "modelagent.testing.hf_hub",
    "FakeObjectStorage": "modelagent.testing.oci_object_storage",
    "FakeInstanceIdentity": "modelagent.testing.oci_identity",
    "MotoServer": "modelagent.testing.s3_server",
    "FakeOkeProxymux": "modelagent.testing.oci_identity",
    "ResourcePrincipalCredentials": "modelagent.testing.oci_identity",
    "write_oci_config": "modelagent.testing.oci_identity",
    "HubFile": "modelagent.testing.hf_hub",
    "Fault": "modelagent.testing._http",
    "RequestRecord": "modelagent.testing._http",
    "SyntheticModel": "modelagent.testing.model_factory",
    "add_synthetic_model": "modelagent.testing.model_factory",
    "write_safetensors": "modelagent.testing.model_factory",
    "write_synthetic_model": "modelagent.testing.model_factory",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that ``python -m modelagent.testing.hf_hub`` does not import the module twice.
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modelagent.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "FakeHub",
    "FakeInstanceIdentity",
    "FakeObjectStorage",
    "FakeOkeProxymux",
    "Fault",
    "HubFile",
    "MotoServer",
    "RequestRecord",
    "ResourcePrincipalCredentials",
    "SyntheticModel",
    "add_synthetic_model",
    "write_oci_config",
    "write_safetensors",
    "write_synthetic_model",
]
