"""The public package exports exactly what it imports, and every export is usable."""

from __future__ import annotations

import __future__
import types

import modelagent


def test_all_lists_every_public_name_and_only_existing_ones() -> None:
    public = {
        name
        for name, value in vars(modelagent).items()
        if not name.startswith("_") and not isinstance(value, (types.ModuleType, __future__._Feature))
    }
    public.add("__version__")
    assert set(modelagent.__all__) == public
    for name in modelagent.__all__:
        assert getattr(modelagent, name) is not None


def test_errors_share_one_base() -> None:
    for name in modelagent.__all__:
        obj = getattr(modelagent, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, modelagent.ModelAgentError), name


def test_agent_package_exports_every_name_including_the_lazy_ones() -> None:
    import modelagent.agent as agent

    lazy = set(agent._LAZY)
    assert lazy <= set(agent.__all__)
    for name in agent.__all__:
        value = getattr(agent, name)
        assert value is not None
        if name in lazy:
            assert value.__module__ == agent._LAZY[name], name
    assert len(agent.__all__) == len(set(agent.__all__))
