"""The progress display: formatting, log-line cadence, the terminal bar and the polling monitor."""

from __future__ import annotations

import io
import threading
import types

import pytest

from modelagent.progress import (
    LogLines,
    ProgressMonitor,
    ProgressSnapshot,
    TerminalBar,
    format_bytes,
    format_duration,
    renderer_for,
)


def snap(done: int, total: int, *, files: tuple[int, int] = (0, 3), rate: float = 0.0, elapsed: float = 1.0,
         fetched: int | None = None, rate_limited: int = 0) -> ProgressSnapshot:  # fmt: skip
    return ProgressSnapshot(
        bytes_done=done, bytes_total=total, files_done=files[0], files_total=files[1], bytes_per_second=rate,
        elapsed=elapsed, rate_limited=rate_limited, bytes_fetched=done if fetched is None else fetched,
    )  # fmt: skip


def test_format_bytes_and_duration() -> None:
    assert format_bytes(0) == "0 B"
    assert format_bytes(1023) == "1023 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(3 * (1 << 30)) == "3.0 GiB"
    assert format_bytes(5 * (1 << 50)) == "5.0 PiB"
    assert format_duration(None) == "--:--"
    assert format_duration(float("inf")) == "--:--"
    assert format_duration(7) == "0:07"
    assert format_duration(125) == "2:05"
    assert format_duration(3 * 3600 + 61) == "3:01:01"


def test_snapshot_fraction_eta_and_average() -> None:
    s = snap(25, 100, rate=5.0, elapsed=5.0)
    assert s.fraction == 0.25
    assert s.eta_seconds == 15.0
    assert s.average_rate == 5.0
    assert snap(10, 0).fraction is None and snap(10, 0).eta_seconds is None
    assert snap(0, 0, files=(0, 0)).started is False
    assert snap(5, 100, rate=0).eta_seconds is None


def test_log_lines_are_emitted_per_step_and_interval() -> None:
    out = io.StringIO()
    lines = LogLines("org/m", out, every=10.0, step=0.25)
    lines.update(snap(0, 0, files=(0, 0)))  # totals unknown yet: nothing to say
    assert out.getvalue() == ""
    lines.update(snap(0, 100, elapsed=0.1))
    lines.update(snap(10, 100, elapsed=0.2))  # same 25 % step, not yet 10 s later
    lines.update(snap(30, 100, elapsed=0.3))  # next step
    lines.update(snap(31, 100, elapsed=11.0))  # interval elapsed
    lines.finish(snap(100, 100, files=(3, 3), elapsed=12.0), ok=True)
    text = out.getvalue().splitlines()
    assert len(text) == 4
    assert text[0].startswith("org/m: 0% 0 B / 100 B")
    assert text[1].startswith("org/m: 30% 30 B / 100 B")
    assert text[2].startswith("org/m: 31%")
    assert text[3] == "org/m: done, 100% 100 B / 100 B, 3/3 files, 8 B/s average"


def test_log_lines_report_rate_limiting_and_failure() -> None:
    out = io.StringIO()
    lines = LogLines("x", out)
    lines.update(snap(1, 10, rate_limited=4))
    lines.finish(snap(5, 10, elapsed=2.0), ok=False)
    first, last = out.getvalue().splitlines()
    assert "4 rate-limited" in first and "ETA" in first
    assert last.startswith("x: stopped at 50%")


def test_terminal_bar_redraws_one_line() -> None:
    out = io.StringIO()
    bar = TerminalBar("org/m", out, width=100)
    bar.update(snap(50, 200, rate=10.0))
    bar.update(snap(100, 200, rate=10.0))
    bar.finish(snap(200, 200, files=(3, 3), elapsed=4.0), ok=True)
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1
    frames = text.strip("\n").split("\r")[1:]
    assert " 25%" in frames[0] and "ETA 0:15" in frames[0]
    assert " 50%" in frames[1] and "[" + "#" * 10 in frames[1]
    assert "100%" in frames[2] and "50 B/s average" in frames[2] and "ETA" not in frames[2]
    assert all(len(f) < 100 for f in frames)


def test_renderer_choice() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(renderer_for(True, "l", Tty()), TerminalBar)
    assert isinstance(renderer_for(True, "l", io.StringIO()), LogLines)
    assert renderer_for(False, "l") is None and renderer_for(None, "l") is None
    seen: list[ProgressSnapshot] = []
    callback = renderer_for(seen.append, "l")
    assert callback is not None
    callback.update(snap(1, 2))
    assert seen == [snap(1, 2)]
    with pytest.raises(TypeError):
        renderer_for(42, "l")  # type: ignore[arg-type]


def test_monitor_polls_counters_until_the_block_ends() -> None:
    counters = types.SimpleNamespace(
        bytes_total=100, bytes_done=0, bytes_fetched=0, files_total=2, files_done=0, bytes_per_second=0.0,
        retries=0, rate_limited=0, rate_limit_wait_seconds=0.0,
    )  # fmt: skip
    seen: list[ProgressSnapshot] = []
    polled = threading.Event()

    class Renderer:
        interval = 0.01

        def update(self, s: ProgressSnapshot) -> None:
            seen.append(s)
            if len(seen) >= 3:
                polled.set()

        def finish(self, s: ProgressSnapshot, ok: bool) -> None:
            seen.append(s)
            self.ok = ok

    renderer = Renderer()
    with ProgressMonitor(counters, renderer):
        counters.bytes_done = counters.bytes_fetched = 60
        assert polled.wait(10)
        counters.bytes_done = counters.bytes_fetched = 100
        counters.files_done = 2
    assert renderer.ok is True
    assert seen[0].bytes_done == 0 and seen[-1].bytes_done == 100 and seen[-1].files_done == 2

    with pytest.raises(RuntimeError):
        with ProgressMonitor(counters, renderer):
            raise RuntimeError("download failed")
    assert renderer.ok is False


def test_an_empty_download_finishes_at_100_percent() -> None:
    out = io.StringIO()
    LogLines("x", out).finish(snap(0, 0, files=(0, 0)), ok=True)
    assert out.getvalue().startswith("x: done, 100% 0 B / ?, 0/0 files")
