"""Shared paths for the Python tests: the repository checkout and the shared test fixtures."""

from __future__ import annotations

import os
import signal
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
