"""``model-agent download`` and ``model-agent verify`` as a user runs them (subprocesses, real exit codes)."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelagent.testing.hf_hub import FakeHub

MiB = 1 << 20
FILES = {
    "config.json": b'{"model_type": "llama"}',
    "model.safetensors": bytes(range(256)) * (6 * 4096),  # 6 MiB, served by the CDN
    "pytorch_model.bin": b"duplicate",
    "tokenizer/vocab.txt": b"a\nb\n",
}
DOWNLOADED = ["config.json", "model.safetensors", "tokenizer/vocab.txt"]


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelagent", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:
    fake_hub.add_repo("org/model", files=FILES)
    return fake_hub


def test_download_succeeds_with_summary_and_log_lines(hub: FakeHub, tmp_path: Path) -> None:
    dest = tmp_path / "model"
    run = cli("download", "hf://org/model", "--dest", str(dest))
    assert run.returncode == 0, run.stderr
    sha = hub.commit_sha("org/model")
    assert f"org/model@{sha[:12]}" in run.stdout
    assert "3 files" in run.stdout and "skipped 1 listed files" in run.stdout
    for path in DOWNLOADED:
        assert (dest / path).read_bytes() == FILES[path]
    # Not a terminal: plain progress lines, no carriage returns.
    assert "\r" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith(f"org/model@{sha[:8]}: ")]
    assert lines and "done, 100%" in lines[-1] and "3/3 files" in lines[-1]


def test_download_json_output_and_rerun(hub: FakeHub, tmp_path: Path) -> None:
    dest = tmp_path / "model"
    first = cli("download", "hf://org/model", "--dest", str(dest), "--json", "--no-progress")
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    payload = json.loads(first.stdout)
    assert payload["commit"] == hub.commit_sha("org/model")
    assert sorted(f["path"] for f in payload["files"] if f["downloaded"]) == DOWNLOADED
    assert payload["excluded"] == [{"path": "pytorch_model.bin", "reason": "duplicate weight format"}]

    hub.clear_requests()
    again = json.loads(cli("download", "hf://org/model", "--dest", str(dest), "--json", "--no-progress").stdout)
    assert [f for f in again["files"] if f["downloaded"]] == [] and again["bytes_fetched"] == 0
    assert [r.path for r in hub.requests] == ["/api/models/org/model/revision/main"]


def test_include_exclude_all_files_and_connections_flags(hub: FakeHub, tmp_path: Path) -> None:
    run = cli("download", "hf://org/model", "-d", str(tmp_path / "a"), "--include", "*.json", "--include",
              "tokenizer/*", "--exclude", "**/*.txt", "--connections", "2", "--no-progress")  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [".modelagent", "config.json"]

    run = cli("download", "hf://org/model", "-d", str(tmp_path / "b"), "--all-files", "--no-progress")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "b" / "pytorch_model.bin").read_bytes() == FILES["pytorch_model.bin"]


def test_token_file_flag(fake_hub: FakeHub, tmp_path: Path) -> None:
    fake_hub.add_token("tok-123", "alice")
    fake_hub.add_repo("org/private", files={"config.json": b"{}"}, private=True, readers=["alice"])
    token_file = tmp_path / "token"
    token_file.write_text("tok-123\n")
    dest = str(tmp_path / "m")
    run = cli("download", "hf://org/private", "-d", dest, "--token-file", str(token_file), "--no-progress")
    assert run.returncode == 0, run.stderr
    assert {r.authorization for r in fake_hub.requests if r.server == "hub"} == {"Bearer tok-123"}

    missing = cli("download", "hf://org/private", "-d", str(tmp_path / "m"), "--token-file", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "cannot read token file" in missing.stderr


@pytest.mark.parametrize(
    ("uri", "code", "needle"),
    [
        ("hf://org/missing", 1, "repository 'org/missing' not found"),
        ("hf://org/model@no-such-branch", 1, "revision 'no-such-branch' not found"),
        ("hf://org//model", 2, "invalid Hugging Face URI 'hf://org//model'"),
        ("gs://bucket/model", 1, "gs:// URIs is not supported yet"),
    ],
)
def test_failures_exit_non_zero_with_one_line_reason(
    hub: FakeHub, tmp_path: Path, uri: str, code: int, needle: str
) -> None:
    run = cli("download", uri, "--dest", str(tmp_path / "m"), "--no-progress")
    assert run.returncode == code
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("model-agent download: error: ")
    assert needle in lines[0]


def test_bad_glob_is_a_usage_error(hub: FakeHub, tmp_path: Path) -> None:
    run = cli("download", "hf://org/model", "--dest", str(tmp_path), "--include", "[abc")
    assert run.returncode == 2 and "invalid glob pattern '[abc'" in run.stderr
    assert hub.requests == []


def test_verify_ok_then_detects_a_corrupted_file(hub: FakeHub, tmp_path: Path) -> None:
    dest = tmp_path / "model"
    assert cli("download", "hf://org/model", "--dest", str(dest), "--no-progress").returncode == 0
    ok = cli("verify", str(dest))
    assert ok.returncode == 0, ok.stderr
    assert "3 files" in ok.stdout and "OK" in ok.stdout

    weights = dest / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    bad = cli("verify", str(dest))
    assert bad.returncode == 1
    assert "BAD model.safetensors" in bad.stdout
    assert bad.stderr.strip() == "model-agent verify: error: 1 bad files: model.safetensors"

    as_json = json.loads(cli("verify", str(dest), "--json").stdout)
    assert as_json["ok"] is False
    assert [f["path"] for f in as_json["files"] if not f["ok"]] == ["model.safetensors"]


def test_verify_of_a_directory_without_record(tmp_path: Path) -> None:
    run = cli("verify", str(tmp_path))
    assert run.returncode == 2
    assert run.stderr.startswith("model-agent verify: error: no download record")


def test_terminal_gets_a_live_progress_bar(hub: FakeHub, tmp_path: Path) -> None:
    hub.throttle(4 * MiB, server="cdn")  # long enough for a few redraws
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelagent", "download", "hf://org/model", "--dest", str(tmp_path / "m")],
        stdout=subprocess.PIPE, stderr=slave, env=os.environ.copy(),
    )  # fmt: skip
    os.close(slave)
    output = b""
    deadline = time.monotonic() + 60
    # Read until the terminal reports that its last writer closed it (EIO once everything written was read),
    # not until the process is seen to exit: its last frame can land between a select() that timed out and
    # the exit check.
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    proc.wait(timeout=30)
    os.close(master)
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text
    assert text.count("\r") >= 2
    assert "[" in text and "#" in text and "ETA" in text and "MiB/s" in text
    assert "100%" in text


def test_ctrl_c_stops_cleanly_and_the_next_run_resumes(hub: FakeHub, tmp_path: Path) -> None:
    hub.throttle(512 * 1024, server="cdn")
    dest = tmp_path / "m"
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelagent", "download", "hf://org/model", "--dest", str(dest), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not [r for r in hub.requests if r.server == "cdn" and r.bytes_sent > 0] and time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "download finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not (dest / "model.safetensors").exists()

    hub.throttle(None)
    run = cli("download", "hf://org/model", "--dest", str(dest), "--no-progress")
    assert run.returncode == 0, run.stderr
    assert (dest / "model.safetensors").read_bytes() == FILES["model.safetensors"]


def test_ctrl_c_during_a_slow_hub_api_call(hub: FakeHub, tmp_path: Path) -> None:
    hub.delay(30, path=r"/revision/")
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelagent", "download", "hf://org/model", "--dest", str(tmp_path / "m")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not hub.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub.requests, "the revision request never arrived"
    proc.send_signal(signal.SIGINT)
    # Without cancellation the call would only return after the server's 30 s delay, and succeed.
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
