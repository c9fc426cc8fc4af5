"""The agent's Prometheus metrics (``Metrics``), kept in the C++ prometheus-cpp registry.

Family names, types and labels follow OME's model agent v0.1.3 so existing dashboards keep working; the
histogram buckets reach hours, and there are per-phase durations, failures by reason, a build-info gauge,
an in-progress gauge and ``process_*`` gauges. ``docs/metrics.md`` lists every family.

Model labels: ``model_type`` is ``BaseModel``, ``ClusterBaseModel`` or ``unknown`` (any other kind);
``namespace`` is ``""`` for a ``ClusterBaseModel`` (pass ``None``); ``name`` is the resource name.
"""

from __future__ import annotations

import contextlib
import errno
import time
from collections.abc import Iterator

from modelagent import _core

__all__ = [
    "CONTENT_TYPE",
    "FAILURE_REASONS",
    "PHASES",
    "Metrics",
    "failure_reason",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Content type of :meth:`Metrics.exposition` (Prometheus text format 0.0.4)."""

FAILURE_REASONS: tuple[str, ...] = tuple(_core.METRICS_FAILURE_REASONS)
"""Values of ``model_agent_download_failures_by_reason_total{reason}``; any other reason is refused."""

PHASES: tuple[str, ...] = tuple(_core.METRICS_PHASES)
"""Values of ``model_agent_phase_duration_seconds{phase}``."""

_DEFAULT_RATE_LIMIT_WAIT = 30.0  # what OME observes when a 429 carried no Retry-After

# Most specific first: the first matching class names the reason.
_REASON_BY_TYPE: tuple[tuple[type[BaseException], str], ...] = (
    (_core.RateLimitedError, "rate_limited"),
    (_core.GatedRepoError, "gated"),
    (_core.UnauthorizedError, "unauthorized"),
    (_core.RepositoryNotFoundError, "not_found"),
    (_core.RevisionNotFoundError, "not_found"),
    (_core.EntryNotFoundError, "not_found"),
    (_core.HttpStatusError, "http_error"),
    (_core.VerificationError, "verification"),
    (_core.DiskSpaceError, "disk_space"),
    (_core.UnsafePathError, "unsafe_path"),
    (_core.CancelledError, "cancelled"),
    (_core.CredentialsError, "credentials"),
    (_core.DownloadError, "download"),
    (_core.InvalidStorageUri, "invalid_storage_uri"),
    (_core.ModelConfigError, "model_config"),
    (_core.SafetensorsError, "model_config"),
)


def failure_reason(error: BaseException) -> str:
    """The ``reason`` label for a failed download that raised ``error`` (one of :data:`FAILURE_REASONS`).

    The core's exception classes map to their own reasons (``RateLimitedError`` → ``rate_limited``,
    ``GatedRepoError`` → ``gated``, ``VerificationError`` → ``verification``, ...), errors of the
    ``kubernetes`` client to ``kubernetes``, ``OSError`` ENOSPC/EDQUOT to ``disk_space``, anything else to
    ``other``.
    """
    for error_type, reason in _REASON_BY_TYPE:
        if isinstance(error, error_type):
            return reason
    if any(cls.__module__.split(".")[0] == "kubernetes" for cls in type(error).__mro__):
        return "kubernetes"
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk_space"
    return "other"


class Metrics:
    """Records the agent's events in the metrics registry; every method is cheap and thread-safe.

    Amounts (seconds, bytes, counts) must be finite and non-negative; a bad amount, phase or reason raises
    ``ValueError`` naming the metric and records nothing.
    """

    def __init__(self, version: str | None = None) -> None:
        """Create an empty registry; ``version`` (default: this package's) labels ``model_agent_build_info``."""
        self._registry = _core.MetricsRegistry(version)

    def download_succeeded(self, kind: str, namespace: str | None, name: str, seconds: float) -> None:
        """A model download finished: count it and observe its duration."""
        self._registry.download_succeeded(kind, namespace, name, seconds)

    def download_failed(self, kind: str, namespace: str | None, name: str, reason: str | BaseException) -> None:
        """A model download failed: count it for the model and under its reason.

        ``reason`` is one of :data:`FAILURE_REASONS` or the exception that ended the download (classified by
        :func:`failure_reason`). A ``RateLimitedError`` also counts a rate-limit hit observing its
        ``retry_after`` (30 s when the server gave none), as OME does.
        """
        if isinstance(reason, BaseException):
            error = reason
            reason = failure_reason(error)
            self._registry.download_failed(kind, namespace, name, reason)
            if isinstance(error, _core.RateLimitedError):
                wait = float(getattr(error, "retry_after", 0.0) or 0.0)
                self._registry.rate_limited(kind, namespace, name, wait if wait > 0 else _DEFAULT_RATE_LIMIT_WAIT)
            return
        self._registry.download_failed(kind, namespace, name, reason)

    def verification(self, kind: str, namespace: str | None, name: str, ok: bool, seconds: float) -> None:
        """A verification pass over a model's files ended (``ok``: every file matched)."""
        self._registry.verification(kind, namespace, name, ok, seconds)

    def md5_failed(self, kind: str, namespace: str | None, name: str) -> None:
        """A verification pass found at least one file whose checksum did not match."""
        self._registry.md5_failed(kind, namespace, name)

    def rate_limited(self, kind: str, namespace: str | None, name: str, wait_seconds: float) -> None:
        """A source answered 429 and asked to wait ``wait_seconds``."""
        self._registry.rate_limited(kind, namespace, name, wait_seconds)

    def bytes_downloaded(self, kind: str, namespace: str | None, name: str, n: int) -> None:
        """``n`` more bytes of this model were fetched."""
        self._registry.bytes_downloaded(kind, namespace, name, n)

    def phase(self, phase: str, seconds: float) -> None:
        """A task spent ``seconds`` in ``phase`` (one of :data:`PHASES`)."""
        self._registry.phase(phase, seconds)

    @contextlib.contextmanager
    def time_phase(self, phase: str) -> Iterator[None]:
        """Time the ``with`` block (monotonic clock) as ``phase``; recorded even when the block raises."""
        if phase not in PHASES:
            self._registry.phase(phase, 0.0)  # raises the registry's ValueError naming the valid phases
        start = time.monotonic()
        try:
            yield
        finally:
            self._registry.phase(phase, max(0.0, time.monotonic() - start))

    def set_in_progress(self, n: int) -> None:
        """Set the number of downloads running now."""
        self._registry.set_in_progress(n)

    def forget_model(self, kind: str, namespace: str | None, name: str) -> None:
        """Drop every series labelled with this model (call when it is deleted); unknown models are ignored."""
        self._registry.forget_model(kind, namespace, name)

    def exposition(self) -> str:
        """Every family in the Prometheus text format 0.0.4 (:data:`CONTENT_TYPE`); releases the GIL."""
        return self._registry.exposition()
