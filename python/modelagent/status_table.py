"""The node's model table: rows from the ConfigMap ``data`` map (key → entry JSON), rendered as text.

Used by ``model-agent status`` (cluster ConfigMap or the standalone status file) so that both show the same
columns: KIND, NAMESPACE, NAME, STATUS, SIZE, ARCH, MAX TOKENS, PROGRESS, REASON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelagent import ModelEntry, ModelEntryError, parse_configmap_key

COLUMNS: tuple[str, ...] = ("KIND", "NAMESPACE", "NAME", "STATUS", "SIZE", "ARCH", "MAX TOKENS", "PROGRESS",
                            "REASON")
EMPTY = "-"
INVALID = "<invalid>"


@dataclass(frozen=True)
class StatusRow:
    """One model's row; empty cells are :data:`EMPTY`."""

    kind: str
    namespace: str
    name: str
    status: str
    size: str
    arch: str
    max_tokens: str
    progress: str
    reason: str

    def cells(self) -> tuple[str, ...]:
        """The cells in :data:`COLUMNS` order."""
        return (self.kind, self.namespace, self.name, self.status, self.size, self.arch, self.max_tokens,
                self.progress, self.reason)


def format_rate(bytes_per_sec: float) -> str:
    """``12.3MiB/s`` style, binary units."""
    value = float(bytes_per_sec)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f}{unit}/s" if unit == "B" else f"{value:.1f}{unit}/s"
        value /= 1024
    raise AssertionError("unreachable")


def format_progress(progress: Mapping[str, Any] | None) -> str:
    """``42% 12.3MiB/s`` from an entry's ``progress`` object; the phase when the total is unknown."""
    if not progress:
        return EMPTY
    total = int(progress.get("totalBytes") or 0)
    done = int(progress.get("completedBytes") or 0)
    speed = float(progress.get("speedBytesPerSec") or 0.0)
    if total > 0:
        text = f"{min(100, done * 100 // total)}%"
    else:
        text = str(progress.get("phase") or "") or "0%"
    if speed > 0:
        text += " " + format_rate(speed)
    return text


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def row_for(key: str, value: str | bytes) -> StatusRow:
    """The row for one ConfigMap entry; an entry that does not parse gives a row saying why."""
    parsed = parse_configmap_key(key)
    if parsed is None:
        kind, namespace, key_name = key, EMPTY, ""
    else:
        kind, ns, key_name = parsed
        namespace = ns or EMPTY
    try:
        entry = ModelEntry.from_json(value, key=key)
    except ModelEntryError as error:
        return StatusRow(kind, namespace, key_name or EMPTY, INVALID, EMPTY, EMPTY, EMPTY, EMPTY,
                         _one_line(str(error)))
    data = entry.to_dict()
    config = data.get("config") or {}
    reason = data.get("reason")
    max_tokens = config.get("maxTokens")
    return StatusRow(
        kind=kind,
        namespace=namespace,
        name=entry.name or key_name or EMPTY,
        status=entry.status,
        size=str(config.get("modelParameterSize") or EMPTY),
        arch=str(config.get("modelArchitecture") or EMPTY),
        max_tokens=str(max_tokens) if max_tokens else EMPTY,
        progress=format_progress(data.get("progress")),
        reason=_one_line(reason) if isinstance(reason, str) and reason else EMPTY,
    )


def rows_for(data: Mapping[str, str | bytes]) -> list[StatusRow]:
    """Rows for a ConfigMap ``data`` map, ordered by key."""
    return [row_for(key, data[key]) for key in sorted(data)]


def render_table(rows: list[StatusRow]) -> str:
    """Left-aligned columns separated by three spaces, header first, no trailing spaces."""
    table = [COLUMNS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    out = []
    for line in table:
        out.append("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
    return "\n".join(out) + "\n"


__all__ = ["COLUMNS", "EMPTY", "INVALID", "StatusRow", "format_progress", "format_rate", "render_table",
           "row_for", "rows_for"]
