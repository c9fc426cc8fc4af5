"""The source registry and the source-neutral download driver: registration kinds, entry points, lazy
built-ins, unknown schemes, plug-in plans through the engine, path filters, unverifiable files, the
format-2 record (and format-1 records of earlier versions) and the CLI's source options."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import modelagent
from modelagent import _core, sources
from modelagent.cli import main as cli_main
from modelagent.download import RECORD_PATH
from modelagent.testing.hf_hub import FakeHub

FILES = {
    "config.json": b'{"model_type": "llama"}',
    "model.safetensors": bytes(range(256)) * 8192,  # 2 MiB
    "pytorch_model.bin": b"duplicate weights",
    "tokenizer/vocab.txt": b"a\nb\n",
}
HF_DEFAULT = ["config.json", "model.safetensors", "tokenizer/vocab.txt"]


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:
    fake_hub.add_repo("org/model", files=FILES)
    return fake_hub


@pytest.fixture
def scheme() -> Iterator[str]:
    """A scheme name for one test; whatever a test registers under it is removed afterwards."""
    name = "unit-test+src"
    yield name
    modelagent.sources.unregister_source(name)


def _hub_plan(hub: FakeHub, paths: list[str], *, digest: bool = True) -> list[dict[str, Any]]:
    """Plan entries for files of the fake hub's org/model, as a plug-in would build them."""
    sha = hub.commit_sha("org/model")
    entries = []
    for path in paths:
        entry: dict[str, Any] = {
            "path": f"mirror/{path}",
            "url": _core.hf_resolve_url(hub.url, "org/model", sha, path),
            "size": len(FILES[path]),
        }
        if digest:
            entry["digest"] = {"kind": "sha256", "value": hashlib.sha256(FILES[path]).hexdigest()}
        entries.append(entry)
    return entries


# ---------------------------------------------------------------------------------------------------
# Registry


def test_builtin_schemes_are_listed_without_importing_them() -> None:
    assert {"hf", "oci", "s3"} <= set(modelagent.registered_schemes())
    assert sources.has_source("s3") and not sources.has_source("nope")
    assert modelagent.get_source("hf").scheme == "hf"
    assert modelagent.get_source("hf") is modelagent.get_source("hf")  # instantiated once


def test_every_kind_of_registration_yields_a_working_source(scheme: str) -> None:
    request = modelagent.SourceRequest(uri=f"{scheme}://x")
    made = modelagent.SourcePlan(files=[], snapshot="s", label="l")

    def plan(req: modelagent.SourceRequest) -> modelagent.SourcePlan:
        assert req is request
        return made

    class AsClass:
        scheme = "whatever"

        def plan(self, req: modelagent.SourceRequest) -> modelagent.SourcePlan:
            return made

    factory_calls = []

    def factory() -> Any:
        factory_calls.append(1)
        return AsClass()

    for value in (plan, AsClass, AsClass(), factory, lambda: plan):
        modelagent.register_source(scheme, value, replace=True)
        assert scheme in modelagent.registered_schemes()
        assert modelagent.get_source(scheme).plan(request) is made
    assert factory_calls == [1]


def test_registration_errors(scheme: str) -> None:
    with pytest.raises(ValueError, match="built in"):
        modelagent.register_source("hf", lambda request: None)
    with pytest.raises(ValueError, match="invalid source scheme 'Bad://'"):
        modelagent.register_source("Bad://", lambda request: None)
    with pytest.raises(TypeError, match="expected a Source"):
        modelagent.register_source(scheme, 42)  # type: ignore[arg-type]
    modelagent.register_source(scheme, lambda request: None)
    with pytest.raises(ValueError, match="already registered"):
        modelagent.register_source(scheme, lambda request: None)
    with pytest.raises(TypeError, match="takes 2"):
        modelagent.register_source(scheme, lambda a, b: None, replace=True)
    assert modelagent.sources.unregister_source(scheme)
    assert not modelagent.sources.unregister_source(scheme)
    with pytest.raises(modelagent.DownloadError, match=r"no source for the URI scheme 'unit-test\+src://'.*hf, oci"):
        modelagent.get_source(scheme)


def test_a_broken_builtin_does_not_affect_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sources._BUILTINS, "oci", "modelagent.sources.no_such_module:OciSource")
    monkeypatch.delitem(sources._loaded, "oci", raising=False)
    with pytest.raises(modelagent.DownloadError, match=r"oci:// source is unavailable.*no_such_module"):
        modelagent.get_source("oci")
    assert modelagent.get_source("hf").scheme == "hf"
    assert "oci" in modelagent.registered_schemes()


def _dist(site: Path, name: str, entry_points: dict[str, str]) -> None:
    """An installed-distribution stand-in: a dist-info directory with METADATA and entry_points.txt."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = ["[modelagent.sources]", *(f"{k} = {v}" for k, v in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def test_entry_points_are_discovered_and_broken_ones_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    (site / "ep_plugin").mkdir(parents=True)
    (site / "ep_plugin" / "__init__.py").write_text(
        "from modelagent import SourcePlan\n"
        "def plan(request):\n"
        "    return SourcePlan(files=[], snapshot='ep', label=request.uri)\n"
    )
    _dist(site, "ep_plugin", {"ep-works": "ep_plugin:plan", "ep-broken": "ep_plugin.missing:Source"})
    monkeypatch.syspath_prepend(str(site))
    try:
        assert {"ep-works", "ep-broken"} <= set(modelagent.registered_schemes())
        plan = modelagent.get_source("ep-works").plan(modelagent.SourceRequest(uri="ep-works://x"))
        assert plan.snapshot == "ep" and plan.label == "ep-works://x"
        with pytest.raises(modelagent.DownloadError, match=r"ep_plugin\.missing:Source"):
            modelagent.get_source("ep-broken")
        # register_source wins over an entry point of the same name.
        modelagent.register_source("ep-works", lambda request: "override")
        assert modelagent.get_source("ep-works").plan(modelagent.SourceRequest(uri="")) == "override"
    finally:
        modelagent.sources.unregister_source("ep-works")


# ---------------------------------------------------------------------------------------------------
# Scheme dispatch


def test_unknown_and_unsupported_schemes(tmp_path: Path) -> None:
    with pytest.raises(modelagent.DownloadError, match=r"unknown storage scheme 'nope'.*available: .*hf.*oci.*s3"):
        modelagent.download("nope://a/b", tmp_path / "m", progress=False)
    for uri in ("gs://bucket/model", "az://account/container/model"):
        with pytest.raises(modelagent.DownloadError, match=r"is not supported yet.*available for: .*hf"):
            modelagent.download(uri, tmp_path / "m", progress=False)
    with pytest.raises(modelagent.InvalidStorageUri):
        modelagent.download("oci://n/", tmp_path / "m", progress=False)
    assert not (tmp_path / "m").exists()


# ---------------------------------------------------------------------------------------------------
# A plug-in's plan through the engine


def test_plugin_plan_runs_through_the_engine_with_a_format_2_record(hub: FakeHub, scheme: str, tmp_path: Path) -> None:
    seen: list[modelagent.SourceRequest] = []

    def plan(request: modelagent.SourceRequest) -> modelagent.SourcePlan:
        seen.append(request)
        return modelagent.SourcePlan(
            files=_hub_plan(hub, ["config.json", "model.safetensors"]),
            snapshot="snap-1",
            label="hub-mirror",
            excluded=[("mirror/other", "not wanted")],
            state={"etag": "e1"},
            details={"bucket": "b"},
        )

    modelagent.register_source(scheme, plan)
    dest = tmp_path / "m"
    options = modelagent.DownloadOptions(chunk_size=1 << 20)
    result = modelagent.download(
        f"{scheme}://x", dest, parameters={"region": "r1"}, credentials={"key": "secret"}, endpoint="http://e",
        include="mirror/**", options=options, progress=False,
    )  # fmt: skip
    assert result.source == scheme and result.snapshot == "snap-1" and result.commit == "snap-1"
    assert result.repo_id == "hub-mirror" and result.revision == "" and result.label == "hub-mirror"
    assert sorted(result.downloaded) == ["mirror/config.json", "mirror/model.safetensors"]
    assert result.excluded == [("mirror/other", "not wanted")] and result.unverified == []
    assert (dest / "mirror/model.safetensors").read_bytes() == FILES["model.safetensors"]
    # The big file came in two 1 MiB ranges through the CDN redirect.
    ranges = sorted(r.headers.get("range", "") for r in hub.requests if r.server == "cdn" and r.method == "GET")
    assert ranges == ["bytes=0-1048575", "bytes=1048576-2097151"]

    request = seen[0]
    assert request.parameters == {"region": "r1", "endpoint": "http://e"}
    assert request.credentials == {"key": "secret"} and request.include == ("mirror/**",)
    assert request.previous is None and request.options is not None and request.cancel is not None

    record = json.loads((dest / RECORD_PATH).read_text())
    assert record["format"] == 2 and record["source"] == scheme and record["snapshot"] == "snap-1"
    assert record["state"] == {"etag": "e1"} and record["details"] == {"bucket": "b"}
    assert record["files"]["mirror/config.json"] == {
        "size": len(FILES["config.json"]),
        "digest": {"kind": "sha256", "value": hashlib.sha256(FILES["config.json"]).hexdigest()},
    }
    assert modelagent.verify(dest).ok and modelagent.verify(dest).source == scheme

    # Same snapshot again: the source gets its state back; nothing is fetched or re-hashed.
    hub.clear_requests()
    rehashed = _core.bytes_rehashed_from_disk()
    again = modelagent.download(f"{scheme}://x", dest, progress=False)
    assert seen[1].previous == {"etag": "e1"}
    assert again.downloaded == [] and again.bytes_fetched == 0 and hub.requests == []
    assert _core.bytes_rehashed_from_disk() == rehashed


def test_files_without_digest_are_reported_recorded_and_size_checked(
    hub: FakeHub, scheme: str, tmp_path: Path
) -> None:
    entries = _hub_plan(hub, ["config.json", "tokenizer/vocab.txt"], digest=False)
    modelagent.register_source(
        scheme,
        lambda request: modelagent.SourcePlan(
            files=entries, snapshot="s", label="l", unverifiable=[("mirror/config.json", "SSE-KMS object")]
        ),
    )
    dest = tmp_path / "m"
    result = modelagent.download(f"{scheme}://x", dest, progress=False)
    assert result.unverified == [
        ("mirror/config.json", "SSE-KMS object"),
        ("mirror/tokenizer/vocab.txt", "the source gave no digest for it"),
    ]
    assert [f.digest_kind for f in result.files] == ["none", "none"]
    record = modelagent.read_record(dest)
    assert record is not None
    assert record["unverified"][0] == {"path": "mirror/config.json", "reason": "SSE-KMS object"}

    checked = modelagent.verify(dest)
    assert checked.ok and checked.unverified == ["mirror/config.json", "mirror/tokenizer/vocab.txt"]
    (dest / "mirror/config.json").write_bytes(b"shorter")
    assert [f.path for f in modelagent.verify(dest).bad] == ["mirror/config.json"]


def test_malformed_plans_are_refused_naming_the_source(hub: FakeHub, scheme: str, tmp_path: Path) -> None:
    bad_answers: list[Any] = [
        {"files": []},
        modelagent.SourcePlan(files=[{"path": "a"}], snapshot="s", label="l"),
        modelagent.SourcePlan(files=_hub_plan(hub, ["config.json"]) * 2, snapshot="s", label="l"),
        modelagent.SourcePlan(files=[], snapshot="s", label="l", state={"x": object()}),
    ]
    needles = ["returned dict, expected a SourcePlan", r"plan.files\[0\] needs string 'path' and 'url'",
               "lists 'mirror/config.json' twice", "not JSON-serialisable"]  # fmt: skip
    for answer, needle in zip(bad_answers, needles, strict=True):
        modelagent.register_source(scheme, lambda request, a=answer: a, replace=True)
        with pytest.raises(modelagent.DownloadError, match=rf"{scheme.replace('+', '[+]')}:// source.*{needle}"):
            modelagent.download(f"{scheme}://x", tmp_path / "m", progress=False)
    assert not (tmp_path / "m").exists()


def test_explain_failure_may_raise_a_more_specific_error(hub: FakeHub, scheme: str, tmp_path: Path) -> None:
    missing = _hub_plan(hub, ["config.json"])
    missing[0]["url"] = _core.hf_resolve_url(hub.url, "org/model", hub.commit_sha("org/model"), "nope.json")
    explained: list[BaseException] = []

    class Explaining:
        scheme = "x"

        def plan(self, request: modelagent.SourceRequest) -> modelagent.SourcePlan:
            return modelagent.SourcePlan(files=missing, snapshot="s", label="l")

        def explain_failure(self, error: BaseException, request: Any, plan: modelagent.SourcePlan) -> None:
            explained.append(error)
            raise modelagent.CredentialsError(f"bad key for {plan.label}")

    modelagent.register_source(scheme, Explaining)
    with pytest.raises(modelagent.CredentialsError, match="bad key for l"):
        modelagent.download(f"{scheme}://x", tmp_path / "m", progress=False)
    assert isinstance(explained[0], modelagent.HttpStatusError) and explained[0].status == 404


# ---------------------------------------------------------------------------------------------------
# path_filter


def test_path_filter_drops_after_the_source_selection(hub: FakeHub, tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def shape_filter(paths: list[str]) -> dict[str, str]:
        calls.append(paths)
        return {"model.safetensors": "not for shape H100"}

    result = modelagent.download("hf://org/model", tmp_path / "m", path_filter=shape_filter, progress=False)
    assert calls == [HF_DEFAULT]  # pytorch_model.bin was already dropped by the source's default
    assert sorted(result.downloaded) == ["config.json", "tokenizer/vocab.txt"]
    assert ("model.safetensors", "not for shape H100") in result.excluded
    assert ("pytorch_model.bin", "duplicate weight format") in result.excluded
    assert not (tmp_path / "m" / "model.safetensors").exists()
    record = modelagent.read_record(tmp_path / "m")
    assert record is not None and sorted(record["files"]) == ["config.json", "tokenizer/vocab.txt"]


def test_path_filter_can_fail_the_download(hub: FakeHub, tmp_path: Path) -> None:
    def nothing_for_this_shape(paths: list[str]) -> dict[str, str]:
        raise modelagent.DownloadError("no files for shape H100")

    with pytest.raises(modelagent.DownloadError, match="no files for shape H100"):
        modelagent.download("hf://org/model", tmp_path / "m", path_filter=nothing_for_this_shape, progress=False)
    assert not (tmp_path / "m").exists()
    with pytest.raises(ValueError, match="'elsewhere.bin', which is not one of the planned paths"):
        modelagent.download("hf://org/model", tmp_path / "m", path_filter=lambda p: {"elsewhere.bin": "x"},
                            progress=False)  # fmt: skip


def test_plugin_paths_in_the_reserved_directory_are_dropped(hub: FakeHub, scheme: str, tmp_path: Path) -> None:
    entries = _hub_plan(hub, ["config.json", "tokenizer/vocab.txt"])
    entries[1]["path"] = ".modelagent/download.json"
    modelagent.register_source(scheme, lambda request: modelagent.SourcePlan(files=entries, snapshot="s", label="l"))
    result = modelagent.download(f"{scheme}://x", tmp_path / "m", progress=False)
    assert result.downloaded == ["mirror/config.json"]
    assert result.excluded == [(".modelagent/download.json", "reserved path")]
    assert modelagent.read_record(tmp_path / "m") is not None


# ---------------------------------------------------------------------------------------------------
# Records of earlier versions


def _as_format_1(record: dict[str, Any]) -> dict[str, Any]:
    """What an earlier version wrote for the same Hugging Face download."""
    state = record["state"]
    return {
        "format": 1, "source": "huggingface", "uri": record["uri"], "endpoint": state["endpoint"],
        "repo_id": state["repo_id"], "revision": record["details"]["revision"], "commit": state["commit"],
        "filter": record["filter"], "completed_at": record["completed_at"], "files": record["files"],
        "tree": state["tree"], "stale": record["stale"],
    }  # fmt: skip


def test_format_1_records_still_work(hub: FakeHub, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    modelagent.download("hf://org/model", dest, progress=False)
    path = dest / RECORD_PATH
    path.write_text(json.dumps(_as_format_1(json.loads(path.read_text()))))

    converted = modelagent.read_record(dest)
    assert converted is not None and converted["format"] == 2 and converted["source"] == "hf"
    assert converted["snapshot"] == hub.commit_sha("org/model") and converted["details"]["repo_id"] == "org/model"
    assert modelagent.verify(dest).ok

    hub.clear_requests()
    again = modelagent.download("hf://org/model", dest, progress=False)
    assert [r.path for r in hub.requests] == ["/api/models/org/model/revision/main"]  # the recorded tree is reused
    assert again.downloaded == [] and not again.listed
    assert json.loads(path.read_text())["format"] == 2


def test_a_record_of_another_source_is_not_handed_to_the_source(hub: FakeHub, scheme: str, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    modelagent.download("hf://org/model", dest, progress=False)
    seen: list[Any] = []

    def plan(request: modelagent.SourceRequest) -> modelagent.SourcePlan:
        seen.append(request.previous)
        return modelagent.SourcePlan(files=_hub_plan(hub, ["config.json"]), snapshot="s", label="l")

    modelagent.register_source(scheme, plan)
    result = modelagent.download(f"{scheme}://x", dest, progress=False)
    assert seen == [None]
    assert sorted(result.stale) == HF_DEFAULT  # the Hugging Face files are no longer part of the download


# ---------------------------------------------------------------------------------------------------
# CLI options for sources (in-process)


def test_cli_params_credentials_and_concurrency(
    hub: FakeHub, scheme: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[modelagent.SourceRequest] = []

    def plan(request: modelagent.SourceRequest) -> modelagent.SourcePlan:
        seen.append(request)
        return modelagent.SourcePlan(
            files=_hub_plan(hub, ["config.json"], digest=False), snapshot="abcdef0123456789", label="bucket/prefix"
        )

    modelagent.register_source(scheme, plan)
    creds_lines = tmp_path / "creds.env"
    creds_lines.write_text("# comment\n\naws_access_key_id = AKIA1\naws_secret_access_key=s3cr=t\n")
    code = cli_main(["download", f"{scheme}://x", "-d", str(tmp_path / "a"), "--param", "region=eu-1", "--param",
                     "path_style=true", "--credentials-file", str(creds_lines), "--concurrency", "3",
                     "--multipart-concurrency", "2", "--no-progress"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    request = seen[-1]
    assert request.parameters == {"region": "eu-1", "path_style": "true"}
    assert request.credentials == {"aws_access_key_id": "AKIA1", "aws_secret_access_key": "s3cr=t"}
    assert request.options.max_connections == 3 and request.options.connections_per_file == 2
    assert out.startswith(f"bucket/prefix (abcdef012345) -> {tmp_path / 'a'}: 1 files")
    assert err == "model-agent download: warning: mirror/config.json is not verified (size checked only): " \
                  "the source gave no digest for it\n"  # fmt: skip

    creds_json = tmp_path / "creds.json"
    creds_json.write_text(json.dumps({"token": "t1"}))
    assert cli_main(["download", f"{scheme}://x", "-d", str(tmp_path / "b"), "--credentials-file", str(creds_json),
                     "--json", "--no-progress"]) == 0  # fmt: skip
    payload = json.loads(capsys.readouterr().out)
    assert seen[-1].credentials == {"token": "t1"}
    assert payload["source"] == scheme and payload["snapshot"] == "abcdef0123456789"
    assert payload["unverified"] == [{"path": "mirror/config.json", "reason": "the source gave no digest for it"}]

    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"token": 5}')
    bad_lines = tmp_path / "bad.env"
    bad_lines.write_text("ok=1\nnot a pair\n")
    for argv, needle in [
        (["--param", "novalue"], "--param expects KEY=VALUE, got 'novalue'"),
        (["--credentials-file", str(tmp_path / "none")], f"cannot read credentials file {tmp_path / 'none'}"),
        (["--credentials-file", str(bad_json)], f"credentials file {bad_json}: value of 'token' is not a string"),
        (["--credentials-file", str(bad_lines)], f"credentials file {bad_lines}, line 2: expected KEY=VALUE"),
        (["--multipart-concurrency", "0"], "--multipart-concurrency must be at least 1"),
    ]:
        assert cli_main(["download", f"{scheme}://x", "-d", str(tmp_path / "c"), *argv]) == 2
        assert needle in capsys.readouterr().err
    assert len(seen) == 2


def test_hf_token_from_credentials_and_the_explicit_token_wins(fake_hub: FakeHub, tmp_path: Path) -> None:
    fake_hub.add_token("secret-tok", "bob")
    fake_hub.add_repo("org/private", files={"config.json": b"{}"}, private=True, readers=["bob"])
    result = modelagent.download("hf://org/private", tmp_path / "a", credentials={"token": "secret-tok"},
                                 progress=False)  # fmt: skip
    assert result.downloaded == ["config.json"]
    assert {r.authorization for r in fake_hub.requests if r.server == "hub"} == {"Bearer secret-tok"}
    with pytest.raises(modelagent.UnauthorizedError):
        modelagent.download("hf://org/private", tmp_path / "b", token="wrong", credentials={"HF_TOKEN": "secret-tok"},
                            progress=False)  # fmt: skip
