"""Plan entries crossing the binding: the dicts every source's planner returns are accepted back by the
engine unchanged, and integer fields outside what the engine can hold fail naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelagent import _core


def test_planner_entries_round_trip_through_the_engine(tmp_path: Path) -> None:
    files = [_core.HfFile("config.json", size=2, blob_id="0" * 40), _core.HfFile("unknown.bin")]
    entries = _core.hf_build_plan("http://127.0.0.1:9", "org/model", "a" * 40, files)
    assert entries[0]["size"] == 2
    assert entries[0]["signer"] is None
    assert entries[0]["digest"] == {"kind": "git-blob-sha1", "value": "0" * 40}
    assert entries[1]["size"] is None  # unknown size stays None, not 2**64 - 1
    # The engine's parser accepts exactly these dicts (verify_files reads nothing remote).
    results = _core.verify_files(entries, tmp_path)
    assert [r.path for r in results] == ["config.json", "unknown.bin"]


@pytest.mark.parametrize(
    ("entry", "error", "message"),
    [
        ({"size": 2**64}, ValueError, r"plan\[0\]\['size'\] is larger than"),
        ({"size": 2**63}, ValueError, r"plan\[0\]\['size'\] is larger than"),
        ({"size": 1.5}, TypeError, r"plan\[0\]\['size'\] must be an int"),
        ({"digest": {"kind": "md5-multipart", "value": "x-2", "parts": 2**40}}, ValueError,
         r"plan\[0\]\['digest'\]\['parts'\] is larger than 100000"),
        ({"digest": {"kind": "md5-multipart", "value": "x-2", "parts": -1}}, ValueError,
         r"plan\[0\]\['digest'\]\['parts'\] must be >= 0"),
        ({"digest": {"kind": "md5-multipart", "value": "x-2", "part_size": 2**70}}, ValueError,
         r"plan\[0\]\['digest'\]\['part_size'\] is larger than"),
        ({"digest": {"kind": "md5-multipart", "value": "x-2", "part_size": "8MiB"}}, TypeError,
         r"plan\[0\]\['digest'\]\['part_size'\] must be an int"),
    ],
)
def test_out_of_range_integers_name_the_field(tmp_path: Path, entry: dict[str, object], error: type[Exception],
                                              message: str) -> None:
    plan = [{"path": "a", "url": "http://127.0.0.1:9/a", **entry}]
    with pytest.raises(error, match=message):
        _core.verify_files(plan, tmp_path)
