"""What the agent does for each storage URI scheme."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelagent._core import InvalidStorageUri, parse_storage_uri


class Handling(str, enum.Enum):
    """How a model's storage is handled on this node."""

    DOWNLOAD = "download"
    """Fetched into the model's destination (``hf://``, ``oci://``, ``s3://``)."""
    IN_PLACE = "in-place"
    """Already on the node (``local://``): used where it is, never deleted."""
    SKIP = "skip"
    """Someone else's business (``pvc://``, ``vendor://``): no files, no label, no entry."""
    UNSUPPORTED = "unsupported"
    """A valid URI this agent has no source for yet: the model is marked Failed."""


_BY_SCHEME = {
    "hf": Handling.DOWNLOAD,
    "oci": Handling.DOWNLOAD,
    "s3": Handling.DOWNLOAD,
    "local": Handling.IN_PLACE,
    "pvc": Handling.SKIP,
    "vendor": Handling.SKIP,
}


@dataclass(frozen=True)
class StorageKind:
    """A parsed storage URI and how to handle it."""

    uri: str
    scheme: str
    handling: Handling
    parsed: Any

    @property
    def unsupported_reason(self) -> str:
        """The Failed reason for an unsupported scheme."""
        return f"storage type {self.scheme}:// is not supported by this agent yet"


def storage_uri_of(obj: Mapping[str, Any]) -> str:
    """``spec.storage.storageUri`` of a model object; ``InvalidStorageUri`` naming the field if missing."""
    spec = obj.get("spec")
    storage = spec.get("storage") if isinstance(spec, Mapping) else None
    uri = storage.get("storageUri") if isinstance(storage, Mapping) else None
    if not isinstance(uri, str) or not uri:
        raise InvalidStorageUri("spec.storage.storageUri is missing or empty")
    return uri


def classify(obj: Mapping[str, Any]) -> StorageKind:
    """Parse the model's storage URI and decide its handling.

    Raises ``InvalidStorageUri`` (message names the URI and the part at fault) for a missing or malformed URI.
    """
    uri = storage_uri_of(obj)
    parsed = parse_storage_uri(uri)
    scheme = str(parsed.scheme)
    return StorageKind(uri, scheme, _BY_SCHEME.get(scheme, Handling.UNSUPPORTED), parsed)


__all__ = ["Handling", "StorageKind", "classify", "storage_uri_of"]
