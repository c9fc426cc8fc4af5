"""FileStatusSink: the standalone status file."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import pytest
from modelagent import ModelEntry, ModelEntryError
from modelagent.agent.file_sink import FileStatusSink, atomic_write_json
from modelagent.agent.model_ref import ModelRef
from modelagent.agent.status_sink import StatusSink

BM = ModelRef("BaseModel", "default", "llama", "u1")
CBM = ModelRef("ClusterBaseModel", None, "phi", "u2")
CONFIG = {"modelType": "llama", "modelArchitecture": "LlamaForCausalLM", "maxTokens": 4096,
          "modelFramework": {"name": "transformers", "version": "4.43.0"}}
PROGRESS = {"phase": "Downloading", "totalBytes": 10, "completedBytes": 5, "totalFiles": 2,
            "completedFiles": 1, "speedBytesPerSec": 1.0, "lastUpdated": "2026-01-01T00:00:00Z"}


def status_file(root: Path) -> dict[str, str]:
    return json.loads((root / ".modelagent" / "status.json").read_text())


def test_is_a_status_sink(tmp_path: Path) -> None:
    assert isinstance(FileStatusSink(tmp_path), StatusSink)


def test_file_holds_exactly_the_configmap_data(tmp_path: Path) -> None:
    sink = FileStatusSink(tmp_path)
    sink.set_status(BM, "Updating")
    sink.set_progress(BM, PROGRESS)
    sink.set_config(BM, CONFIG)
    sink.set_status(BM, "Ready")
    sink.set_status(CBM, "Failed", reason="storage type s3 is not supported by this agent yet")
    data = status_file(tmp_path)
    assert set(data) == {"default.basemodel.llama", "clusterbasemodel.phi"}
    assert data["default.basemodel.llama"] == ModelEntry.from_dict(
        {"name": "llama", "status": "Ready", "config": CONFIG}).to_json()
    assert json.loads(data["clusterbasemodel.phi"]) == {
        "name": "phi", "status": "Failed", "reason": "storage type s3 is not supported by this agent yet"}
    labels = json.loads((tmp_path / ".modelagent" / "labels.json").read_text())
    assert labels == {BM.label_key: "Ready", CBM.label_key: "Failed"}
    assert sink.labels() == labels


def test_state_survives_a_restart(tmp_path: Path) -> None:
    sink = FileStatusSink(tmp_path)
    sink.set_status(BM, "Updating")
    sink.set_config(BM, CONFIG)
    again = FileStatusSink(tmp_path)
    assert again.known()[BM.configmap_key].status == "Updating"
    assert again.known()[BM.configmap_key].config.model_type == "llama"


def test_progress_rules(tmp_path: Path) -> None:
    sink = FileStatusSink(tmp_path)
    sink.set_progress(BM, PROGRESS)
    assert sink.known() == {}
    sink.set_status(BM, "Updating")
    sink.set_progress(BM, PROGRESS)
    assert json.loads(status_file(tmp_path)[BM.configmap_key])["progress"] == PROGRESS
    sink.set_status(BM, "Failed", reason="x")
    sink.set_progress(BM, PROGRESS)
    assert "progress" not in json.loads(status_file(tmp_path)[BM.configmap_key])
    sink.set_status(BM, "Updating")
    assert "reason" not in json.loads(status_file(tmp_path)[BM.configmap_key])


def test_ready_keeps_a_note_and_updating_drops_it(tmp_path: Path) -> None:
    sink = FileStatusSink(tmp_path)
    sink.set_status(BM, "Updating")
    note = "1 file(s) checked by size only, no digest: a.bin (multipart object without opc-meta-md5)"
    sink.set_status(BM, "Ready", reason=note)
    assert json.loads(status_file(tmp_path)[BM.configmap_key]) == {"name": "llama", "status": "Ready", "reason": note}
    sink.set_status(BM, "Updating")
    assert "reason" not in json.loads(status_file(tmp_path)[BM.configmap_key])


def test_remove(tmp_path: Path) -> None:
    sink = FileStatusSink(tmp_path)
    sink.set_status(BM, "Ready")
    sink.set_status(CBM, "Ready")
    sink.remove(BM)
    sink.remove(BM)
    assert list(status_file(tmp_path)) == [CBM.configmap_key]
    assert sink.labels() == {CBM.label_key: "Ready"}


def test_invalid_input_is_rejected_before_storing(tmp_path: Path) -> None:
    sink = FileStatusSink(tmp_path)
    sink.set_status(BM, "Updating")
    with pytest.raises(ValueError, match="Deleted"):
        sink.set_status(BM, "Deleted")
    with pytest.raises(ModelEntryError, match="default.basemodel.llama.*maxTokens"):
        sink.set_config(BM, {"maxTokens": 1.5})
    assert json.loads(status_file(tmp_path)[BM.configmap_key]) == {"name": "llama", "status": "Updating"}


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b'{"k": 3}', b"\xff\xfe"])
def test_corrupt_file_is_set_aside(tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / ".modelagent"
    state.mkdir()
    (state / "status.json").write_bytes(content)
    caplog.set_level(logging.ERROR, "modelagent.agent.file_sink")
    sink = FileStatusSink(tmp_path)
    assert sink.known() == {}
    aside = [p for p in state.iterdir() if p.name.startswith("status.json.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes() == content
    assert "status.json" in caplog.text and "corrupt-" in caplog.text
    sink.set_status(BM, "Ready")
    assert list(status_file(tmp_path)) == [BM.configmap_key]


def test_unreadable_entry_dropped(tmp_path: Path) -> None:
    state = tmp_path / ".modelagent"
    state.mkdir()
    good = '{"name":"phi","status":"Ready"}'
    (state / "status.json").write_text(json.dumps({CBM.configmap_key: good, "x.basemodel.y": "{bad"}))
    assert set(FileStatusSink(tmp_path).known()) == {CBM.configmap_key}


def test_heal_restores_and_prunes(tmp_path: Path) -> None:
    sink = FileStatusSink(tmp_path)
    sink.set_status(BM, "Ready")
    sink.set_status(CBM, "Ready")
    expected = status_file(tmp_path)
    path = tmp_path / ".modelagent" / "status.json"
    path.unlink()
    (tmp_path / ".modelagent" / "labels.json").unlink()
    sink.heal()
    assert status_file(tmp_path) == expected
    assert json.loads((tmp_path / ".modelagent" / "labels.json").read_text()) == sink.labels()
    path.write_text(json.dumps({BM.configmap_key: '{"name":"llama","status":"Failed"}'}))
    sink.heal()
    assert status_file(tmp_path) == expected
    sink.heal({CBM.configmap_key})
    assert list(status_file(tmp_path)) == [CBM.configmap_key]
    assert sink.labels() == {CBM.label_key: "Ready"}


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "s.json"
    atomic_write_json(target, {"a": "1"})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": "1"}
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temporary file left behind


def test_concurrent_writers_and_readers_see_whole_files(tmp_path: Path) -> None:
    sink = FileStatusSink(tmp_path)
    refs = [ModelRef("BaseModel", "ns", f"m{i}") for i in range(6)]
    sink.set_status(refs[0], "Updating")
    path = tmp_path / ".modelagent" / "status.json"
    stop = threading.Event()
    torn: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                json.loads(path.read_text())
            except ValueError as error:
                torn.append(str(error))

    def writer(ref: ModelRef) -> None:
        for _ in range(10):
            sink.set_status(ref, "Updating")
            sink.set_progress(ref, PROGRESS)
            sink.set_status(ref, "Ready")

    watcher = threading.Thread(target=reader)
    watcher.start()
    workers = [threading.Thread(target=writer, args=(r,)) for r in refs]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)  # 180 writes with two fsyncs each: slow on a busy disk, so a generous bound
    stop.set()
    watcher.join(30)
    assert not any(t.is_alive() for t in (*workers, watcher)), "writers or reader still running"
    assert torn == []
    data = status_file(tmp_path)
    assert {json.loads(v)["status"] for v in data.values()} == {"Ready"} and len(data) == 6
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert os.stat(path).st_size > 0
