"""Health checks behind ``/healthz``, ``/livez`` and ``/readyz``.

A check has a ``name`` and a ``check()`` method returning ``None`` when healthy or a sentence saying what is
wrong. ``ModelAgentHealthCheck`` is OME's ``model-agent-health`` check on the models root;
``CallbackCheck`` adapts a callable (a readiness or liveness callback); ``LoopHeartbeat`` is a liveness
callback for a control loop that reports in periodically.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = [
    "CallbackCheck",
    "CheckCallback",
    "HealthCheck",
    "LoopHeartbeat",
    "ModelAgentHealthCheck",
]

CheckCallback = Callable[[], bool | str | None]
"""A callback check: ``True`` or ``None`` means healthy; ``False`` or a non-empty reason means failing."""


class HealthCheck(Protocol):
    """One named check served under ``/healthz/<name>``, ``/livez/<name>`` or ``/readyz/<name>``."""

    @property
    def name(self) -> str:
        """The check's name (a URL path segment)."""
        ...

    def check(self) -> str | None:
        """``None`` when healthy, else the reason."""
        ...


class ModelAgentHealthCheck:
    """OME's ``model-agent-health`` check: the models root exists, is a directory and is writable.

    Writability is ``access(W_OK)`` as in OME: it honours read-only mounts for every user, but root passes it
    on a directory whose permission bits deny writing (root may write there). ``access`` can be replaced, e.g.
    in tests, by any function with the signature of :func:`os.access`.
    """

    name = "model-agent-health"

    def __init__(
        self, models_root: str | os.PathLike[str], access: Callable[[str, int], bool] = os.access
    ) -> None:
        """Check ``models_root`` with ``access`` deciding writability."""
        self.models_root = os.fspath(models_root)
        self._access = access

    def check(self) -> str | None:
        """``None`` when healthy, else a reason such as ``stat /models: no such file or directory``."""
        path = self.models_root
        try:
            mode = os.stat(path).st_mode
        except OSError as e:
            detail = (e.strerror or str(e)).lower()
            return f"stat {path}: {detail}"
        except ValueError as e:  # e.g. an embedded NUL byte
            return f"stat {path!r}: {e}"
        if not stat.S_ISDIR(mode):
            return f"{path} is not a directory"
        if not self._access(path, os.W_OK):
            return f"{path} is not writable"
        return None


class CallbackCheck:
    """A check whose verdict comes from a callback (see :data:`CheckCallback`).

    A callback that raises fails the check with the exception as the reason; it never breaks the server.
    """

    def __init__(self, name: str, callback: CheckCallback) -> None:
        """Name the check and keep the callback."""
        if not name or "/" in name:
            raise ValueError(f"health check name must be a non-empty path segment, got {name!r}")
        self._name = name
        self._callback = callback

    @property
    def name(self) -> str:
        """The check's name."""
        return self._name

    def check(self) -> str | None:
        """Run the callback and translate its answer."""
        try:
            verdict = self._callback()
        except Exception as e:  # noqa: BLE001 - a failing callback is a failing check
            return f"{type(e).__name__}: {e}"
        if verdict is None or verdict is True:
            return None
        if verdict is False:
            return f"{self._name} check failed"
        reason = str(verdict)
        return reason if reason else f"{self._name} check failed"


class LoopHeartbeat:
    """A liveness callback: the loop calls :meth:`beat` each turn; a beat older than ``max_age`` is a wedge.

    ``clock`` is a monotonic clock in seconds (``time.monotonic`` by default; tests may pass their own). The
    heartbeat counts as given at construction, so the loop has ``max_age`` seconds to start.
    """

    def __init__(self, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        """Allow ``max_age`` seconds between beats."""
        if not max_age > 0:
            raise ValueError(f"LoopHeartbeat max_age must be positive, got {max_age!r}")
        self.max_age = float(max_age)
        self._clock = clock
        self._lock = threading.Lock()
        self._last = clock()

    def beat(self) -> None:
        """Report that the loop is making progress."""
        now = self._clock()
        with self._lock:
            self._last = now

    def age(self) -> float:
        """Seconds since the last beat."""
        with self._lock:
            last = self._last
        return max(0.0, self._clock() - last)

    def __call__(self) -> str | None:
        """``None`` while beats are recent, else the reason (usable as a ``liveness`` callback)."""
        age = self.age()
        if age > self.max_age:
            return f"control loop last reported {age:.0f} s ago (limit {self.max_age:.0f} s)"
        return None
