"""Model metadata after a download: the ConfigMap ``config`` object and the spec back-fill.

:meth:`ModelConfigParser.parse` inspects the model directory (:func:`modelagent.inspect_model`) and returns
the entry's ``config``; with a ``CustomObjectsApi`` it also fills the BaseModel/ClusterBaseModel spec
fields that are still empty, with one JSON merge patch guarded by the object's ``resourceVersion``.
Nothing already set is overwritten (``modelConfiguration`` included), so a second run sends nothing,
and the caller's object is never modified.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelagent._core import ModelAgentError
from modelagent.agent.model_ref import BASE_MODEL, ModelRef
from modelagent.metadata import ModelMetadata, inspect_model

_log = logging.getLogger("modelagent.agent.config_parser")

SKIP_CONFIG_PARSING_ANNOTATION = "ome.oracle.com/skip-config-parsing"
GROUP = "ome.io"
VERSION = "v1beta1"
PLURALS = {"BaseModel": "basemodels", "ClusterBaseModel": "clusterbasemodels"}
SPEC_QUANTIZATIONS = frozenset({"fp8", "fbgemm_fp8", "int4"})
"""The values of the CRD's ``quantization`` enum; other detected methods are not written to the spec."""


def skips_config_parsing(obj: Mapping[str, Any]) -> bool:
    """True when ``obj`` carries ``ome.oracle.com/skip-config-parsing: "true"`` (any letter case)."""
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    value = annotations.get(SKIP_CONFIG_PARSING_ANNOTATION) if isinstance(annotations, Mapping) else None
    return isinstance(value, str) and value.strip().lower() == "true"


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {} or value == 0


def spec_backfill(spec: Mapping[str, Any] | None, metadata: ModelMetadata) -> dict[str, Any]:
    """The spec fields to write: every field the metadata knows whose current value is empty (absent,
    null, "", 0, [] or {}). ``modelFormat``/``modelFramework`` count as empty without a ``name``; only the
    empty parts of them are written. Returns ``{}`` when there is nothing to fill."""
    spec = spec if isinstance(spec, Mapping) else {}
    known: dict[str, Any] = {
        "modelType": metadata.model_type,
        "modelArchitecture": metadata.architecture,
        "modelParameterSize": metadata.parameter_size,
        "maxTokens": metadata.max_tokens,
        "modelCapabilities": list(metadata.capabilities),
        "quantization": metadata.quantization if metadata.quantization in SPEC_QUANTIZATIONS else "",
        "modelConfiguration": copy.deepcopy(metadata.decoded_configuration),
    }
    patch = {field: value for field, value in known.items() if not _empty(value) and _empty(spec.get(field))}
    for field, found in (("modelFramework", metadata.framework), ("modelFormat", metadata.format)):
        if found is None or not found.name:
            continue
        current = spec.get(field)
        current = current if isinstance(current, Mapping) else {}
        if not _empty(current.get("name")):
            continue
        part: dict[str, Any] = {"name": found.name}
        if found.version and _empty(current.get("version")):
            part["version"] = found.version
        patch[field] = part
    return patch


class ModelConfigParser:
    """Reads a downloaded model's metadata and back-fills its spec.

    Args:
        custom_objects_api: a ``kubernetes.client.CustomObjectsApi``, or ``None`` (standalone: no spec writes).
        retries: attempts of the spec patch; a conflict (the object changed since it was read) re-reads it.
    """

    def __init__(self, custom_objects_api: Any | None = None, *, retries: int = 5) -> None:
        if retries < 1:
            raise ValueError(f"retries must be at least 1, got {retries}")
        self.api = custom_objects_api
        self.retries = retries

    def metadata(self, ref: ModelRef, model_obj: Mapping[str, Any], dest: str | os.PathLike[str]
                 ) -> ModelMetadata | None:
        """The model's metadata, or ``None`` (logged) when the folder is missing, parsing is skipped by
        annotation, or the model cannot be read."""
        folder = Path(dest)
        if skips_config_parsing(model_obj):
            _log.info("%s: config parsing skipped by annotation %s", ref.display, SKIP_CONFIG_PARSING_ANNOTATION)
            return None
        if not folder.exists():
            _log.info("%s: %s does not exist; no metadata", ref.display, folder)
            return None
        try:
            return inspect_model(folder)
        except (ModelAgentError, OSError, ValueError) as error:
            _log.warning("%s: cannot read the model's metadata in %s: %s", ref.display, folder, error)
            return None

    def parse(self, ref: ModelRef, model_obj: Mapping[str, Any], dest: str | os.PathLike[str]
              ) -> dict[str, Any] | None:
        """The ConfigMap entry's ``config`` object for the model in ``dest`` (``None`` when there is no
        metadata, see :meth:`metadata`). With an API client the empty spec fields are back-filled too;
        a failed back-fill is logged and does not change the result."""
        found = self.metadata(ref, model_obj, dest)
        if found is None:
            return None
        config = dict(found.to_model_config().to_dict())
        if self.api is not None:
            try:
                self.backfill(ref, model_obj, found)
            except Exception as error:  # noqa: BLE001 - the spec is a convenience; the model is still Ready
                _log.warning("%s: spec back-fill failed: %s", ref.display, error)
        return config

    def backfill(self, ref: ModelRef, model_obj: Mapping[str, Any], metadata: ModelMetadata
                 ) -> dict[str, Any] | None:
        """Fill the empty spec fields of the live object from ``metadata`` (:func:`spec_backfill`).

        Reads the latest object, sends a merge patch carrying its ``resourceVersion`` and, on a conflict,
        reads again. Returns the spec fields written, or ``None`` when nothing was empty, the object is
        gone, or there is no API client. ``model_obj`` is only used for its identity.
        """
        del model_obj  # the live object is read instead; the caller's copy is never touched
        if self.api is None:
            return None
        last: BaseException | None = None
        for attempt in range(1, self.retries + 1):
            try:
                live = self._get(ref)
            except Exception as error:
                if getattr(error, "status", None) == 404:
                    _log.info("%s: gone before its spec could be back-filled", ref.display)
                    return None
                raise
            fields = spec_backfill(live.get("spec"), metadata)
            if not fields:
                return None
            version = (live.get("metadata") or {}).get("resourceVersion")
            body = {"metadata": {"resourceVersion": version}, "spec": fields}
            try:
                self._patch(ref, body)
                _log.info("%s: back-filled spec fields %s", ref.display, sorted(fields))
                return fields
            except Exception as error:
                status = getattr(error, "status", None)
                if status == 404:
                    return None
                if status != 409:
                    raise
                last = error
                _log.info("%s: spec changed while back-filling (attempt %d); re-reading", ref.display, attempt)
                time.sleep(0.05 * attempt)
        raise RuntimeError(f"{ref.display}: spec back-fill kept conflicting after {self.retries} attempts") from last

    def _get(self, ref: ModelRef) -> dict[str, Any]:
        api: Any = self.api
        plural = PLURALS[ref.kind]
        if ref.kind == BASE_MODEL:
            return api.get_namespaced_custom_object(GROUP, VERSION, ref.namespace, plural, ref.name)
        return api.get_cluster_custom_object(GROUP, VERSION, plural, ref.name)

    def _patch(self, ref: ModelRef, body: dict[str, Any]) -> Any:
        api: Any = self.api
        plural = PLURALS[ref.kind]
        if ref.kind == BASE_MODEL:
            return api.patch_namespaced_custom_object(GROUP, VERSION, ref.namespace, plural, ref.name, body)
        return api.patch_cluster_custom_object(GROUP, VERSION, plural, ref.name, body)


__all__ = [
    "SKIP_CONFIG_PARSING_ANNOTATION",
    "SPEC_QUANTIZATIONS",
    "ModelConfigParser",
    "skips_config_parsing",
    "spec_backfill",
]
