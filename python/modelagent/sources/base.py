"""The source interface: how a storage URI becomes a plan of files for the download engine.

A *source* owns one URI scheme (``hf``, ``oci``, ``s3``, or one a plug-in registers). Given a
:class:`SourceRequest` it lists what is at the URI and returns a :class:`SourcePlan`: one entry per file
with its URL, request headers (or a :class:`~modelagent.RequestSigner` that signs each request), size
and expected digest. The C++ engine then fetches, verifies and places every file with the same
parallelism, resume and verification whatever the source. Built-in sources call into the C++ core;
plug-ins are plain Python (see :func:`modelagent.sources.register_source`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from modelagent._core import CancelToken, DownloadOptions, DownloadProgress, PlanEntry

__all__ = ["RESERVED_DIRECTORY", "Source", "SourcePlan", "SourceRequest", "select_paths"]

RESERVED_DIRECTORY = ".modelagent"
"""Directory under the destination that belongs to modelagent (the download record); never a planned path."""


@dataclasses.dataclass(frozen=True)
class SourceRequest:
    """Everything a source may use to plan one download."""

    uri: str
    """The storage URI, e.g. ``oci://n/ns/b/bucket/o/models/llama``."""
    include: Sequence[str] = ()
    """Glob patterns of destination paths to keep (``*`` stays in a directory, ``**`` crosses); empty = all."""
    exclude: Sequence[str] = ()
    """Glob patterns of destination paths to skip; wins over ``include``."""
    all_files: bool = False
    """Disable the source's default exclusions (e.g. duplicate weight formats on Hugging Face)."""
    token: str | None = None
    """A bearer token given for this model (Hugging Face); wins over process-wide ones."""
    parameters: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """``spec.storage.parameters`` of the model, or CLI/API options: ``auth``, ``region``, ``endpoint``, ...
    Unknown keys are ignored by sources that do not use them."""
    credentials: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Decoded data of the model's Secret (``spec.storage.key``), e.g. ``aws_access_key_id``; empty if none."""
    options: DownloadOptions | None = None
    """Engine options; TLS settings, timeouts and the user agent also apply to the source's API calls."""
    cancel: CancelToken | None = None
    """Cancels listing calls too; sources pass it to every blocking core call."""
    progress: DownloadProgress | None = None
    """The download's counters (a :class:`~modelagent.DownloadProgress`); the engine later adds to the same
    object. Built-in sources pass it to their core API calls, which add every retried request to
    ``retries`` and every retried 429 to ``rate_limited`` and its wait to ``rate_limit_wait_seconds``, so
    rate limits met while listing show in progress output and the agent's metrics. Optional: a source that
    ignores it still works, its API calls just go uncounted."""
    previous: Mapping[str, Any] | None = None
    """``state`` of the last complete download into the same destination by the same source (from the
    download record; the URI may differ, e.g. a branch then its commit), so a source can skip a full
    listing when it can prove nothing changed. The source must check that the state applies."""


@dataclasses.dataclass
class SourcePlan:
    """A source's answer: the files to fetch and what identifies this snapshot."""

    files: list[PlanEntry]
    """Engine plan entries (``path``, ``url``, ``size``, ``digest``, ``headers``, ``signer``)."""
    snapshot: str
    """Identity of the content: the Hugging Face commit; for object stores a digest over names, sizes
    and ETags. Equal snapshots mean equal content."""
    label: str
    """Short name for progress output and logs, e.g. ``org/name@1a2b3c4d`` or ``bucket/prefix``."""
    excluded: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    """Listed files not planned, with the reason (``excluded by pattern '*.bin'``, ``folder marker``...)."""
    unverifiable: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    """Planned files without a content digest, with the reason; the engine checks only their size."""
    state: dict[str, Any] = dataclasses.field(default_factory=dict)
    """JSON-serialisable data the source wants back as ``SourceRequest.previous`` next time."""
    details: dict[str, str] = dataclasses.field(default_factory=dict)
    """Source-specific facts for the result (``repo_id``, ``revision``, ``commit``, ``namespace``...)."""
    listed: bool = True
    """False when the file list came from ``SourceRequest.previous`` instead of a fresh listing."""


def select_paths(
    paths: Sequence[str], include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> tuple[list[str], list[tuple[str, str]]]:
    """Apply ``include``/``exclude`` globs (as :class:`SourceRequest` carries them) to destination paths.

    Returns the kept paths (in order) and the dropped ones with the reason (``not included``,
    ``excluded by pattern '...'``, ``reserved path``). Raises ValueError naming a malformed pattern.
    """
    from modelagent._core import glob_match

    for pattern in (*include, *exclude):
        glob_match(pattern, "")
    kept: list[str] = []
    dropped: list[tuple[str, str]] = []
    for path in paths:
        if path == RESERVED_DIRECTORY or path.startswith(RESERVED_DIRECTORY + "/"):
            dropped.append((path, "reserved path"))
        elif include and not any(glob_match(p, path) for p in include):
            dropped.append((path, "not included"))
        else:
            hit = next((p for p in exclude if glob_match(p, path)), None)
            if hit is not None:
                dropped.append((path, f"excluded by pattern '{hit}'"))
            else:
                kept.append(path)
    return kept, dropped


@runtime_checkable
class Source(Protocol):
    """A URI scheme's planner."""

    scheme: str
    """Without ``://``, lower case."""

    def plan(self, request: SourceRequest) -> SourcePlan:
        """List the files at ``request.uri`` and plan them. Raises a
        :class:`~modelagent.DownloadError` subclass naming the URI/bucket/object at fault."""
        ...

    def explain_failure(self, error: BaseException, request: SourceRequest, plan: SourcePlan) -> None:
        """Called when the engine failed; may raise a more specific error (e.g. a gated repository)
        instead of ``error``. Returning means ``error`` stands."""
        ...
