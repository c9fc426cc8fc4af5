"""modelagent.download() / verify() end to end against the fake Hugging Face hub on loopback."""

from __future__ import annotations

import json
import os
import random
import threading
from pathlib import Path

import pytest

import modelagent
from modelagent import _core
from modelagent.testing.hf_hub import FakeHub

MiB = 1 << 20


def _blob(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _repo_files() -> dict[str, bytes]:
    return {
        "config.json": b'{"model_type": "llama", "hidden_size": 64}',
        "model-00001-of-00002.safetensors": _blob(2 * MiB + 123, 1),
        "model-00002-of-00002.safetensors": _blob(MiB + 7, 2),
        "model.safetensors.index.json": b'{"weight_map": {}}',
        "tokenizer.json": b'{"version": "1.0"}',
        "sub/dir/notes.txt": b"nested file\n",
        "empty.txt": b"",
        "pytorch_model.bin": b"pickled duplicate weights",
        "original/params.json": b'{"dim": 64}',
    }


EXPECTED = sorted(p for p in _repo_files() if p not in ("pytorch_model.bin", "original/params.json"))


@pytest.fixture
def repo(fake_hub: FakeHub) -> tuple[FakeHub, str, dict[str, bytes]]:
    files = _repo_files()
    sha = fake_hub.add_repo("org/model", files=files)
    return fake_hub, sha, files


def _resolve_gets(hub: FakeHub) -> list[str]:
    return [r.path for r in hub.requests if r.server == "hub" and "/resolve/" in r.path and r.method == "GET"]


def _cdn_gets(hub: FakeHub) -> list[str]:
    return [r.path for r in hub.requests if r.server == "cdn" and r.method == "GET"]


def test_full_download_is_byte_identical_at_repo_paths(repo, tmp_path: Path) -> None:
    hub, sha, files = repo
    dest = tmp_path / "model"
    result = modelagent.download("hf://org/model", dest, progress=False)

    assert result.commit == sha
    assert result.repo_id == "org/model" and result.revision == "main"
    assert sorted(f.path for f in result.files) == EXPECTED
    for path in EXPECTED:
        assert (dest / path).read_bytes() == files[path], path
    assert not (dest / "pytorch_model.bin").exists()
    assert dict(result.excluded) == {
        "pytorch_model.bin": "duplicate weight format",
        "original/params.json": "duplicate weight format",
    }
    assert result.bytes == sum(len(files[p]) for p in EXPECTED)
    assert result.bytes_fetched == result.bytes
    assert sorted(result.downloaded) == EXPECTED and result.skipped == []
    kinds = {f.path: f.digest_kind for f in result.files}
    assert kinds["model-00001-of-00002.safetensors"] == "sha256"
    assert kinds["config.json"] == "git-blob-sha1"
    # Sizes and digests come from the tree listing: no HEAD requests; LFS bodies come from the CDN.
    assert not [r for r in hub.requests if r.method == "HEAD"]
    assert len(_cdn_gets(hub)) >= 2
    tree = [r for r in hub.requests if "/tree/" in r.path]
    assert tree and all(sha in r.path for r in tree)
    assert "recursive=true" in tree[0].query and "expand=false" in tree[0].query

    record = json.loads((dest / ".modelagent" / "download.json").read_text())
    assert record["snapshot"] == sha and record["uri"] == "hf://org/model"
    assert record["files"]["model-00001-of-00002.safetensors"]["digest"]["kind"] == "sha256"
    assert record["files"]["empty.txt"]["size"] == 0
    assert modelagent.read_record(dest)["details"]["repo_id"] == "org/model"


def test_authorization_goes_to_the_hub_and_is_dropped_on_the_cdn_redirect(fake_hub: FakeHub, tmp_path: Path) -> None:
    fake_hub.add_token("secret-token", "alice")
    files = _repo_files()
    fake_hub.add_repo("org/private", files=files, private=True, readers=["alice"])
    result = modelagent.download("hf://org/private", tmp_path / "m", token="secret-token", progress=False)
    assert sorted(result.downloaded) == EXPECTED
    hub_requests = [r for r in fake_hub.requests if r.server == "hub"]
    cdn_requests = [r for r in fake_hub.requests if r.server == "cdn"]
    assert hub_requests and cdn_requests
    assert all(r.authorization == "Bearer secret-token" for r in hub_requests)
    assert all(r.authorization is None for r in cdn_requests)


def test_explicit_token_wins_over_environment_tokens(
    fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hf_env: Path
) -> None:
    fake_hub.add_token("model-token", "alice")
    fake_hub.add_token("process-token", "bob")
    fake_hub.add_repo("org/private", files={"config.json": b"{}"}, private=True, readers=["alice"])
    monkeypatch.setenv("HF_TOKEN", "process-token")

    with pytest.raises(modelagent.RepositoryNotFoundError):
        modelagent.download("hf://org/private", tmp_path / "a", progress=False)
    assert {r.authorization for r in fake_hub.requests} == {"Bearer process-token"}

    fake_hub.clear_requests()
    modelagent.download("hf://org/private", tmp_path / "b", token="model-token", progress=False)
    assert {r.authorization for r in fake_hub.requests if r.server == "hub"} == {"Bearer model-token"}


def test_token_sources_in_order(
    fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hf_env: Path
) -> None:
    fake_hub.add_token("file-token", "alice")
    fake_hub.add_token("legacy-token", "alice")
    fake_hub.add_repo("org/private", files={"config.json": b"{}"}, private=True, readers=["alice"])
    (hf_env / "token").write_text("file-token\n")
    modelagent.download("hf://org/private", tmp_path / "a", progress=False)
    assert {r.authorization for r in fake_hub.requests} == {"Bearer file-token"}

    fake_hub.clear_requests()
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "legacy-token")
    modelagent.download("hf://org/private", tmp_path / "b", progress=False)
    assert {r.authorization for r in fake_hub.requests} == {"Bearer legacy-token"}


def test_branch_moving_mid_download_does_not_mix_commits(repo, tmp_path: Path) -> None:
    hub, sha, files = repo
    moved: list[str] = []

    def move_branch(_record: object) -> None:
        moved.append(hub.update_repo("org/model", add={"config.json": b'{"changed": true}', "tokenizer.json": b"{}"}))

    hub.on_request(move_branch, path=r"/resolve/", methods=["GET"])
    result = modelagent.download("hf://org/model", tmp_path / "m", progress=False)

    assert moved and moved[0] != sha
    assert result.commit == sha
    assert (tmp_path / "m" / "config.json").read_bytes() == files["config.json"]
    assert (tmp_path / "m" / "tokenizer.json").read_bytes() == files["tokenizer.json"]
    assert all(f"/resolve/{sha}/" in p for p in _resolve_gets(hub))

    # The next run sees the moved branch and replaces exactly the changed files.
    hub.clear_requests()
    again = modelagent.download("hf://org/model", tmp_path / "m", progress=False)
    assert again.commit == moved[0]
    assert sorted(again.downloaded) == ["config.json", "tokenizer.json"]
    assert (tmp_path / "m" / "config.json").read_bytes() == b'{"changed": true}'
    assert _cdn_gets(hub) == []


def test_tree_pagination_is_followed(fake_hub_factory, tmp_path: Path) -> None:
    hub = fake_hub_factory(tree_page_size=2)
    files = {f"dir{i % 3}/file{i}.txt": f"content {i}".encode() for i in range(9)}
    hub.add_repo("org/many", files=files)
    result = modelagent.download("hf://org/many", tmp_path / "m", progress=False)
    assert sorted(result.downloaded) == sorted(files)
    for path, content in files.items():
        assert (tmp_path / "m" / path).read_bytes() == content
    pages = [r for r in hub.requests if "/tree/" in r.path]
    assert len(pages) >= 6  # 9 files + 3 directories, 2 entries per page
    assert len({r.query for r in pages}) == len(pages)


def test_include_exclude_and_default_exclusions(repo, tmp_path: Path) -> None:
    only_json = modelagent.download("hf://org/model", tmp_path / "a", include="*.json", progress=False)
    assert sorted(only_json.downloaded) == ["config.json", "model.safetensors.index.json", "tokenizer.json"]
    assert dict(only_json.excluded)["sub/dir/notes.txt"] == "not included"

    no_text = modelagent.download("hf://org/model", tmp_path / "b", exclude=["**/*.txt"], progress=False)
    assert "sub/dir/notes.txt" not in no_text.downloaded and "empty.txt" not in no_text.downloaded
    assert dict(no_text.excluded)["empty.txt"] == "excluded by pattern '**/*.txt'"

    everything = modelagent.download("hf://org/model", tmp_path / "c", all_files=True, progress=False)
    assert sorted(everything.downloaded) == sorted(_repo_files())

    # An include that names a default-excluded file wins for that file only.
    with_bin = modelagent.download("hf://org/model", tmp_path / "d", include=["*.bin", "*.json"], progress=False)
    assert sorted(with_bin.downloaded) == [
        "config.json", "model.safetensors.index.json", "pytorch_model.bin", "tokenizer.json"
    ]  # fmt: skip


def test_malformed_pattern_fails_before_any_request(repo, tmp_path: Path) -> None:
    hub, _, _ = repo
    with pytest.raises(ValueError, match=r"\[oops"):
        modelagent.download("hf://org/model", tmp_path / "m", include=["[oops"], progress=False)
    assert hub.requests == []


def test_rerun_on_complete_destination_makes_one_request_and_rehashes_nothing(repo, tmp_path: Path) -> None:
    hub, sha, files = repo
    dest = tmp_path / "m"
    modelagent.download("hf://org/model", dest, progress=False)
    hub.clear_requests()
    rehashed_before = _core.bytes_rehashed_from_disk()

    again = modelagent.download("hf://org/model", dest, progress=False)

    assert [(r.method, r.path) for r in hub.requests] == [("GET", "/api/models/org/model/revision/main")]
    assert _core.bytes_rehashed_from_disk() == rehashed_before
    assert again.downloaded == [] and sorted(again.skipped) == EXPECTED
    assert again.bytes_fetched == 0 and not again.listed and again.commit == sha

    # Pinned to a commit, not even the revision needs resolving.
    hub.clear_requests()
    pinned = modelagent.download(f"hf://org/model@{sha}", dest, progress=False)
    assert hub.requests == [] and pinned.downloaded == []


def test_changed_files_on_disk_are_replaced(repo, tmp_path: Path) -> None:
    hub, _, files = repo
    dest = tmp_path / "m"
    modelagent.download("hf://org/model", dest, progress=False)
    (dest / "tokenizer.json").write_bytes(b"locally edited")
    hub.clear_requests()
    again = modelagent.download("hf://org/model", dest, progress=False)
    assert again.downloaded == ["tokenizer.json"]
    assert (dest / "tokenizer.json").read_bytes() == files["tokenizer.json"]


def test_upstream_removal_is_reported_and_pruned_only_when_asked(repo, tmp_path: Path) -> None:
    hub, _, _ = repo
    dest = tmp_path / "m"
    modelagent.download("hf://org/model", dest, progress=False)
    (dest / "my-own-notes.md").write_text("not from the hub")
    hub.update_repo("org/model", delete=["sub/dir/notes.txt"])

    kept = modelagent.download("hf://org/model", dest, progress=False)
    assert kept.stale == ["sub/dir/notes.txt"] and kept.removed == []
    assert (dest / "sub/dir/notes.txt").exists()

    pruned = modelagent.download("hf://org/model", dest, prune=True, progress=False)
    assert pruned.removed == ["sub/dir/notes.txt"] and pruned.stale == []
    assert not (dest / "sub").exists()
    assert (dest / "my-own-notes.md").exists()
    assert "sub/dir/notes.txt" not in modelagent.read_record(dest)["files"]


def test_narrowing_the_filter_reports_files_no_longer_wanted(repo, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    modelagent.download("hf://org/model", dest, progress=False)
    narrowed = modelagent.download("hf://org/model", dest, include="*.json", prune=True, progress=False)
    assert sorted(narrowed.removed) == ["empty.txt", "model-00001-of-00002.safetensors",
                                        "model-00002-of-00002.safetensors", "sub/dir/notes.txt"]  # fmt: skip
    assert not narrowed.listed  # same commit: the recorded tree was reused
    assert sorted(p.name for p in dest.iterdir()) == [".modelagent", "config.json", "model.safetensors.index.json",
                                                        "tokenizer.json"]  # fmt: skip


def test_429_storm_on_the_api_is_honoured(repo, tmp_path: Path) -> None:
    hub, sha, _ = repo
    hub.rate_limit(count=3, retry_after=1, path=r"/revision/")
    result = modelagent.download("hf://org/model", tmp_path / "m", progress=False)
    assert result.commit == sha
    revision = [r for r in hub.requests if "/revision/" in r.path]
    assert [r.status for r in revision] == [429, 429, 429, 200]
    for before, after in zip(revision, revision[1:], strict=False):
        assert after.started - before.started >= 0.9  # the server asked for 1 s each time


def test_429_storm_on_file_bodies_is_honoured(repo, tmp_path: Path) -> None:
    hub, _, files = repo
    hub.rate_limit(count=2, retry_after=1, server="cdn")
    result = modelagent.download("hf://org/model", tmp_path / "m", progress=False)
    assert sorted(result.downloaded) == EXPECTED
    assert [r.status for r in hub.requests if r.server == "cdn"].count(429) == 2
    shard = "model-00001-of-00002.safetensors"
    assert (tmp_path / "m" / shard).read_bytes() == files[shard]


def test_rate_limit_beyond_the_retry_budget_is_a_typed_error(repo, tmp_path: Path) -> None:
    hub, _, _ = repo
    hub.rate_limit(count=20, retry_after=3600, path=r"/revision/")
    with pytest.raises(modelagent.RateLimitedError) as info:
        modelagent.download("hf://org/model", tmp_path / "m", progress=False)
    assert info.value.retry_after == 3600
    assert "org/model" in str(info.value)
    assert len(hub.requests) == 1


def test_typed_hub_errors(fake_hub: FakeHub, tmp_path: Path) -> None:
    fake_hub.add_token("valid", "alice")
    fake_hub.add_repo("org/model", files={"config.json": b"{}", "model.safetensors": b"x" * 100})
    fake_hub.add_repo("org/gated", files={"config.json": b"{}", "model.safetensors": b"x" * 100}, gated="manual")

    with pytest.raises(modelagent.RepositoryNotFoundError) as missing:
        modelagent.download("hf://org/nope", tmp_path / "a", progress=False)
    assert "org/nope" in str(missing.value) and missing.value.status == 401
    assert missing.value.url.endswith("/api/models/org/nope/revision/main")

    with pytest.raises(modelagent.RevisionNotFoundError) as revision:
        modelagent.download("hf://org/model@v9", tmp_path / "b", progress=False)
    assert "'v9'" in str(revision.value)

    with pytest.raises(modelagent.GatedRepoError) as gated:
        modelagent.download("hf://org/gated", tmp_path / "c", progress=False)
    assert "org/gated" in str(gated.value)
    with pytest.raises(modelagent.GatedRepoError) as gated_logged_in:
        modelagent.download("hf://org/gated", tmp_path / "c", token="valid", progress=False)
    assert gated_logged_in.value.status == 403

    with pytest.raises(modelagent.UnauthorizedError):
        modelagent.download("hf://org/model", tmp_path / "d", token="not-a-valid-token", progress=False)

    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "d").exists()
    assert not (tmp_path / "c" / "model.safetensors").exists()


def test_unsupported_and_invalid_uris(tmp_path: Path) -> None:
    with pytest.raises(modelagent.DownloadError, match=r"gs:// URIs is not supported yet"):
        modelagent.download("gs://bucket/models/llama", tmp_path, progress=False)
    for bad in ("hf://", "hf://org//name", "no-scheme-here", "hf://org/name@"):
        with pytest.raises(modelagent.InvalidStorageUri):
            modelagent.download(bad, tmp_path, progress=False)


def test_destination_that_is_a_file_is_refused(repo, tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(modelagent.DownloadError, match=str(target)):
        modelagent.download("hf://org/model", target, progress=False)


def test_cancel_from_another_thread_then_resume(repo, tmp_path: Path) -> None:
    hub, _, files = repo
    hub.throttle(64 * 1024, server="cdn")  # the LFS files would take seconds
    cancel = modelagent.CancelToken()
    # Cancel from a server thread as soon as the first file body is requested.
    hub.on_request(lambda _record: cancel.cancel(), server="cdn", methods=["GET"])
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            modelagent.download("hf://org/model", tmp_path / "m", progress=False, cancel=cancel)
        except BaseException as e:  # noqa: BLE001
            outcome["error"] = e

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "download did not stop after cancel()"
    assert isinstance(outcome.get("error"), modelagent.CancelledError)
    big = tmp_path / "m" / "model-00001-of-00002.safetensors"
    assert not big.exists()  # never visible under its final name while incomplete
    assert not (tmp_path / "m" / ".modelagent" / "download.json").exists()

    hub.throttle(None)
    result = modelagent.download("hf://org/model", tmp_path / "m", progress=False)
    assert big.read_bytes() == files["model-00001-of-00002.safetensors"]
    assert sorted(f.path for f in result.files) == EXPECTED


def test_progress_callback_sees_totals(repo, tmp_path: Path) -> None:
    snapshots = []
    modelagent.download("hf://org/model", tmp_path / "m", progress=snapshots.append)
    final = snapshots[-1]
    assert final.files_total == len(EXPECTED) and final.files_done == len(EXPECTED)
    assert final.bytes_done == final.bytes_total == sum(len(_repo_files()[p]) for p in EXPECTED)


def test_verify_detects_corruption_and_missing_files(repo, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    modelagent.download("hf://org/model", dest, progress=False)
    assert modelagent.verify(dest).ok

    shard = dest / "model-00002-of-00002.safetensors"
    data = bytearray(shard.read_bytes())
    data[1000] ^= 0xFF
    stat = shard.stat()
    shard.write_bytes(bytes(data))
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime: only a re-hash can tell
    (dest / "sub/dir/notes.txt").unlink()

    result = modelagent.verify(dest)
    assert not result.ok
    assert sorted(f.path for f in result.bad) == ["model-00002-of-00002.safetensors", "sub/dir/notes.txt"]
    assert all(f.note for f in result.bad)


def test_verify_without_a_record_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(modelagent.DownloadError, match="no download record"):
        modelagent.verify(tmp_path)
    (tmp_path / ".modelagent").mkdir()
    (tmp_path / ".modelagent" / "download.json").write_text("{not json")
    with pytest.raises(modelagent.DownloadError, match=r"download\.json"):
        modelagent.verify(tmp_path)


def test_unreadable_record_only_costs_a_fresh_listing(repo, tmp_path: Path) -> None:
    hub, sha, _ = repo
    dest = tmp_path / "m"
    modelagent.download("hf://org/model", dest, progress=False)
    (dest / ".modelagent" / "download.json").write_text('{"format": 99}')
    hub.clear_requests()
    again = modelagent.download("hf://org/model", dest, progress=False)
    assert again.listed and again.downloaded == []
    assert modelagent.read_record(dest)["snapshot"] == sha


def test_paths_needing_percent_encoding(fake_hub: FakeHub, tmp_path: Path) -> None:
    files = {"dir with space/ünïcode #1.json": b'{"a": 1}', "plus+and%percent.txt": b"x", "config.json": b"{}"}
    fake_hub.add_repo("org/odd-names", files=files)
    result = modelagent.download("hf://org/odd-names", tmp_path / "m", progress=False)
    assert sorted(result.downloaded) == sorted(files)
    for path, content in files.items():
        assert (tmp_path / "m" / path).read_bytes() == content
    resolved = [r.path for r in fake_hub.requests if "/resolve/" in r.path]
    assert any(p.endswith("/dir%20with%20space/%C3%BCn%C3%AFcode%20%231.json") or p.endswith(
        "/dir with space/ünïcode #1.json") for p in resolved), resolved


def test_hostile_repository_paths_are_refused_before_writing(fake_hub: FakeHub, tmp_path: Path) -> None:
    fake_hub.add_repo("org/evil", files={"config.json": b"{}", "../escape.txt": b"gotcha"}, allow_unsafe_paths=True)
    dest = tmp_path / "inside"
    with pytest.raises(modelagent.UnsafePathError, match=r"\.\./escape\.txt"):
        modelagent.download("hf://org/evil", dest, progress=False)
    assert not (tmp_path / "escape.txt").exists()
    assert not (dest / "config.json").exists()
