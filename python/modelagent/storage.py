"""Python-side helpers for the wire contract: storage URIs, OME names and ConfigMap entries.

The parsing, naming and JSON work happens in the C++ core (``modelagent._core``); this module adds the
pieces that are more natural in Python: a ``str`` enum of model statuses and a ``ModelKind`` alias.
"""

from __future__ import annotations

import enum
from typing import Literal, Union

from modelagent._core import (
    AzureStorageUri,
    GcsStorageUri,
    GitHubStorageUri,
    HuggingFaceStorageUri,
    LocalStorageUri,
    OciStorageUri,
    PvcStorageUri,
    S3StorageUri,
    VendorStorageUri,
)

ModelKind = Literal["BaseModel", "ClusterBaseModel"]
"""The two OME model resources: namespaced ``BaseModel`` and cluster-scoped ``ClusterBaseModel``."""

AnyStorageUri = Union[
    OciStorageUri,
    HuggingFaceStorageUri,
    PvcStorageUri,
    LocalStorageUri,
    VendorStorageUri,
    S3StorageUri,
    GcsStorageUri,
    AzureStorageUri,
    GitHubStorageUri,
]
"""Every concrete result type of :func:`modelagent.parse_storage_uri`."""


class ModelStatus(str, enum.Enum):
    """A model's state on one node, as written to its node label and ConfigMap entry.

    Members are ``str`` values, so ``ModelStatus.READY == "Ready"`` and they can be passed wherever a status
    string is expected.
    """

    READY = "Ready"
    UPDATING = "Updating"
    FAILED = "Failed"
    DELETED = "Deleted"

    def __str__(self) -> str:
        return self.value


__all__ = ["AnyStorageUri", "ModelKind", "ModelStatus"]
