"""The fake Hugging Face hub: faithfulness against the real huggingface_hub client, and the raw
protocol (headers, ranges, pagination, errors, faults) over plain HTTP."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from modelagent.testing import FakeHub, Fault, write_safetensors, write_synthetic_model

huggingface_hub = pytest.importorskip("huggingface_hub")
from huggingface_hub import HfApi, hf_hub_download, snapshot_download  # noqa: E402
from huggingface_hub.errors import (  # noqa: E402
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

MiB = 1 << 20
TOKEN = "hf_fake_alice"


@pytest.fixture(autouse=True)
def _isolated(hf_env: Path, loopback_only: None) -> None:
    """Every test here runs with a private HF_HOME and cannot reach anything but loopback."""


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def request(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, conn: http.client.HTTPConnection | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request; returns status, lower-cased headers and body."""
    parts = urlsplit(url)
    own = conn is None
    if conn is None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        if own:
            conn.close()


@pytest.fixture
def model_repo(fake_hub: FakeHub, synthetic_model: Callable[..., Any]) -> tuple[FakeHub, str, dict[str, bytes]]:
    """A repo with two LFS shards (CDN-redirected), small files at the root and in a sub-directory."""
    model = synthetic_model(shard_sizes=[2 * MiB + 13, MiB + 7], extra_files={"docs/notes/readme.txt": "hello\n"})
    files: dict[str, Any] = model.repo_files()
    files["README.md"] = b"# synthetic\n"
    sha = fake_hub.add_repo("org/model", files)
    contents = {path: Path(p).read_bytes() if isinstance(p, Path) else p for path, p in files.items()}
    return fake_hub, sha, contents


def assert_tree_equals(root: Path, expected: dict[str, bytes]) -> None:
    for path, data in expected.items():
        assert (root / path).read_bytes() == data, path


# --------------------------------------------------------------------------------------------------
# huggingface_hub against the fake


def test_snapshot_download_local_dir_is_byte_identical_and_drops_auth_on_cdn(model_repo, tmp_path):
    hub, sha, contents = model_repo
    hub.add_token(TOKEN, "alice")
    out = snapshot_download(
        "org/model", revision="main", local_dir=tmp_path / "ld", cache_dir=tmp_path / "c", endpoint=hub.url, token=TOKEN
    )
    assert Path(out) == (tmp_path / "ld").resolve()
    assert_tree_equals(Path(out), contents)
    meta = (Path(out) / ".cache/huggingface/download/model-00001-of-00002.safetensors.metadata").read_text().split("\n")
    assert meta[0] == sha
    assert meta[1] == hashlib.sha256(contents["model-00001-of-00002.safetensors"]).hexdigest()

    cdn = hub.find_requests(server="cdn", method="GET")
    assert len(cdn) == 2 and all(r.status == 200 for r in cdn)
    assert all(r.authorization is None for r in cdn), "the client must drop Authorization on the CDN host change"
    assert all(r.host.startswith("127.0.0.2:") for r in cdn)
    hub_requests = hub.find_requests(server="hub")
    assert hub_requests and all(r.authorization == f"Bearer {TOKEN}" for r in hub_requests)
    # Pinned: every file request used the commit, not the branch name.
    resolves = hub.find_requests(path="^/org/model/resolve/")
    assert resolves and all(f"/resolve/{sha}/" in r.path for r in resolves)


def test_snapshot_download_cache_layout(model_repo, tmp_path):
    hub, sha, contents = model_repo
    cache = tmp_path / "cache"
    out = Path(snapshot_download("org/model", cache_dir=cache, endpoint=hub.url, token=False))
    repo_dir = cache / "models--org--model"
    assert out == repo_dir / "snapshots" / sha
    assert (repo_dir / "refs" / "main").read_text() == sha
    for path, data in contents.items():
        link = out / path
        assert link.is_symlink(), path
        target = os.readlink(link)
        assert not os.path.isabs(target) and target.startswith("../" * (path.count("/") + 2) + "blobs/")
        expected_blob = hashlib.sha256(data).hexdigest() if path.endswith(".safetensors") else git_blob_sha1(data)
        assert Path(target).name == expected_blob, path
        assert link.read_bytes() == data


def test_old_commits_stay_downloadable_after_the_branch_moves(fake_hub, tmp_path):
    old = fake_hub.add_repo("org/m", {"config.json": b'{"v": 1}', "w.bin": b"a" * (MiB + 1)})
    fake_hub.create_tag("org/m", "v1")
    new = fake_hub.update_repo("org/m", add={"config.json": b'{"v": 2}'}, delete=["w.bin"])
    assert new != old and fake_hub.commit_sha("org/m") == new

    def get(rev: str, name: str) -> bytes:
        return Path(
            hf_hub_download("org/m", name, revision=rev, cache_dir=tmp_path / "c", endpoint=fake_hub.url, token=False)
        ).read_bytes()

    assert get("main", "config.json") == b'{"v": 2}'
    assert get(old, "config.json") == b'{"v": 1}'
    assert get("v1", "w.bin") == b"a" * (MiB + 1)
    with pytest.raises(EntryNotFoundError):
        get("main", "w.bin")
    snap = Path(snapshot_download("org/m", revision="v1", cache_dir=tmp_path / "c2", endpoint=fake_hub.url, token=False))
    assert sorted(p.name for p in snap.iterdir()) == ["config.json", "w.bin"]


def test_snapshot_is_pinned_when_the_branch_moves_mid_download(fake_hub, tmp_path):
    first = fake_hub.add_repo("org/m", {"a.txt": b"one", "b.txt": b"one"})
    moved: list[str] = []
    fake_hub.on_request(
        lambda rec: moved.append(fake_hub.update_repo("org/m", add={"a.txt": b"two", "b.txt": b"two"})),
        path=r"/tree/",
    )
    out = Path(snapshot_download("org/m", local_dir=tmp_path / "d", cache_dir=tmp_path / "c", endpoint=fake_hub.url, token=False))
    assert len(moved) == 1 and fake_hub.commit_sha("org/m") == moved[0] != first
    assert (out / "a.txt").read_bytes() == b"one" and (out / "b.txt").read_bytes() == b"one"


@pytest.mark.parametrize("small_file_mode", ["resolve-cache", "direct"])
def test_hf_hub_download_single_nested_file(fake_hub_factory, tmp_path, small_file_mode):
    hub = fake_hub_factory(small_file_mode=small_file_mode)
    sha = hub.add_repo("org/m", {"sub/dir/tok.json": b'{"x": 1}', "other.txt": b"x"})
    path = Path(hf_hub_download("org/m", "sub/dir/tok.json", cache_dir=tmp_path, endpoint=hub.url, token=False))
    assert path.read_bytes() == b'{"x": 1}'
    assert path.parent.parent.parent.name == sha
    redirected = hub.find_requests(path="^/api/resolve-cache/")
    assert bool(redirected) == (small_file_mode == "resolve-cache")


def test_hf_hub_download_of_gzip_encoded_text(fake_hub_factory, tmp_path):
    hub = fake_hub_factory(gzip_text=True)
    text = json.dumps({"k": list(range(2000))}).encode()
    hub.add_repo("org/m", {"tokenizer.json": text})
    out = Path(hf_hub_download("org/m", "tokenizer.json", cache_dir=tmp_path, endpoint=hub.url, token=False))
    assert out.read_bytes() == text
    gets = hub.find_requests(method="GET", path="tokenizer.json")
    assert gets[-1].bytes_sent < len(text), "body should have travelled gzip-compressed"


def test_list_repo_tree_follows_pagination(fake_hub_factory):
    hub = fake_hub_factory(tree_page_size=3)
    files = {f"dir{i % 2}/f{i:02d}.txt": f"content {i}".encode() for i in range(7)}
    files["big.safetensors"] = b"\0" * (MiB + 5)
    hub.add_repo("org/m", files)
    api = HfApi(endpoint=hub.url, token=False)
    entries = list(api.list_repo_tree("org/m", recursive=True))
    listed_files = {e.path: e for e in entries if hasattr(e, "size") and hasattr(e, "blob_id")}
    dirs = sorted(e.path for e in entries if not hasattr(e, "blob_id"))
    assert dirs == ["dir0", "dir1"]
    assert set(listed_files) == set(files)
    for path, data in files.items():
        assert listed_files[path].size == len(data)
    assert listed_files["big.safetensors"].lfs.sha256 == hashlib.sha256(files["big.safetensors"]).hexdigest()
    assert listed_files["dir0/f00.txt"].blob_id == git_blob_sha1(files["dir0/f00.txt"])
    pages = hub.find_requests(path="/tree/")
    assert len(pages) == 4  # 10 entries, 3 per page
    assert "cursor=" not in pages[0].query and all("cursor=" in p.query for p in pages[1:])
    # The tree and the siblings of repo info describe the same files.
    info = api.model_info("org/m", files_metadata=True)
    assert {s.rfilename: (s.size, s.blob_id) for s in info.siblings} == {
        p: (e.size, e.blob_id) for p, e in listed_files.items()
    }


def test_list_repo_tree_non_recursive_subdir_and_expand(fake_hub):
    fake_hub.add_repo("org/m", {"a/b/c.txt": b"1", "a/d.txt": b"2", "e.txt": b"3"})
    second = fake_hub.update_repo("org/m", add={"a/d.txt": b"22"}, message="Change d\n\nbody")
    api = HfApi(endpoint=fake_hub.url, token=False)
    top = sorted(e.path for e in api.list_repo_tree("org/m"))
    assert top == ["a", "e.txt"]
    sub = {e.path: e for e in api.list_repo_tree("org/m", path_in_repo="a", expand=True)}
    assert set(sub) == {"a/b", "a/d.txt"}
    assert sub["a/d.txt"].last_commit.oid == second and sub["a/d.txt"].last_commit.title == "Change d"
    assert sub["a/b"].last_commit.oid != second
    assert sub["a/d.txt"].security.safe is True


def test_model_info_fields(fake_hub, synthetic_model):
    model = synthetic_model(shard_sizes=[MiB, 4096])
    sha = fake_hub.add_repo("org/m", model.repo_files(), info={"library_name": "transformers", "pipeline_tag": "text-generation"})
    info = HfApi(endpoint=fake_hub.url, token=False).model_info("org/m", files_metadata=True)
    assert info.id == "org/m" and info.sha == sha and info.private is False and info.gated is False
    assert info.library_name == "transformers" and info.pipeline_tag == "text-generation"
    assert info.config == {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}
    assert info.safetensors.total == sum(info.safetensors.parameters.values()) > 0
    by_name = {s.rfilename: s for s in info.siblings}
    assert set(by_name) == set(model.files)
    big = by_name["model-00001-of-00002.safetensors"]
    assert big.size == MiB and big.lfs.sha256 == hashlib.sha256(model.files[big.rfilename].read_bytes()).hexdigest()
    assert by_name["model-00002-of-00002.safetensors"].lfs is None  # below the 1 MiB LFS threshold
    plain = HfApi(endpoint=fake_hub.url, token=False).model_info("org/m")
    assert all(s.size is None for s in plain.siblings)


def test_typed_errors_from_error_codes(fake_hub, tmp_path):
    fake_hub.add_token(TOKEN, "alice")
    fake_hub.add_token("hf_bob", "bob")
    fake_hub.add_repo("org/pub", {"config.json": b"{}"})
    fake_hub.add_repo("org/private", {"config.json": b"{}"}, private=True, readers=["alice"])
    fake_hub.add_repo("org/gated", {"config.json": b"{}", "README.md": b"card"}, gated="manual", approved=["alice"])
    api = HfApi(endpoint=fake_hub.url)

    def dl(repo: str, name: str = "config.json", token: Any = False, revision: str | None = None) -> Path:
        return Path(
            hf_hub_download(repo, name, revision=revision, cache_dir=tmp_path, endpoint=fake_hub.url, token=token)
        )

    with pytest.raises(RepositoryNotFoundError) as missing:
        api.model_info("org/nope", token=False)
    assert missing.value.response.status_code == 401  # anonymous: 401 like the real hub
    with pytest.raises(RepositoryNotFoundError) as missing_auth:
        api.model_info("org/nope", token=TOKEN)
    assert missing_auth.value.response.status_code == 404
    with pytest.raises(RepositoryNotFoundError):
        dl("org/private")
    with pytest.raises(RepositoryNotFoundError):
        dl("org/private", token="hf_bob")
    assert dl("org/private", token=TOKEN).read_bytes() == b"{}"
    with pytest.raises(RevisionNotFoundError):
        api.model_info("org/pub", revision="no-such-branch", token=False)
    with pytest.raises(RevisionNotFoundError):
        dl("org/pub", revision="no-such-branch")
    with pytest.raises(EntryNotFoundError):
        dl("org/pub", "missing.txt")
    pub_commit = fake_hub.commit_sha("org/pub")
    assert (tmp_path / "models--org--pub" / ".no_exist" / pub_commit / "missing.txt").exists()
    with pytest.raises(GatedRepoError) as gated_anon:
        dl("org/gated")
    assert gated_anon.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as gated_bob:
        dl("org/gated", token="hf_bob")
    assert gated_bob.value.response.status_code == 403
    assert dl("org/gated", token=TOKEN).read_bytes() == b"{}"
    assert dl("org/gated", "README.md").read_bytes() == b"card"  # the card stays public
    assert api.model_info("org/gated", token=False).gated == "manual"
    with pytest.raises(HfHubHTTPError) as bad_token:
        api.model_info("org/pub", token="hf_wrong")
    assert not isinstance(bad_token.value, RepositoryNotFoundError)
    assert bad_token.value.response.status_code == 401
    assert bad_token.value.response.headers["X-Error-Message"] == "Invalid credentials in Authorization header"


def test_429_with_retry_after_is_retried_by_huggingface_hub(fake_hub, tmp_path):
    fake_hub.add_repo("org/m", {"w.safetensors": b"w" * (MiB + 3)})
    fault = fake_hub.rate_limit(count=1, retry_after=0, server="cdn", methods=["GET"])
    out = Path(hf_hub_download("org/m", "w.safetensors", cache_dir=tmp_path, endpoint=fake_hub.url, token=False))
    assert out.read_bytes() == b"w" * (MiB + 3)
    assert fault.fired == 1
    assert [r.status for r in fake_hub.find_requests(server="cdn")] == [429, 200]


def test_ratelimit_header_on_tree_pages_is_honoured(fake_hub_factory):
    hub = fake_hub_factory(tree_page_size=2)
    hub.add_repo("org/m", {f"f{i}.txt": b"x" for i in range(5)})
    fault = hub.rate_limit(count=1, retry_after=None, ratelimit_reset=0, path="/tree/")
    paths = [e.path for e in HfApi(endpoint=hub.url, token=False).list_repo_tree("org/m")]
    assert sorted(paths) == [f"f{i}.txt" for i in range(5)]
    assert fault.fired == 1
    first = hub.find_requests(path="/tree/")[0]
    assert first.status == 429


def test_download_resumes_after_a_cut_connection(fake_hub, tmp_path):
    # huggingface_hub writes in 10 MiB chunks, so a cut after 10 MiB makes it resume with a Range.
    data = os.urandom(12 * MiB)
    fake_hub.add_repo("org/m", {"w.safetensors": data})
    cut = fake_hub.cut_connection(after_bytes=10 * MiB + 100, server="cdn")
    out = Path(hf_hub_download("org/m", "w.safetensors", cache_dir=tmp_path, endpoint=fake_hub.url, token=False))
    assert out.read_bytes() == data
    assert cut.fired == 1
    first, second = fake_hub.find_requests(server="cdn", method="GET")
    assert first.cut and first.bytes_sent == 10 * MiB + 100
    assert second.range == f"bytes={10 * MiB}-" and second.status == 206
    assert second.bytes_sent == len(data) - 10 * MiB


# --------------------------------------------------------------------------------------------------
# Raw protocol


def test_servers_bind_loopback_hosts(fake_hub):
    assert urlsplit(fake_hub.url).hostname == "127.0.0.1"
    assert urlsplit(fake_hub.cdn_url).hostname == "127.0.0.2"


def test_head_headers_for_small_and_lfs_files(fake_hub_factory):
    hub = fake_hub_factory(small_file_mode="direct")
    small, big = b'{"a": 1}', os.urandom(MiB)
    sha = hub.add_repo("org/m", {"config.json": small, "model.safetensors": big})

    status, h, body = request(f"{hub.url}/org/m/resolve/main/config.json", "HEAD")
    assert status == 200 and body == b""
    assert h["etag"] == f'"{git_blob_sha1(small)}"'
    assert h["content-length"] == str(len(small)) and h["x-repo-commit"] == sha
    assert h["accept-ranges"] == "bytes"
    assert "x-linked-etag" not in h

    status, h, _ = request(f"{hub.url}/org/m/resolve/main/model.safetensors", "HEAD")
    assert status == 302
    assert h["x-linked-etag"] == f'"{hashlib.sha256(big).hexdigest()}"'
    assert h["x-linked-size"] == str(len(big)) and h["x-repo-commit"] == sha
    loc = urlsplit(h["location"])
    assert loc.hostname == "127.0.0.2" and "Signature=" in loc.query and "Expires=" in loc.query
    status, h2, body = request(h["location"])
    assert status == 200 and body == big and h2["content-length"] == str(len(big))
    for headers in (h, h2):
        assert not [k for k in headers if k.startswith("x-xet")]


def test_small_files_redirect_relatively_to_resolve_cache(fake_hub):
    sha = fake_hub.add_repo("org/m", {"sub/config.json": b"{}"})
    status, h, _ = request(f"{fake_hub.url}/org/m/resolve/main/sub/config.json", "HEAD")
    assert status == 307 and h["x-repo-commit"] == sha
    assert h["location"].startswith(f"/api/resolve-cache/models/org/m/{sha}/sub/config.json?")
    status, h2, body = request(fake_hub.url + h["location"])
    assert status == 200 and body == b"{}" and h2["etag"] == f'"{git_blob_sha1(b"{}")}"' and h2["x-repo-commit"] == sha


def test_without_cdn_lfs_files_are_served_by_the_hub(fake_hub_factory):
    hub = fake_hub_factory(use_cdn=False, lfs_patterns=["*.safetensors"])
    data = b"tiny but LFS"
    hub.add_repo("org/m", {"w.safetensors": data})
    status, h, body = request(f"{hub.url}/org/m/resolve/main/w.safetensors")
    assert status == 200 and body == data
    assert h["x-linked-etag"] == h["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'


@pytest.mark.parametrize(
    ("range_header", "status", "content_range", "expected"),
    [
        ("bytes=10-19", 206, "bytes 10-19/100", slice(10, 20)),
        ("bytes=90-", 206, "bytes 90-99/100", slice(90, 100)),
        ("bytes=-5", 206, "bytes 95-99/100", slice(95, 100)),
        ("bytes=95-500", 206, "bytes 95-99/100", slice(95, 100)),
        ("bytes=100-", 416, "bytes */100", None),
        ("bytes=0-1,5-6", 200, None, slice(0, 100)),
    ],
)
def test_range_requests(fake_hub_factory, range_header, status, content_range, expected):
    hub = fake_hub_factory(small_file_mode="direct", lfs_threshold=50)
    data = bytes(range(100))
    hub.add_repo("org/m", {"f.bin": data})
    _, head, _ = request(f"{hub.url}/org/m/resolve/main/f.bin", "HEAD")
    got_status, h, body = request(head["location"], headers={"Range": range_header})  # CDN-served LFS bytes
    assert got_status == status
    assert h.get("content-range") == content_range
    if expected is not None:
        assert body == data[expected] and h["content-length"] == str(len(body))
    hub2 = fake_hub_factory(small_file_mode="direct")
    hub2.add_repo("org/m", {"f.bin": data})
    got_status, h, body = request(f"{hub2.url}/org/m/resolve/main/f.bin", headers={"Range": range_header})
    assert got_status == status and h.get("content-range") == content_range
    if expected is not None:
        assert body == data[expected]


def test_empty_files(fake_hub_factory):
    hub = fake_hub_factory(small_file_mode="direct")
    hub.add_repo("org/m", {"empty.txt": b""})
    status, h, body = request(f"{hub.url}/org/m/resolve/main/empty.txt")
    assert (status, h["content-length"], body, h["etag"]) == (200, "0", b"", f'"{git_blob_sha1(b"")}"')
    status, h, _ = request(f"{hub.url}/org/m/resolve/main/empty.txt", headers={"Range": "bytes=0-"})
    assert (status, h["content-range"]) == (416, "bytes */0")


def test_dataset_repos(fake_hub, tmp_path):
    fake_hub.add_repo("org/data", {"train.csv": b"a,b\n1,2\n"}, repo_type="dataset")
    out = hf_hub_download("org/data", "train.csv", repo_type="dataset", cache_dir=tmp_path, endpoint=fake_hub.url, token=False)
    assert Path(out).read_bytes() == b"a,b\n1,2\n"
    assert "datasets--org--data" in out
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=fake_hub.url, token=False).model_info("org/data")  # a dataset is not a model


def test_cdn_rejects_tampered_and_expired_urls(fake_hub_factory):
    hub = fake_hub_factory()
    hub.add_repo("org/m", {"w.bin": b"z" * MiB})
    _, h, _ = request(f"{hub.url}/org/m/resolve/main/w.bin", "HEAD")
    tampered = re.sub(r"Signature=[0-9a-f]+", "Signature=" + "0" * 64, h["location"])
    status, _, body = request(tampered)
    assert status == 403 and b"AccessDenied" in body
    expired_hub = fake_hub_factory(url_expiry=-60)
    expired_hub.add_repo("org/m", {"w.bin": b"z" * MiB})
    _, h, _ = request(f"{expired_hub.url}/org/m/resolve/main/w.bin", "HEAD")
    status, _, body = request(h["location"])
    assert status == 403 and b"expired" in body


def test_tree_pagination_link_header(fake_hub_factory):
    hub = fake_hub_factory(tree_page_size=4)
    files = {f"f{i:02d}": b"x" * i for i in range(10)}
    hub.add_repo("org/m", files)
    url = f"{hub.url}/api/models/org/m/tree/main?recursive=True&expand=False"
    seen: list[str] = []
    pages = 0
    while url:
        status, h, body = request(url)
        assert status == 200
        seen += [e["path"] for e in json.loads(body)]
        pages += 1
        m = re.fullmatch(r'<(http://127\.0\.0\.1:\d+/[^>]+)>; rel="next"', h.get("link", ""))
        url = m.group(1) if m else ""
        assert pages <= 5
    assert pages == 3 and seen == sorted(files)
    status, _, _ = request(f"{hub.url}/api/models/org/m/tree/main?cursor=garbage")
    assert status == 400


def test_percent_encoded_repo_ids_and_revisions(fake_hub):
    sha = fake_hub.add_repo("org/m", {"a.txt": b"1"})
    pr = fake_hub.create_branch("org/m", "refs/pr/1")
    assert pr == sha
    status, _, body = request(f"{fake_hub.url}/api/models/org%2Fm/tree/main")
    assert status == 200 and [e["path"] for e in json.loads(body)] == ["a.txt"]
    status, _, body = request(f"{fake_hub.url}/api/models/org/m/revision/refs%2Fpr%2F1")
    assert status == 200 and json.loads(body)["sha"] == sha
    status, h, _ = request(f"{fake_hub.url}/org/m/resolve/refs%2Fpr%2F1/a.txt", "HEAD")
    assert status == 307 and h["x-repo-commit"] == sha


def test_error_headers(fake_hub):
    sha = fake_hub.add_repo("org/m", {"a.txt": b"1"})
    status, h, body = request(f"{fake_hub.url}/org/m/resolve/main/nope.txt")
    assert (status, h["x-error-code"], h["x-repo-commit"]) == (404, "EntryNotFound", sha)
    assert json.loads(body) == {"error": "Entry not found"}
    status, h, _ = request(f"{fake_hub.url}/api/models/org/m/revision/v9")
    assert (status, h["x-error-code"]) == (404, "RevisionNotFound")
    status, h, _ = request(f"{fake_hub.url}/api/models/org/other")
    assert (status, h["x-error-code"]) == (401, "RepoNotFound")
    status, h, _ = request(f"{fake_hub.url}/api/models/org/m", headers={"Authorization": "Bearer nope"})
    assert status == 401 and h["x-error-message"] == "Invalid credentials in Authorization header"
    assert "x-error-code" not in h
    fake_hub.configure_repo("org/m", disabled=True)
    status, h, _ = request(f"{fake_hub.url}/api/models/org/m")
    assert status == 403 and h["x-error-message"] == "Access to this resource is disabled."


def test_scripted_status_faults_are_bounded_and_path_matched(fake_hub):
    fake_hub.add_repo("org/m", {"a.txt": b"1"})
    burst = fake_hub.server_error(count=2, status=502, path=r"^/api/")
    limited = fake_hub.rate_limit(count=1, retry_after=7, ratelimit_reset=3, path=r"/resolve/")
    statuses = [request(f"{fake_hub.url}/api/models/org/m")[0] for _ in range(3)]
    assert statuses == [502, 502, 200] and burst.fired == 2 and burst.remaining == 0
    status, h, _ = request(f"{fake_hub.url}/org/m/resolve/main/a.txt", "HEAD")
    assert status == 429 and h["retry-after"] == "7" and h["ratelimit"] == '"api";r=0;t=3'
    assert request(f"{fake_hub.url}/org/m/resolve/main/a.txt", "HEAD")[0] == 307
    assert limited.fired == 1
    assert [r.fault for r in fake_hub.requests] == ["status 502", "status 502", None, "status 429", None]
    with pytest.raises(ValueError, match="count"):
        Fault("status", count=0, status=500)


def test_corrupt_flips_one_byte_once(fake_hub_factory):
    hub = fake_hub_factory(small_file_mode="direct")
    data = bytes(1000)
    hub.add_repo("org/m", {"f.bin": data})
    url = f"{hub.url}/org/m/resolve/main/f.bin"
    fault = hub.corrupt_bytes(offset=600)
    assert request(url, headers={"Range": "bytes=0-99"})[2] == data[:100]  # range misses offset 600: not consumed
    assert fault.fired == 0
    body = request(url)[2]
    assert len(body) == 1000 and [i for i in range(1000) if body[i] != data[i]] == [600]
    assert request(url)[2] == data


def test_cut_closes_the_socket_after_n_bytes(fake_hub_factory):
    hub = fake_hub_factory(small_file_mode="direct")
    data = os.urandom(200_000)
    hub.add_repo("org/m", {"f.bin": data})
    hub.cut_connection(after_bytes=12345)
    conn = http.client.HTTPConnection("127.0.0.1", urlsplit(hub.url).port, timeout=60)
    conn.request("GET", "/org/m/resolve/main/f.bin")
    resp = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead) as err:
        resp.read()
    assert err.value.partial == data[:12345]
    conn.close()
    rec = hub.find_requests(path="f.bin")[0]
    assert rec.cut and rec.bytes_sent == 12345


def test_throttle_and_delay_slow_responses_down(fake_hub_factory):
    hub = fake_hub_factory(small_file_mode="direct")
    data = os.urandom(300_000)
    hub.add_repo("org/m", {"f.bin": data})
    rate = 1_000_000
    hub.throttle(rate, path="f.bin")
    t0 = time.monotonic()
    assert request(f"{hub.url}/org/m/resolve/main/f.bin")[2] == data
    # A lower bound is deterministic: the server sleeps to keep each connection at `rate`.
    record = hub.find_requests(path="f.bin")[0]
    assert record.wait() and record.duration >= len(data) / rate
    assert time.monotonic() - t0 >= (len(data) - rate // 20) / rate
    hub.throttle(None)
    hub.delay(0.2, path="f.bin")
    t0 = time.monotonic()
    request(f"{hub.url}/org/m/resolve/main/f.bin", "HEAD")
    assert time.monotonic() - t0 >= 0.2
    assert hub.find_requests(path="f.bin")[-1].fault == "delay 0.2s"


def test_request_log_and_keep_alive(fake_hub):
    fake_hub.add_repo("org/m", {"a.txt": b"1"})
    parts = urlsplit(fake_hub.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    request(f"{fake_hub.url}/api/models/org/m", conn=conn)
    request(f"{fake_hub.url}/api/models/org/m/tree/main", headers={"Range": "bytes=0-1", "User-Agent": "t/1"}, conn=conn)
    conn.close()
    first, second = fake_hub.requests
    assert first.connection_id == second.connection_id  # HTTP/1.1 keep-alive
    assert second.method == "GET" and second.path == "/api/models/org/m/tree/main" and second.status == 200
    assert second.range == "bytes=0-1" and second.headers["user-agent"] == "t/1"
    assert second.bytes_sent > 0 and second.server == "hub" and second.host == parts.netloc

    fake_hub.clear_requests()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(10):
                assert request(f"{fake_hub.url}/api/models/org/m")[0] == 200
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(fake_hub.requests) == 80


def test_exceptions_inside_the_fake_are_reported_not_hidden():
    def boom(record: Any) -> None:
        raise RuntimeError("callback exploded")

    with FakeHub() as hub:  # not the fixture: its teardown fails the test on internal errors
        hub.add_repo("org/m", {"a": b"1"})
        hub.on_request(boom, path="^/api/")
        status, h, _ = request(f"{hub.url}/api/models/org/m")
        assert status == 500 and "callback exploded" in h["x-error-message"]
        assert len(hub.internal_errors) == 1 and "RuntimeError: callback exploded" in hub.internal_errors[0]
        assert request(f"{hub.url}/api/models/org/m")[0] == 200


def test_unsafe_paths_need_opt_in_and_are_then_listed(fake_hub):
    with pytest.raises(ValueError, match=r"'\.\./evil'"):
        fake_hub.add_repo("org/m", {"../evil": b"x"})
    fake_hub.add_repo("org/m", {"../evil": b"x", "ok.txt": b"y"}, allow_unsafe_paths=True)
    _, _, body = request(f"{fake_hub.url}/api/models/org/m/tree/main?recursive=true")
    assert "../evil" in [e["path"] for e in json.loads(body)]


def test_bad_repo_definitions_are_reported(fake_hub, tmp_path):
    with pytest.raises(ValueError, match="not of the form"):
        fake_hub.add_repo("a/b/c", {})
    with pytest.raises(ValueError, match=r"'w\.bin'.*missing\.bin"):
        fake_hub.add_repo("org/m", {"w.bin": tmp_path / "missing.bin"})
    with pytest.raises(TypeError, match="'x'"):
        fake_hub.add_repo("org/m", {"x": 42})  # type: ignore[dict-item]
    fake_hub.add_repo("org/m", {"a": b"1"})
    with pytest.raises(ValueError, match="already exists"):
        fake_hub.add_repo("org/m", {"a": b"1"})
    with pytest.raises(KeyError, match="org/none"):
        fake_hub.update_repo("org/none", add={"a": b"1"})


def test_files_on_disk_are_served_with_sendfile_digests(fake_hub, tmp_path):
    disk = tmp_path / "w.safetensors"
    write_safetensors(disk, 3 * MiB + 1)
    fake_hub.add_repo("org/m", {"w.safetensors": disk})
    info = fake_hub.files("org/m")["w.safetensors"]
    assert info.sha256 == hashlib.sha256(disk.read_bytes()).hexdigest() and info.size == 3 * MiB + 1
    _, h, _ = request(f"{fake_hub.url}/org/m/resolve/main/w.safetensors", "HEAD")
    status, _, body = request(h["location"], headers={"Range": f"bytes={MiB}-{2 * MiB - 1}"})
    assert status == 206 and body == disk.read_bytes()[MiB : 2 * MiB]


def test_digest_cache_skips_rehashing_unchanged_files(tmp_path):
    from modelagent.testing import hf_hub as hub_module

    disk = tmp_path / "w.bin"
    disk.write_bytes(b"q" * (MiB + 1))
    real = hashlib.sha256(disk.read_bytes()).hexdigest()
    cache = tmp_path / "digests.json"
    FakeHub().add_repo("org/m", {"w.bin": disk})
    hub_module.save_digest_cache(cache)
    entries = json.loads(cache.read_text())
    assert [e[6] for e in entries if e[0] == str(disk.resolve())] == [real]
    # Prove a loaded entry is what gets used: plant a different digest for the unchanged file.
    planted = "ab" * 32
    cache.write_text(json.dumps([e[:6] + [planted] if e[0] == str(disk.resolve()) else e for e in entries]))
    hub_module._DIGEST_CACHE.clear()
    assert hub_module.load_digest_cache(cache) == len(entries)

    def served_sha256() -> str | None:
        hub = FakeHub()
        hub.add_repo("org/m", {"w.bin": disk})
        return hub.files("org/m")["w.bin"].sha256

    assert served_sha256() == planted
    os.utime(disk, ns=(1, 1))  # a changed mtime invalidates the entry
    assert served_sha256() == real
    assert hub_module.load_digest_cache(tmp_path / "absent.json") == 0
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        hub_module.load_digest_cache(tmp_path / "bad.json")


def test_whoami_and_refs(fake_hub):
    fake_hub.add_token(TOKEN, "alice")
    sha = fake_hub.add_repo("org/m", {"a": b"1"})
    fake_hub.create_tag("org/m", "v1")
    assert HfApi(endpoint=fake_hub.url).whoami(token=TOKEN)["name"] == "alice"
    refs = HfApi(endpoint=fake_hub.url, token=False).list_repo_refs("org/m")
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", sha)]
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1", sha)]


# --------------------------------------------------------------------------------------------------
# Synthetic models, fixtures, CLI


@pytest.mark.parametrize("size", [256, 1001, MiB + 3])
def test_write_safetensors_exact_size_and_valid(tmp_path, size):
    safetensors = pytest.importorskip("safetensors")
    path = tmp_path / "x.safetensors"
    names = write_safetensors(path, size, tensor_prefix="layer", dtype="F16", seed=3)
    assert path.stat().st_size == size
    with safetensors.safe_open(str(path), framework="numpy") as f:
        assert sorted(f.keys()) == sorted(names)
        total = sum(f.get_tensor(k).nbytes for k in f.keys())
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    assert total == size - 8 - header_len and header_len % 8 == 0
    with pytest.raises(ValueError, match="too small"):
        write_safetensors(tmp_path / "y.safetensors", 40)
    with pytest.raises(ValueError, match="dtype"):
        write_safetensors(tmp_path / "y.safetensors", 4096, dtype="F17")


def test_write_synthetic_model_layout(tmp_path):
    model = write_synthetic_model(tmp_path / "m", shard_sizes=[5000, 6000, 7001], seed=1)
    index = json.loads((tmp_path / "m/model.safetensors.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == model.shards == [
        f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)
    ]
    assert [model.files[s].stat().st_size for s in model.shards] == [5000, 6000, 7001]
    assert {"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"} <= set(model.files)
    assert json.loads(model.files["config.json"].read_text())["model_type"] == "llama"
    again = write_synthetic_model(tmp_path / "m2", shard_sizes=[5000, 6000, 7001], seed=1)
    assert again.files["model-00003-of-00003.safetensors"].read_bytes() == model.files["model-00003-of-00003.safetensors"].read_bytes()
    one = write_synthetic_model(tmp_path / "single", shard_sizes=[4096], tokenizer=False)
    assert one.shards == ["model.safetensors"] and "tokenizer.json" not in one.files
    assert "model.safetensors.index.json" not in one.files


def test_fixtures_set_the_environment(fake_hub, hf_env):
    assert os.environ["HF_ENDPOINT"] == fake_hub.url
    assert os.environ["HF_HOME"] == str(hf_env)
    assert os.environ["HF_HUB_DISABLE_XET"] == "1"
    assert "HF_TOKEN" not in os.environ and "HF_HUB_OFFLINE" not in os.environ


def test_loopback_only_blocks_other_addresses():
    with socket.socket() as s, pytest.raises(ConnectionRefusedError, match="loopback_only"):
        s.connect(("192.0.2.1", 80))


def test_session_hub_is_shared(fake_hub_session):
    repo = f"org/session-{uuid.uuid4().hex[:8]}"
    fake_hub_session.add_repo(repo, {"a": b"1"})
    assert request_json(f"{fake_hub_session.url}/api/models/{repo}")["id"] == repo


def request_json(url: str) -> Any:
    status, _, body = request(url)
    assert status == 200, url
    return json.loads(body)


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text().strip()
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"no URL file after {timeout}s")


def test_cli_serves_a_directory_until_sigterm(tmp_path):
    model = write_synthetic_model(tmp_path / "repos" / "org" / "m", shard_sizes=[MiB + 1])
    url_file, log = tmp_path / "url.txt", tmp_path / "access.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelagent.testing.hf_hub", "--port", "0", "--repo-dir", str(tmp_path / "repos"),
         "--url-file", str(url_file), "--access-log", str(log), "--digest-cache", str(tmp_path / "d.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = _wait_for(url_file, proc)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        tree = request_json(f"{url}/api/models/org/m/tree/main?recursive=true")
        assert {e["path"] for e in tree} == set(model.files)
        _, h, _ = request(f"{url}/org/m/resolve/main/model.safetensors", "HEAD")
        assert request(h["location"])[2] == model.files["model.safetensors"].read_bytes()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.strip() == url
    assert hashlib.sha256(model.files["model.safetensors"].read_bytes()).hexdigest() in (tmp_path / "d.json").read_text()
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    # Lines are written as requests complete, so their order may differ from arrival order.
    assert sorted((r["server"], r["method"], r["status"]) for r in logged) == [
        ("cdn", "GET", 200), ("hub", "GET", 200), ("hub", "HEAD", 302)
    ]  # fmt: skip


def test_cli_reports_bad_arguments(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "modelagent.testing.hf_hub", "--repo", f"org/m={tmp_path / 'absent'}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 2 and "absent" in res.stderr and "not a directory" in res.stderr
    res = subprocess.run(
        [sys.executable, "-m", "modelagent.testing.hf_hub"], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 2 and "nothing to serve" in res.stderr
