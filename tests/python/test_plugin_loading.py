"""The pytest plugin loads from its entry point, and naming it with -p as well is harmless."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

TEST_USING_A_FIXTURE = """
def test_hub(fake_hub):
    assert fake_hub.url.startswith("http://127.0.0.1:")
"""


@pytest.mark.parametrize("args", [[], ["-p", "modelagent.testing.plugin"]], ids=["entry-point", "entry-point+-p"])
def test_plugin_loads_once(pytester: pytest.Pytester, args: list[str]) -> None:
    pytester.makepyfile(TEST_USING_A_FIXTURE)
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=1)


def test_plugin_by_module_name_without_autoload(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(TEST_USING_A_FIXTURE)
    result = pytester.runpytest_subprocess("-p", "modelagent.testing.plugin")
    result.assert_outcomes(passed=1)


def test_plugin_can_be_switched_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TEST_USING_A_FIXTURE)
    result = pytester.runpytest_subprocess("-p", "no:modelagent.testing.plugin")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'fake_hub' not found*"])
