"""The TensorRT-LLM shape filter: a node downloads only its own GPU shape's engines of a ``tensorrtllm`` model.

A TensorRT-LLM model in an object store holds one engine folder per GPU shape (``H100/``, ``A100-80G/``...)
beside shape-agnostic files (tokenizer, config). The node's instance type (label
``node.kubernetes.io/instance-type``, else ``beta.kubernetes.io/instance-type``) maps to its shape alias
through OME's table, extended or overridden by ``INSTANCE_TYPE_MAP``; an unknown instance type is its own
alias. For a ``tensorrtllm`` model of type ``Serving`` from an object store (``oci://`` or ``s3://``; never
``hf://``) the download keeps files under the node's shape folder and files under no known shape folder,
drops other shapes' folders, and fails when the node's shape has no files at all.

The selection itself is :func:`modelagent._core.filter_by_shape` (a path segment must equal the alias
exactly); this module reads the table, the node and the model, and adapts the selection to the
``path_filter`` of :func:`modelagent.download`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelagent import _core

__all__ = [
    "INSTANCE_TYPE_LABELS",
    "SHAPE_FILTER_SCHEMES",
    "TENSORRT_LLM_FORMAT",
    "InstanceTypeMap",
    "InstanceTypeMapError",
    "ShapeFilterError",
    "instance_type_of",
    "load_instance_type_map",
    "shape_filter_applies",
    "shape_path_filter",
]

INSTANCE_TYPE_LABELS = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")
"""Node labels naming the instance type, most specific first."""

SHAPE_FILTER_SCHEMES = frozenset({"oci", "s3"})
"""Storage schemes whose ``tensorrtllm`` models are filtered by shape (object stores; never ``hf``)."""

TENSORRT_LLM_FORMAT = "tensorrtllm"
SERVING_TYPE = "Serving"


class InstanceTypeMapError(ValueError):
    """``INSTANCE_TYPE_MAP`` (or ``--instance-type-map``) cannot be used; the message names where it came from."""


class ShapeFilterError(_core.DownloadError):
    """The node's shape has no files in the model, or the node has no instance type to pick a shape by."""


@dataclass(frozen=True)
class InstanceTypeMap:
    """Instance type -> shape alias: OME's defaults with the operator's extension laid over them."""

    extension: Mapping[str, str] = field(default_factory=dict)
    """Entries given by ``INSTANCE_TYPE_MAP``; they add to or replace the defaults."""
    origin: str = ""
    """Where the extension came from (for logs), empty when there is none."""

    @property
    def table(self) -> dict[str, str]:
        """The merged table."""
        return _core.merge_instance_type_table(dict(self.extension))

    def alias(self, instance_type: str) -> str:
        """The shape alias of ``instance_type`` (the type itself when the table lacks it)."""
        return _core.shape_alias(instance_type, self.table)

    def known_aliases(self) -> list[str]:
        """Every alias of the merged table: the folder names that mark a file as shape-specific."""
        return _core.known_shape_aliases(self.table)


def load_instance_type_map(value: str | None, *, origin: str = "INSTANCE_TYPE_MAP") -> InstanceTypeMap:
    """The instance type map given by ``value``: JSON text when it starts with ``{`` (after blanks), else the
    path of a file holding the JSON (e.g. a mounted ConfigMap key). ``None`` or blank: the defaults alone.

    Raises :class:`InstanceTypeMapError` naming ``origin`` (and the file) for an unreadable file or a
    malformed map.
    """
    if value is None or not value.strip():
        return InstanceTypeMap()
    text = value.strip()
    if text.startswith("{"):
        where = origin
    else:
        where = f"{origin} file {text}"
        try:
            with open(os.path.expanduser(text), encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            raise InstanceTypeMapError(f"{where}: cannot read it ({reason}); the value must be a JSON object "
                                       "or the path of a file holding one") from None
    try:
        extension = _core.parse_instance_type_map(text, where)
    except ValueError as error:
        raise InstanceTypeMapError(str(error)) from None
    return InstanceTypeMap(extension, where)


def instance_type_of(labels: Mapping[str, str] | None) -> str:
    """The node's instance type from its labels (see :data:`INSTANCE_TYPE_LABELS`), empty when unlabelled."""
    for label in INSTANCE_TYPE_LABELS:
        value = (labels or {}).get(label)
        if isinstance(value, str) and value:
            return value
    return ""


def _dig(obj: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(part)
    return obj


def shape_filter_applies(obj: Mapping[str, Any], scheme: str) -> bool:
    """True when the model's download is filtered by shape: an object-store scheme (:data:`SHAPE_FILTER_SCHEMES`),
    ``spec.modelFormat.name`` exactly ``tensorrtllm`` and ``spec.additionalMetadata.type`` ``Serving``
    (the default when absent), as OME decides."""
    if scheme not in SHAPE_FILTER_SCHEMES:
        return False
    if _dig(obj, "spec", "modelFormat", "name") != TENSORRT_LLM_FORMAT:
        return False
    model_type = _dig(obj, "spec", "additionalMetadata", "type")
    return (model_type or SERVING_TYPE) == SERVING_TYPE


def shape_path_filter(alias: str, known_aliases: list[str], uri: str, *, instance_type: str = ""
                      ) -> Callable[[list[str]], dict[str, str]]:
    """A ``path_filter`` for :func:`modelagent.download` selecting ``alias``'s files of the model at ``uri``.

    The filter returns the dropped paths with their reasons and raises :class:`ShapeFilterError` when no file
    is under the node's shape folder (naming the shape, the URI and the shapes present) or, when ``alias`` is
    empty, that the node has no instance type label.
    """
    known = sorted(set(known_aliases))

    def path_filter(paths: list[str]) -> dict[str, str]:
        result = _core.filter_by_shape(list(paths), alias, known)
        if result.shape_matches == 0:
            present = ", ".join(result.other_shapes) or "none"
            if not alias:
                raise ShapeFilterError(
                    f"this node has no {INSTANCE_TYPE_LABELS[0]} label, so no shape of the tensorrtllm model "
                    f"{uri} can be chosen; shapes present: {present}"
                )
            node = f" (instance type {instance_type})" if instance_type and instance_type != alias else ""
            raise ShapeFilterError(f"no files for shape {alias}{node} under {uri}; shapes present: {present}")
        return dict(result.dropped)

    return path_filter
