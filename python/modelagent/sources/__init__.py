"""Sources: which code turns a storage URI of each scheme into a download plan.

Built-in sources (``hf``, ``oci``, ``s3``) are imported only when their scheme is first used, so a broken
or missing one never affects the others. A Python package adds a scheme either at run time with
:func:`register_source` or declaratively with an entry point in the group ``modelagent.sources``
(name = scheme, value = a :class:`Source` class or instance, a factory returning one, or a plain
``plan(request) -> SourcePlan`` function)::

    [project.entry-points."modelagent.sources"]
    "mirror+https" = "my_package.source:MirrorSource"

Precedence: :func:`register_source` > built-ins > entry points.
"""

from __future__ import annotations

import importlib
import inspect
import re
import threading
from collections.abc import Callable
from importlib import metadata
from typing import Any, Union

from modelagent import _core
from modelagent.sources.base import Source, SourcePlan, SourceRequest, select_paths

__all__ = [
    "ENTRY_POINT_GROUP",
    "Source",
    "SourcePlan",
    "SourceRequest",
    "get_source",
    "has_source",
    "register_source",
    "registered_schemes",
    "select_paths",
    "unregister_source",
]

ENTRY_POINT_GROUP = "modelagent.sources"
"""The entry-point group a package declares its sources in (entry-point name = URI scheme)."""

SourceLike = Union[Source, type, Callable[..., Any]]
"""What :func:`register_source` accepts: a :class:`Source` instance or class, a factory returning one, or
a plain ``plan(request) -> SourcePlan`` function."""

_BUILTINS: dict[str, str] = {
    "hf": "modelagent.sources.huggingface:HuggingFaceSource",
    "oci": "modelagent.sources.oci:OciSource",
    "s3": "modelagent.sources.s3:S3Source",
}
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*\Z")

_lock = threading.RLock()
_registered: dict[str, SourceLike] = {}
_loaded: dict[str, Source] = {}


class _FunctionSource:
    """Adapts a plain ``plan(request)`` function to the :class:`Source` protocol."""

    def __init__(self, scheme: str, fn: Callable[[SourceRequest], SourcePlan]) -> None:
        self.scheme = scheme
        self._fn = fn

    def plan(self, request: SourceRequest) -> SourcePlan:
        return self._fn(request)

    def explain_failure(self, error: BaseException, request: SourceRequest, plan: SourcePlan) -> None:
        return None

    def __repr__(self) -> str:
        return f"<source {self.scheme!r}: {getattr(self._fn, '__qualname__', self._fn)!r}>"


def _check_scheme(scheme: Any) -> str:
    if not isinstance(scheme, str) or not _SCHEME.match(scheme):
        raise ValueError(
            f"invalid source scheme {scheme!r}: expected a lower-case URI scheme without '://' "
            "(letters, digits, '+', '-', '.'; starting with a letter), e.g. 'mirror+https'"
        )
    return scheme


def _required_positional(fn: Callable[..., Any]) -> int | None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in signature.parameters.values() if p.kind in kinds and p.default is inspect.Parameter.empty)


def _instantiate(scheme: str, value: Any, origin: str, depth: int = 0) -> Source:
    """Turn what was registered (instance, class, factory or plan function) into a usable source."""
    if depth > 3:
        raise TypeError(f"source for '{scheme}' ({origin}): factories nest too deeply")
    if isinstance(value, type):
        return _instantiate(scheme, value(), origin, depth + 1)
    if callable(getattr(value, "plan", None)):
        return value  # type: ignore[no-any-return]
    if callable(value):
        required = _required_positional(value)
        if required == 0:
            return _instantiate(scheme, value(), origin, depth + 1)
        if required == 1 or required is None:
            return _FunctionSource(scheme, value)
        raise TypeError(
            f"source for '{scheme}' ({origin}): a function must take one argument (the SourceRequest) or "
            f"none (a factory); {getattr(value, '__qualname__', value)!r} takes {required}"
        )
    raise TypeError(
        f"source for '{scheme}' ({origin}) is a {type(value).__name__}: expected a Source (an object with "
        "plan(request)), a Source class, a factory, or a plan(request) function"
    )


def register_source(scheme: str, source: SourceLike, *, replace: bool = False) -> None:
    """Make ``scheme://`` URIs downloadable with ``source``.

    Args:
        scheme: the URI scheme, lower case, without ``://`` (e.g. ``"mirror+https"``).
        source: a :class:`Source` instance or class, a zero-argument factory returning one, or a plain
            function ``plan(request: SourceRequest) -> SourcePlan``. Classes and factories are called on
            first use.
        replace: allow replacing a scheme that is already registered or built in.

    Raises:
        ValueError: malformed scheme, or the scheme is taken and ``replace`` is False.
        TypeError: ``source`` is none of the accepted kinds.
    """
    _check_scheme(scheme)
    if not isinstance(source, type) and not callable(getattr(source, "plan", None)):
        if not callable(source):
            _instantiate(scheme, source, "register_source")  # raises the TypeError describing what is accepted
        required = _required_positional(source)
        if required is not None and required > 1:
            _instantiate(scheme, source, "register_source")  # raises the TypeError naming the arity
    with _lock:
        if not replace and (scheme in _registered or scheme in _BUILTINS):
            what = "built in" if scheme not in _registered else "already registered"
            raise ValueError(f"source scheme '{scheme}' is {what}; pass replace=True to replace it")
        _registered[scheme] = source
        _loaded.pop(scheme, None)


def unregister_source(scheme: str) -> bool:
    """Remove a scheme added with :func:`register_source` (a built-in or entry point it replaced comes
    back) and forget the loaded instance of ``scheme``; True when a registration was removed."""
    with _lock:
        removed = _registered.pop(scheme, None) is not None
        _loaded.pop(scheme, None)
        return removed


def _entry_points() -> dict[str, metadata.EntryPoint]:
    found: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)  # first on sys.path wins, as for imports
    return found


def registered_schemes() -> list[str]:
    """Every scheme a source is available for: registered, built-in and declared by entry points."""
    with _lock:
        names = set(_registered) | set(_BUILTINS)
    names |= {name for name in _entry_points() if _SCHEME.match(name)}
    return sorted(names)


def has_source(scheme: str) -> bool:
    """True when a source is available for ``scheme`` (without loading it)."""
    with _lock:
        if scheme in _registered or scheme in _BUILTINS:
            return True
    return scheme in _entry_points()


def _available() -> str:
    return ", ".join(registered_schemes())


def get_source(scheme: str) -> Source:
    """The source for ``scheme``, importing or instantiating it on first use.

    Raises:
        DownloadError: no source is registered for the scheme (the message lists those that are), or the
            source cannot be loaded (the message names the module or entry point and why).
    """
    with _lock:
        cached = _loaded.get(scheme)
        if cached is not None:
            return cached
        explicit = _registered.get(scheme)
    if explicit is not None:
        value, origin = explicit, "register_source"
    elif scheme in _BUILTINS:
        origin = _BUILTINS[scheme]
        module_name, _, attr = origin.partition(":")
        try:
            value = getattr(importlib.import_module(module_name), attr)
        except Exception as e:  # noqa: BLE001 - any import failure is this one source's problem only
            raise _core.DownloadError(
                f"the built-in {scheme}:// source is unavailable: cannot load {origin}: {type(e).__name__}: {e}"
            ) from e
    else:
        ep = _entry_points().get(scheme)
        if ep is None:
            raise _core.DownloadError(f"no source for the URI scheme '{scheme}://' (available: {_available()})")
        origin = f"entry point {ep.value!r} in group {ENTRY_POINT_GROUP}"
        try:
            value = ep.load()
        except Exception as e:  # noqa: BLE001 - a broken plug-in must not hide which one it is
            raise _core.DownloadError(
                f"cannot load the source for '{scheme}://' from {origin}: {type(e).__name__}: {e}"
            ) from e
    try:
        source = _instantiate(scheme, value, origin)
    except _core.ModelAgentError:
        raise
    except Exception as e:  # noqa: BLE001 - a factory failing is reported with where it came from
        raise _core.DownloadError(
            f"cannot set up the source for '{scheme}://' ({origin}): {type(e).__name__}: {e}"
        ) from e
    with _lock:
        if _registered.get(scheme) is explicit:
            _loaded[scheme] = source
    return source
