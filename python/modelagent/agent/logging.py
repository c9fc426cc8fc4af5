"""Structured logs for the agent: one JSON object (or one text line) per record, model identity on each.

Every record logged through :func:`model_logger` carries ``model`` (``BaseModel ns/name``),
``model_kind``, ``model_namespace`` and ``model_name``; JSON lines also carry ``time`` (RFC 3339 UTC), ``level``, ``logger`` and
``msg`` and, for exceptions, ``error``.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

from modelagent.agent.model_ref import ModelRef

LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("debug", "info", "warn", "warning", "error", "critical")

_MODEL_FIELDS = ("model", "model_kind", "model_namespace", "model_name")
_EXTRA_FIELDS = (*_MODEL_FIELDS, "task", "uri", "dest", "status", "reason", "settings")


class ModelLoggerAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger adapter that stamps a model's identity on every record."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra = dict(self.extra or {})
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return msg, kwargs


def model_logger(logger: logging.Logger, ref: ModelRef, **fields: Any) -> ModelLoggerAdapter:
    """``logger`` with ``ref``'s identity (and any ``fields``) added to every record."""
    extra: dict[str, Any] = {
        "model": ref.display,
        "model_kind": ref.kind,
        "model_namespace": ref.namespace or "",
        "model_name": ref.name,
    }
    extra.update(fields)
    return ModelLoggerAdapter(logger, extra)


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.datetime.fromtimestamp(record.created, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for field in _EXTRA_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                line[field] = value if isinstance(value, (str, int, float, bool, dict, list)) else str(value)
        if record.exc_info and record.exc_info[1] is not None:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger [model] message key=value ...`` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), f"{record.levelname:<7}", record.name]
        model = getattr(record, "model", None)
        if model:
            parts.append(f"[{model}]")
        parts.append(record.getMessage())
        for field in _EXTRA_FIELDS[4:]:
            value = getattr(record, field, None)
            if value is not None:
                parts.append(f"{field}={value}")
        text = " ".join(parts)
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + self.formatException(record.exc_info)
        return text


def parse_level(level: str) -> int:
    """A ``--log-level`` value as a ``logging`` level; ``ValueError`` listing the valid names."""
    name = level.strip().lower()
    if name not in LOG_LEVELS:
        raise ValueError(f"--log-level must be one of {', '.join(LOG_LEVELS)}; got {level!r}")
    return logging.WARNING if name == "warn" else int(getattr(logging, name.upper()))


def configure_logging(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> logging.Handler:
    """Send the ``modelagent`` loggers to ``stream`` (default stdout) in ``fmt`` at ``level``.

    Replaces a handler installed by an earlier call; returns the handler.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"--log-format must be json or text; got {fmt!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.set_name("modelagent-agent")
    root = logging.getLogger("modelagent")
    for old in list(root.handlers):
        if old.get_name() == "modelagent-agent":
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(parse_level(level))
    root.propagate = False
    return handler


__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "JsonFormatter",
    "ModelLoggerAdapter",
    "TextFormatter",
    "configure_logging",
    "model_logger",
    "parse_level",
]
