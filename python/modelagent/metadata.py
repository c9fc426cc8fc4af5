"""Model metadata: what a model directory holds, read from config.json and the safetensors headers.

``inspect_model(path)`` returns a :class:`ModelMetadata`; its :meth:`ModelMetadata.to_dict` gives the
ConfigMap ``config`` keys OME uses plus ``parameterCount``, ``torchDtype`` and ``modelSizeBytes``.
The rules (config location, context length, capabilities, quantization, size string) are in
docs/model-metadata.md.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelagent import _core

__all__ = [
    "ModelMetadata",
    "QuantizationDetail",
    "example_model_path",
    "format_parameter_size",
    "inspect_model",
]

#: ``maxTokens`` is an int32 in OME's ModelConfig; longer contexts are reported as this value.
MAX_TOKENS_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class QuantizationDetail:
    """How a quantized model is quantized, beyond the CRD value.

    ``method`` is e.g. ``gptq``, ``awq``, ``fp8``, ``fbgemm_fp8``, ``compressed-tensors``,
    ``bitsandbytes``, ``mxfp4``; ``scheme`` e.g. ``w4a16``, ``fp8``, ``nf4``, ``e4m3`` ("" when not known);
    ``bits`` the weight bits (0 when not known); ``source`` where it was found.
    """

    method: str
    scheme: str
    bits: int
    source: str

    def to_dict(self) -> dict[str, Any]:
        """``{"method", "scheme", "bits"}``, as in the decoded configuration summary."""
        return {"method": self.method, "scheme": self.scheme, "bits": self.bits}


@dataclass(frozen=True, repr=False)
class ModelMetadata:
    """Metadata of one model directory, as returned by :func:`inspect_model`.

    ``parameter_count`` is 0 and ``parameter_size`` "" when unknown; ``context_length`` is 0 when the
    config declares none. ``framework`` and ``format`` are ``None`` when unknown (no weight files
    recognised). ``quantization`` is the BaseModel CRD value (``fp8``, ``fbgemm_fp8``, ``int4`` or "");
    ``quantization_detail`` says more whenever the model is quantized, even when the CRD has no value
    for it. ``model_size_bytes`` is the size on disk of ``weight_files``.
    """

    model_type: str
    architecture: str
    framework: _core.NameVersion | None
    format: _core.NameVersion | None
    parameter_count: int
    parameter_size: str
    parameter_count_source: str
    context_length: int
    capabilities: tuple[str, ...]
    has_vision: bool
    quantization: str
    quantization_detail: QuantizationDetail | None
    torch_dtype: str
    transformers_version: str
    model_size_bytes: int
    weight_files: tuple[Path, ...]
    config_path: Path
    model_dir: Path
    decoded_configuration: dict[str, Any]

    @property
    def max_tokens(self) -> int:
        """The context length as the ConfigMap's int32 ``maxTokens``."""
        return min(self.context_length, MAX_TOKENS_LIMIT)

    def to_dict(self) -> dict[str, Any]:
        """The ConfigMap ``config`` keys, then ``parameterCount``, ``torchDtype`` and ``modelSizeBytes``.

        Every key is always present except ``quantization``, which is omitted when the model has no
        CRD quantization value (the detail is in ``decodedModelConfiguration["quantization"]``).
        """
        out: dict[str, Any] = {
            "modelType": self.model_type,
            "modelArchitecture": self.architecture,
            "modelFramework": _name_version_dict(self.framework),
            "modelFormat": _name_version_dict(self.format),
            "modelParameterSize": self.parameter_size,
            "maxTokens": self.max_tokens,
            "modelCapabilities": list(self.capabilities),
        }
        if self.quantization:
            out["quantization"] = self.quantization
        out["decodedModelConfiguration"] = dict(self.decoded_configuration)
        out["parameterCount"] = self.parameter_count
        out["torchDtype"] = self.torch_dtype
        out["modelSizeBytes"] = self.model_size_bytes
        return out

    def to_model_config(self) -> _core.ModelConfig:
        """The ``config`` object of this model's ConfigMap entry (empty fields omitted when written)."""
        return _core.ModelConfig(
            model_type=self.model_type,
            model_architecture=self.architecture,
            model_framework=self.framework,
            model_format=self.format,
            model_parameter_size=self.parameter_size,
            max_tokens=self.max_tokens,
            model_capabilities=list(self.capabilities),
            decoded_model_configuration=dict(self.decoded_configuration),
            quantization=self.quantization,
        )

    def summary_rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs for a human-readable table, unknown values shown as ``unknown``."""
        count = "unknown"
        if self.parameter_count:
            how = "exact, from safetensors" if self.parameter_count_source == "safetensors" else "estimated"
            count = f"{self.parameter_size} ({self.parameter_count:,}, {how})"
        files = len(self.weight_files)
        size = "unknown (no weight files)"
        if files:
            size = f"{_human_bytes(self.model_size_bytes)} ({self.model_size_bytes:,} bytes in {files} file{'s' * (files != 1)})"
        return [
            ("Model", str(self.model_dir)),
            ("Config", str(self.config_path)),
            ("Type", self.model_type or "unknown"),
            ("Architecture", self.architecture or "unknown"),
            ("Framework", _name_version_text(self.framework)),
            ("Format", _name_version_text(self.format)),
            ("Parameters", count),
            ("Context length", f"{self.context_length:,} tokens" if self.context_length else "unknown"),
            ("Capabilities", ", ".join(self.capabilities) or "unknown"),
            ("Quantization", _quantization_text(self.quantization, self.quantization_detail)),
            ("Torch dtype", self.torch_dtype or "unknown"),
            ("Size on disk", size),
        ]

    def __repr__(self) -> str:
        parts = [
            f"model_type={self.model_type!r}",
            f"architecture={self.architecture!r}",
            f"parameters={self.parameter_size or 'unknown'!r}",
            f"context_length={self.context_length}",
            f"capabilities={list(self.capabilities)!r}",
        ]
        if self.quantization_detail:
            parts.append(f"quantization={self.quantization_detail.method!r}")
        parts += [f"torch_dtype={self.torch_dtype!r}", f"path={str(self.model_dir)!r}"]
        return f"ModelMetadata({', '.join(parts)})"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(label)}</th><td style='text-align:left'>{html.escape(value)}</td></tr>"
            for label, value in self.summary_rows()
        )
        return f"<table class='modelagent-metadata'>{rows}</table>"


def inspect_model(path: str | os.PathLike[str]) -> ModelMetadata:
    """Inspect a model directory (or a config.json file) and return its metadata.

    config.json is looked for at the root, then in ``safetensors/``, ``pytorch_model/`` and ``model/``,
    then by a bounded walk; a diffusers ``model_index.json`` is recognised. The parameter count is exact
    when safetensors weights are present, otherwise estimated from config.json.

    Raises :class:`modelagent.ModelConfigError` for a missing directory, a missing or malformed
    config.json, and :class:`modelagent.SafetensorsError` for a malformed safetensors header; messages name
    the file at fault.
    """
    fspath = os.fspath(path)
    if "\0" in fspath:
        raise _core.ModelConfigError(f"model path {fspath!r} contains a NUL character")
    raw = _core.inspect_model(fspath)
    detail = raw.quantization_detail
    return ModelMetadata(
        model_type=raw.model_type,
        architecture=raw.architecture,
        framework=raw.framework if raw.framework.name else None,
        format=raw.format if raw.format.name else None,
        parameter_count=raw.parameter_count,
        parameter_size=raw.parameter_size,
        parameter_count_source=raw.parameter_count_source,
        context_length=raw.context_length,
        capabilities=tuple(raw.capabilities),
        has_vision=raw.has_vision,
        quantization=raw.quantization,
        quantization_detail=QuantizationDetail(detail.method, detail.scheme, detail.bits, detail.source)
        if detail.quantized
        else None,
        torch_dtype=raw.torch_dtype,
        transformers_version=raw.transformers_version,
        model_size_bytes=raw.model_size_bytes,
        weight_files=tuple(Path(f) for f in raw.weight_files),
        config_path=Path(raw.config_path),
        model_dir=Path(raw.model_dir),
        decoded_configuration=json.loads(raw.decoded_summary_json()),
    )


def format_parameter_size(count: int) -> str:
    """The parameter-size string OME shows: ``8030261248`` -> ``"8.03B"`` (units K, M, B, T)."""
    return _core.format_parameter_size(count)


def example_model_path() -> Path:
    """The bundled example model (a tiny random-weight Llama), inspected by ``model-agent inspect``."""
    return Path(__file__).resolve().parent / "examples" / "tiny-llama"


def _name_version_dict(value: _core.NameVersion | None) -> dict[str, str]:
    if value is None:
        return {"name": ""}
    out = {"name": value.name}
    if value.version:
        out["version"] = value.version
    return out


def _name_version_text(value: _core.NameVersion | None) -> str:
    if value is None:
        return "unknown"
    return f"{value.name} {value.version}" if value.version else value.name


def _quantization_text(crd_value: str, detail: QuantizationDetail | None) -> str:
    if detail is None:
        return "none"
    described = ", ".join(
        part
        for part in (detail.method, detail.scheme, f"{detail.bits}-bit" if detail.bits else "")
        if part
    )
    return f"{crd_value or 'no CRD value'} ({described}; from {detail.source})"


def _human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
