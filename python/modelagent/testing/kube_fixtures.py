"""pytest fixtures for the fake Kubernetes API server (registered by ``modelagent.testing.plugin``).

* ``fake_kube``: a running :class:`~modelagent.testing.kube_api.FakeKubeAPI` (one per test),
  with the ``ome`` namespace created besides the defaults.
* ``fake_kube_factory``: call it with FakeKubeAPI keyword arguments to start more servers
  (small ``history_size``, short ``bookmark_interval``, ``tokens``...); all stop after the test.
* ``kube_api_client``: a ``kubernetes.client.ApiClient`` for ``fake_kube``, closed afterwards.
* ``kube_config_file``: a kubeconfig file for ``fake_kube`` (for code that loads kubeconfigs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from modelagent.testing.kube_api import FakeKubeAPI


@pytest.fixture
def fake_kube_factory() -> Iterator[Callable[..., FakeKubeAPI]]:
    """Start fake API servers with custom options; every one is stopped at teardown."""
    servers: list[FakeKubeAPI] = []

    def make(**options: Any) -> FakeKubeAPI:
        server = FakeKubeAPI(**options).start()
        servers.append(server)
        return server

    yield make
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def fake_kube(fake_kube_factory: Callable[..., FakeKubeAPI]) -> FakeKubeAPI:
    """A running fake API server with the namespaces default, kube-system, kube-public, ome."""
    server = fake_kube_factory()
    server.add_namespace("ome")
    return server


@pytest.fixture
def kube_api_client(fake_kube: FakeKubeAPI) -> Iterator[Any]:
    """``kubernetes.client.ApiClient`` talking to ``fake_kube``."""
    client = fake_kube.api_client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def kube_config_file(fake_kube: FakeKubeAPI, tmp_path: Path) -> Path:
    """Path of a kubeconfig that points at ``fake_kube``."""
    return fake_kube.write_kubeconfig(tmp_path / "kubeconfig")
