"""pytest plugin (``pytest -p modelagent.testing.plugin``, auto-registered through the entry point).

Fixtures:

* ``hf_env`` - isolates the Hugging Face client environment for one test: ``HF_HOME`` in a temp dir,
  Xet and telemetry disabled, no token or offline/endpoint variables inherited from the caller.
* ``fake_hub`` - a started :class:`~modelagent.testing.hf_hub.FakeHub` for one test, with
  ``HF_ENDPOINT`` pointing at it (implies ``hf_env``).
* ``fake_hub_factory`` - ``make(**FakeHub kwargs) -> FakeHub`` for hubs with non-default options;
  each is started, becomes ``HF_ENDPOINT`` and is stopped after the test.
* ``fake_hub_session`` - one hub shared by the whole session; it does not touch the environment
  (pass ``hub.url`` explicitly) and tests must not rely on its log or faults being empty.
* ``synthetic_model`` - ``make(**write_synthetic_model kwargs) -> SyntheticModel`` writing a model
  directory under the test's tmp_path.
* ``loopback_only`` - makes any socket connection to a non-loopback address fail for the test, so a
  misconfigured client cannot reach the internet.
* ``fake_kube``, ``fake_kube_factory``, ``kube_api_client``, ``kube_config_file`` - the fake Kubernetes
  API server (docs/testing-kubernetes.md).
* ``fake_oci`` - a started :class:`~modelagent.testing.oci_object_storage.FakeObjectStorage` (signature
  checking fake OCI Object Storage); ``OCI_OBJECT_STORAGE_ENDPOINT`` points at it. Needs ``cryptography``.
* ``moto_server``, ``moto_server_factory`` - a ``moto_server`` S3 process on 127.0.0.1 (PyPI
  ``moto[server]``), reset for each test (:class:`~modelagent.testing.s3_server.MotoServer`).
* ``model_agent``, ``model_agent_factory`` - a real ``model-agent run`` process against the fake API
  server and fake hub (or standalone); a failed test gets the agent's log tail in its report.
"""

from __future__ import annotations

import ipaddress
import itertools
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from modelagent.testing.agent_fixtures import model_agent, model_agent_factory, pytest_runtest_makereport  # noqa: F401
from modelagent.testing.hf_hub import FakeHub
from modelagent.testing.kube_fixtures import (  # noqa: F401  (fixtures re-exported to plugin users)
    fake_kube,
    fake_kube_factory,
    kube_api_client,
    kube_config_file,
)
from modelagent.testing.model_factory import SyntheticModel, write_synthetic_model
from modelagent.testing.s3_server import moto_server, moto_server_factory  # noqa: F401

_HF_VARS_TO_CLEAR = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_TOKEN_PATH",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_ENDPOINT",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_XET_CACHE",
    "HF_HUB_ENABLE_HF_TRANSFER",
)


@pytest.fixture
def hf_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Isolate Hugging Face environment variables; returns the temporary HF_HOME."""
    home = tmp_path_factory.mktemp("hf-home")
    for name in _HF_VARS_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    return home


@pytest.fixture
def fake_hub_factory(hf_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., FakeHub]]:
    """Factory of started fake hubs; the last one created is HF_ENDPOINT. All stop after the test."""
    hubs: list[FakeHub] = []

    def make(**kwargs: Any) -> FakeHub:
        hub = FakeHub(**kwargs).start()
        hubs.append(hub)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        return hub

    try:
        yield make
    finally:
        for hub in hubs:
            hub.stop()
    errors = [e for hub in hubs for e in hub.internal_errors]
    if errors:
        pytest.fail("fake hub raised while handling requests:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture
def fake_hub(fake_hub_factory: Callable[..., FakeHub]) -> FakeHub:
    """A fake Hugging Face Hub (default options) for this test; HF_ENDPOINT points at it."""
    return fake_hub_factory()


@pytest.fixture(scope="session")
def fake_hub_session() -> Iterator[FakeHub]:
    """A fake hub shared by the session (no environment changes: use ``hub.url`` explicitly)."""
    with FakeHub() as hub:
        yield hub


@pytest.fixture
def synthetic_model(tmp_path: Path) -> Callable[..., SyntheticModel]:
    """Factory writing a synthetic model directory (see ``write_synthetic_model``) under tmp_path."""
    counter = itertools.count()

    def make(**kwargs: Any) -> SyntheticModel:
        root = kwargs.pop("root", None) or tmp_path / f"synthetic-model-{next(counter)}"
        return write_synthetic_model(root, **kwargs)

    return make


def _is_loopback(address: Any) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths and the like
        return True
    try:
        return ipaddress.ip_address(address[0]).is_loopback
    except ValueError:
        return address[0] == "localhost"


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any connect() to a non-loopback address during the test (raises ConnectionRefusedError)."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guard(address: Any) -> None:
        if not _is_loopback(address):
            raise ConnectionRefusedError(f"loopback_only: test tried to connect to {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        guard(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        guard(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


@pytest.fixture
def fake_oci(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A started fake OCI Object Storage for one test (imported lazily: it needs ``cryptography``)."""
    from modelagent.testing.oci_object_storage import _fake_oci

    yield from _fake_oci(monkeypatch)
