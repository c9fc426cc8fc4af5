"""Download progress display: a live terminal bar, or plain log lines when output is not a terminal.

The engine updates lock-free counters (``modelagent._core.DownloadProgress``); a :class:`ProgressMonitor`
polls them from a background thread and hands :class:`ProgressSnapshot` values to a renderer.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol, TextIO

__all__ = [
    "LogLines",
    "ProgressMonitor",
    "ProgressRenderer",
    "ProgressSnapshot",
    "TerminalBar",
    "format_bytes",
    "format_duration",
    "renderer_for",
]


@dataclasses.dataclass(frozen=True)
class ProgressSnapshot:
    """One reading of a download's counters."""

    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int
    bytes_per_second: float
    elapsed: float
    retries: int = 0
    rate_limited: int = 0
    bytes_fetched: int = 0
    rate_limit_wait_seconds: float = 0.0

    @property
    def started(self) -> bool:
        """True once the engine has published the plan's totals."""
        return self.files_total > 0 or self.bytes_total > 0

    @property
    def average_rate(self) -> float:
        """Bytes received over the network per second since the start."""
        return self.bytes_fetched / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def fraction(self) -> float | None:
        """Share of bytes done in [0, 1], or None while the total is unknown."""
        if self.bytes_total <= 0:
            return None if self.files_total == 0 or self.files_done < self.files_total else 1.0
        return min(1.0, self.bytes_done / self.bytes_total)

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the current rate, or None when it cannot be estimated."""
        if self.bytes_total <= 0 or self.bytes_per_second <= 0:
            return None
        return max(0.0, (self.bytes_total - self.bytes_done) / self.bytes_per_second)


class _Counters(Protocol):
    @property
    def bytes_total(self) -> int: ...
    @property
    def bytes_done(self) -> int: ...
    @property
    def bytes_fetched(self) -> int: ...
    @property
    def files_total(self) -> int: ...
    @property
    def files_done(self) -> int: ...
    @property
    def bytes_per_second(self) -> float: ...
    @property
    def retries(self) -> int: ...
    @property
    def rate_limited(self) -> int: ...

    @property
    def rate_limit_wait_seconds(self) -> float: ...


def read_counters(progress: _Counters, elapsed: float) -> ProgressSnapshot:
    """Snapshot of an engine ``DownloadProgress`` (any object with the same attributes)."""
    return ProgressSnapshot(
        bytes_done=int(progress.bytes_done),
        bytes_total=int(progress.bytes_total),
        files_done=int(progress.files_done),
        files_total=int(progress.files_total),
        bytes_per_second=float(progress.bytes_per_second),
        elapsed=elapsed,
        retries=int(progress.retries),
        rate_limited=int(progress.rate_limited),
        bytes_fetched=int(progress.bytes_fetched),
        rate_limit_wait_seconds=float(progress.rate_limit_wait_seconds),
    )


_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(n: float) -> str:
    """Human-readable binary size: ``0 B``, ``512 B``, ``1.5 KiB``, ``12.3 GiB``."""
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float | None) -> str:
    """``m:ss`` or ``h:mm:ss``; ``--:--`` when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "--:--"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _summary(s: ProgressSnapshot, final: bool = False) -> str:
    done = format_bytes(s.bytes_done)
    total = format_bytes(s.bytes_total) if s.bytes_total > 0 else "?"
    rate = f"{format_bytes(s.average_rate)}/s average" if final else f"{format_bytes(s.bytes_per_second)}/s"
    parts = [f"{done} / {total}", f"{s.files_done}/{s.files_total} files", rate]
    if s.rate_limited:
        parts.append(f"{s.rate_limited} rate-limited")
    elif s.retries:
        parts.append(f"{s.retries} retries")
    return ", ".join(parts)


class ProgressRenderer(Protocol):
    """Receives snapshots from a :class:`ProgressMonitor`."""

    def update(self, snapshot: ProgressSnapshot) -> None: ...

    def finish(self, snapshot: ProgressSnapshot, ok: bool) -> None: ...


class TerminalBar:
    """A single redrawn line: ``label [#####.....]  42%  1.2 GiB / 2.9 GiB, 3/7 files, 250 MiB/s, ETA 0:07``."""

    interval = 0.1

    def __init__(self, label: str, stream: TextIO | None = None, width: int | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._last_len = 0

    def _line(self, s: ProgressSnapshot, final: bool = False, ok: bool = False) -> str:
        width = self.width or shutil.get_terminal_size((100, 20)).columns
        fraction = 1.0 if final and ok else s.fraction
        percent = f"{fraction * 100:3.0f}%" if fraction is not None else " ?%"
        eta = "" if final else f", ETA {format_duration(s.eta_seconds)}"
        tail = f" {percent}  {_summary(s, final)}{eta}"
        bar_width = max(10, min(40, width - len(self.label) - len(tail) - 4))
        filled = int(bar_width * (fraction or 0.0))
        line = f"{self.label} [{'#' * filled}{'.' * (bar_width - filled)}]{tail}"
        return line[: max(20, width - 1)]

    def _draw(self, line: str) -> None:
        pad = " " * max(0, self._last_len - len(line))
        self.stream.write("\r" + line + pad)
        self.stream.flush()
        self._last_len = len(line)

    def update(self, snapshot: ProgressSnapshot) -> None:
        self._draw(self._line(snapshot))

    def finish(self, snapshot: ProgressSnapshot, ok: bool) -> None:
        self._draw(self._line(snapshot, final=True, ok=ok) + ("" if ok else "  (stopped)"))
        self.stream.write("\n")
        self.stream.flush()


class LogLines:
    """Plain progress lines for logs: one at start, then at most every ``every`` seconds or when another
    ``step`` of the bytes is done, and one at the end."""

    interval = 0.5

    def __init__(self, label: str, stream: TextIO | None = None, every: float = 10.0, step: float = 0.1) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self.step = step
        self._last_time: float | None = None
        self._last_bucket = -1

    def _emit(self, s: ProgressSnapshot, prefix: str = "", final: bool = False, ok: bool = False) -> None:
        fraction = 1.0 if final and ok else s.fraction
        percent = f"{fraction * 100:.0f}%" if fraction is not None else "?%"
        eta = f", ETA {format_duration(s.eta_seconds)}" if not final and fraction is not None and fraction < 1 else ""
        self.stream.write(f"{self.label}: {prefix}{percent} {_summary(s, final)}{eta}\n")
        self.stream.flush()

    def update(self, snapshot: ProgressSnapshot) -> None:
        if not snapshot.started:
            return
        fraction = snapshot.fraction or 0.0
        bucket = int(fraction / self.step) if self.step > 0 else 0
        due = self._last_time is None or snapshot.elapsed - self._last_time >= self.every
        if due or bucket > self._last_bucket:
            self._last_time = snapshot.elapsed
            self._last_bucket = bucket
            self._emit(snapshot)

    def finish(self, snapshot: ProgressSnapshot, ok: bool) -> None:
        self._emit(snapshot, "done, " if ok else "stopped at ", final=True, ok=ok)


class _Callback:
    interval = 0.5

    def __init__(self, callback: Callable[[ProgressSnapshot], None]) -> None:
        self.callback = callback

    def update(self, snapshot: ProgressSnapshot) -> None:
        self.callback(snapshot)

    def finish(self, snapshot: ProgressSnapshot, ok: bool) -> None:
        self.callback(snapshot)


def renderer_for(
    progress: bool | Callable[[ProgressSnapshot], None] | ProgressRenderer | None,
    label: str,
    stream: TextIO | None = None,
) -> ProgressRenderer | None:
    """The renderer a ``progress=`` argument asks for: True picks a bar on a terminal, log lines
    otherwise; a callable receives snapshots; False/None shows nothing."""
    if progress is None or progress is False:
        return None
    if progress is True:
        out = stream if stream is not None else sys.stderr
        isatty = getattr(out, "isatty", None)
        return TerminalBar(label, out) if callable(isatty) and isatty() else LogLines(label, out)
    if hasattr(progress, "update") and hasattr(progress, "finish"):
        return progress  # type: ignore[return-value]
    if callable(progress):
        return _Callback(progress)
    raise TypeError(f"progress must be a bool, a callable or a renderer, not {type(progress).__name__}")


class ProgressMonitor:
    """Polls engine counters from a daemon thread while a download runs (``with`` block)."""

    def __init__(self, counters: _Counters, renderer: ProgressRenderer | None) -> None:
        self.counters = counters
        self.renderer = renderer
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = time.monotonic()
        self.ok = False

    def snapshot(self) -> ProgressSnapshot:
        """The counters now."""
        return read_counters(self.counters, time.monotonic() - self._start)

    def _run(self) -> None:
        assert self.renderer is not None
        interval = float(getattr(self.renderer, "interval", 0.5))
        while not self._stop.wait(interval):
            self.renderer.update(self.snapshot())

    def __enter__(self) -> ProgressMonitor:
        self._start = time.monotonic()
        if self.renderer is not None:
            self.renderer.update(self.snapshot())
            self._thread = threading.Thread(target=self._run, name="modelagent-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.renderer is not None:
            self.renderer.finish(self.snapshot(), exc_type is None)
