"""``moto_server`` (PyPI ``moto[server]``) as a local S3/STS endpoint for tests.

:class:`MotoServer` runs ``moto_server`` as a subprocess on 127.0.0.1 on a free port, waits until it
answers, resets its state between tests (``POST /moto-api/reset``) and kills it at the end. The pytest
fixtures ``moto_server`` (session-wide process, state reset for each test) and ``moto_server_factory``
(extra processes with their own environment, e.g. ``INITIAL_NO_AUTH_ACTION_COUNT`` to make moto check
signatures) use it; import them into a test module or a conftest::

    from modelagent.testing.s3_server import moto_server  # noqa: F401  (pytest fixture)

    def test_listing(moto_server):
        s3 = moto_server.boto3_client("s3")
        s3.create_bucket(Bucket="models")
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

__all__ = ["MotoServer", "moto_server", "moto_server_factory"]

ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _moto_command() -> list[str]:
    """``moto_server`` beside this interpreter (a venv's bin), else on PATH, else ``python -m``."""
    beside = Path(sys.executable).with_name("moto_server")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("moto_server")
    if found:
        return [found]
    return [sys.executable, "-c", "from moto.server import main; main()"]


class MotoServer:
    """A ``moto_server`` subprocess on 127.0.0.1.

    ``env`` adds environment variables for the server process (e.g. ``INITIAL_NO_AUTH_ACTION_COUNT``,
    ``S3_UPLOAD_PART_MIN_SIZE``). ``start()`` raises RuntimeError with the server's output when it does
    not answer within ``startup_timeout`` seconds.

    The port is picked free before the process binds it, so something else may take it in between; the
    server then fails to bind and ``start()`` tries again on another port (``bind_attempts`` in all).
    """

    bind_attempts = 5

    def __init__(self, env: Mapping[str, str] | None = None, startup_timeout: float = 60.0) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._env = dict(env or {})
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()

    def start(self) -> MotoServer:
        for attempt in range(1, self.bind_attempts + 1):
            if self._start_once(last_attempt=attempt == self.bind_attempts):
                return self
            # The port was taken between choosing it and the server binding it: choose again.
            self.port = _free_port()
            self.endpoint = f"http://127.0.0.1:{self.port}"
        raise AssertionError("unreachable")

    def _start_once(self, *, last_attempt: bool) -> bool:
        """Start the process and wait until it answers: True; False if it could not bind its port."""
        self._log.seek(0)
        self._log.truncate()
        env = dict(os.environ)
        # Neither the server nor its boto3 clients may pick up real AWS settings from the environment.
        for name in list(env):
            if name.startswith("AWS_"):
                del env[name]
        env.update(self._env)
        self._process = subprocess.Popen(
            [*_moto_command(), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                output = self.output()
                self._process = None
                if "Address already in use" in output and not last_attempt:
                    return False
                raise RuntimeError(f"moto_server exited:\n{output}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json", timeout=5):
                    return True
            except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto_server did not answer on {self.endpoint} within {self._startup_timeout} s:\n"
                           f"{self.output()}")

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        self._process = None

    def reset(self) -> None:
        """Forget every bucket, object, IAM user... (``POST /moto-api/reset``)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=60):
            pass

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def boto3_client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client of this server (path-style, region us-east-1, the test keys unless given)."""
        import boto3
        from botocore.config import Config

        kwargs.setdefault("aws_access_key_id", ACCESS_KEY)
        kwargs.setdefault("aws_secret_access_key", SECRET_KEY)
        kwargs.setdefault("region_name", "us-east-1")
        kwargs.setdefault("config", Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))
        return boto3.client(service, endpoint_url=self.endpoint, **kwargs)

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_session_server: MotoServer | None = None


@pytest.fixture
def moto_server(request: pytest.FixtureRequest) -> Iterator[MotoServer]:
    """A running ``moto_server`` with empty state for this test (one process per pytest session,
    stopped when the session ends)."""
    global _session_server
    if _session_server is None:
        server = MotoServer().start()
        request.config.add_cleanup(server.stop)
        _session_server = server

        def forget() -> None:
            global _session_server
            _session_server = None

        request.config.add_cleanup(forget)
    _session_server.reset()
    yield _session_server


@pytest.fixture
def moto_server_factory() -> Iterator[Callable[..., MotoServer]]:
    """Starts extra ``moto_server`` processes (``factory(env={...})``); all are stopped after the test."""
    servers: list[MotoServer] = []

    def start(env: Mapping[str, str] | None = None) -> MotoServer:
        server = MotoServer(env).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
