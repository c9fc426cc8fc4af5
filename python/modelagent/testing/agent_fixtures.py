"""pytest fixtures that run a real agent (registered by ``modelagent.testing.plugin``).

* ``model_agent_factory``: ``make(**options) -> AgentProcess`` starts ``model-agent run`` subprocesses
  (options of :class:`~modelagent.testing.agent_process.AgentProcess`, plus ``wait_ready`` and
  ``ready_timeout``); ``models_root`` defaults to a fresh temporary folder. Every agent is stopped
  (SIGTERM, then SIGKILL after 10 s) at teardown.
* ``model_agent``: an agent in Kubernetes mode, ready, against ``fake_kube`` (with the Node
  :data:`MODEL_AGENT_NODE` created) and ``fake_hub`` (its ``HF_ENDPOINT``).

When a test using them fails, the report carries a section with each agent's log tail.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from modelagent.testing.agent_process import AgentProcess
from modelagent.testing.hf_hub import FakeHub
from modelagent.testing.kube_api import FakeKubeAPI

MODEL_AGENT_NODE = "agent-node"
"""Name of the Node the ``model_agent`` fixture creates and runs the agent for."""

REPORT_LOG_LINES = 200
"""Log lines of each agent attached to a failed test's report."""

_AGENTS = pytest.StashKey[list[AgentProcess]]()


@pytest.fixture
def model_agent_factory(request: pytest.FixtureRequest,
                        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., AgentProcess]]:
    """Start real agents with :class:`AgentProcess` options; all are stopped after the test."""
    agents = request.node.stash.setdefault(_AGENTS, [])
    counter = itertools.count(1)
    owned: list[AgentProcess] = []

    def make(*, wait_ready: bool = True, ready_timeout: float = 60.0, **options: Any) -> AgentProcess:
        number = next(counter)
        if options.get("models_root") is None:
            options["models_root"] = tmp_path_factory.mktemp("agent-models")
        if options.get("hf_endpoint") is None and os.environ.get("HF_ENDPOINT"):
            options["hf_endpoint"] = os.environ["HF_ENDPOINT"]
        options.setdefault("log_path", tmp_path_factory.mktemp("agent-logs") / f"agent-{number}.log")
        agent = AgentProcess(**options)
        agent.start()
        agents.append(agent)
        owned.append(agent)
        if wait_ready:
            agent.wait_ready(ready_timeout)
        return agent

    try:
        yield make
    finally:
        for agent in reversed(owned):
            agent.stop()


@pytest.fixture
def model_agent(model_agent_factory: Callable[..., AgentProcess], fake_kube: FakeKubeAPI, fake_hub: FakeHub,
                kube_config_file: Path) -> AgentProcess:
    """A ready agent in Kubernetes mode for Node ``agent-node`` of ``fake_kube``, downloading from ``fake_hub``.

    Create BaseModels in ``fake_kube`` and repos in ``fake_hub``; read results with
    ``model_agent.wait_for_status(key, "Ready")``. The agent reports in ConfigMap ``ome/agent-node``.
    """
    fake_kube.add_node(MODEL_AGENT_NODE, labels={"kubernetes.io/hostname": MODEL_AGENT_NODE})
    return model_agent_factory(kubeconfig=kube_config_file, node_name=MODEL_AGENT_NODE, hf_endpoint=fake_hub.url)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Attach each agent's log tail to the report of a failed phase of a test that started agents."""
    outcome = yield
    report = outcome.get_result()
    agents = item.stash.get(_AGENTS, None)
    if not agents or not report.failed:
        return
    for number, agent in enumerate(agents, 1):
        state = "running" if agent.running else f"exit status {agent.returncode}"
        where = f", full log {agent.log_path}" if agent.log_path is not None else ""
        report.sections.append((f"model-agent {number} log ({state}{where})", agent.log_tail(REPORT_LOG_LINES)))


__all__ = ["MODEL_AGENT_NODE", "model_agent", "model_agent_factory", "pytest_runtest_makereport"]
