"""Shared paths for the Python tests (the repository checkout, the shared test fixtures) and a refused port."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

# A shell starting the tests in the background (`pytest ... &` in a script) ignores SIGINT for them, and the
# command-line processes they start inherit that; the Ctrl-C tests need Python's default handling.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

#: The repository root (this file is tests/python/conftest.py).
REPO_ROOT = Path(__file__).resolve().parents[2]

#: Shared read-only fixtures; CMake's MODELAGENT_FIXTURES_DIR points at the same place.
FIXTURES_DIR = Path(os.environ.get("MODELAGENT_FIXTURES_DIR", REPO_ROOT.parent / "shared" / "fixtures"))

#: Real config.json files of published models (see SOURCES.md there).
MODEL_CONFIGS_DIR = FIXTURES_DIR / "model-configs"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository checkout."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def model_configs_dir() -> Path:
    """The shared model-config fixtures directory; a missing directory fails the test."""
    assert MODEL_CONFIGS_DIR.is_dir(), f"shared fixtures missing: {MODEL_CONFIGS_DIR}"
    return MODEL_CONFIGS_DIR


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A 127.0.0.1 port where connections are refused for the whole test: kept bound but never listening, so
    no other server can take it meanwhile (a port merely freed may be handed to the next server started)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
