"""oci:// downloads end to end against the fake OCI Object Storage with a real user principal (API key
in an OCI config file): every request signed by the C++ signer and verified by the fake."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import modelagent
from modelagent import _core
from modelagent.sources.base import SourceRequest
from modelagent.sources.oci import OciSource
from modelagent.testing.oci_identity import FakeInstanceIdentity
from modelagent.testing.oci_object_storage import FakeObjectStorage, OciUserCredentials

pytestmark = pytest.mark.timeout(120)

MiB = 1 << 20
NS = "fakens"


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch):
    for name in ("OCI_OBJECT_STORAGE_ENDPOINT", "OCI_CONFIG_FILE", "OCI_CONFIG_PATH", "OCI_CLI_PROFILE", "PROFILE"):
        monkeypatch.delenv(name, raising=False)
    with FakeObjectStorage(namespace=NS) as s:
        yield s
    assert not s.internal_errors


@pytest.fixture
def creds(store: FakeObjectStorage, tmp_path: Path) -> OciUserCredentials:
    return store.add_user(tmp_path / "oci-config")


def params(store: FakeObjectStorage, creds: OciUserCredentials, **extra: str) -> dict[str, str]:
    return {"auth": "UserPrincipal", "config_file": str(creds.config_file), "endpoint": store.url, **extra}


def fast_options(**overrides: object) -> modelagent.DownloadOptions:
    values: dict[str, object] = {"retry_base_seconds": 0.01, "retry_cap_seconds": 0.05}
    values.update(overrides)
    return modelagent.DownloadOptions(**values)


def object_gets(store: FakeObjectStorage, name_regex: str = "/o/") -> list:
    return [r for r in store.find_requests(method="GET", path=name_regex) if "/o/" in r.path]


def download(store, creds, uri, dest, **kwargs):
    kwargs.setdefault("options", fast_options())
    return modelagent.download(uri, dest, progress=False, parameters=params(store, creds), **kwargs)


# ---- URIs, listing, mapping ----------------------------------------------------------------------


def test_three_uri_forms_and_namespace_lookup(store: FakeObjectStorage, creds: OciUserCredentials, tmp_path: Path) -> None:
    store.put_object("bkt", "models/llama/config.json", b'{"model_type": "llama"}')
    store.put_object("bkt", "models/llama/sub/w.bin", b"\x00" * 1000)
    for i, uri in enumerate(
        [f"oci://n/{NS}/b/bkt/o/models/llama", f"oci://{NS}@us-ashburn-1/bkt/models/llama", "oci://bkt/models/llama"]
    ):
        store.clear_requests()
        dest = tmp_path / f"d{i}"
        result = download(store, creds, uri, dest)
        assert sorted(f.path for f in result.files) == ["config.json", "sub/w.bin"]
        assert (dest / "sub/w.bin").read_bytes() == b"\x00" * 1000
        assert result.source == "oci" and result.label == f"{NS}/bkt/models/llama"
        namespace_calls = store.find_requests(method="GET", path="^/n/?$")
        assert len(namespace_calls) == (1 if uri == "oci://bkt/models/llama" else 0), uri
        assert all(key == creds.key_id for _, key, _ in store.auth_log)


def test_pagination_over_many_objects(store: FakeObjectStorage, creds: OciUserCredentials, tmp_path: Path) -> None:
    expected = {f"shard-{i:03d}.bin": bytes([i]) * (100 + i) for i in range(25)}
    for name, data in expected.items():
        store.put_object("bkt", f"big/{name}", data)
    result = download(store, creds, "oci://bkt/big", tmp_path / "d")
    assert sorted(f.path for f in result.files) == sorted(expected)
    for name, data in expected.items():
        assert (tmp_path / "d" / name).read_bytes() == data
    lists = store.find_requests(method="GET", path=r"/b/bkt/o$")
    assert len(lists) == 9  # 25 objects, 3 per page
    assert "start=" not in lists[0].query and all("start=" in r.query for r in lists[1:])
    assert all("fields=name%2Csize%2Cetag%2Cmd5" in r.query for r in lists)


def test_folder_markers_and_prefix_only_at_start(store: FakeObjectStorage, creds: OciUserCredentials, tmp_path: Path) -> None:
    store.put_object("bkt", "m/", b"")
    store.put_object("bkt", "m/sub/", b"")
    store.put_object("bkt", "m/a.txt", b"a")
    store.put_object("bkt", "m/sub/m/b.txt", b"b")
    store.put_object("bkt", "m2/c.txt", b"c")
    result = download(store, creds, "oci://bkt/m", tmp_path / "d")
    assert sorted(f.path for f in result.files) == ["a.txt", "sub/m/b.txt"]
    assert ("m/", "folder marker") in result.excluded and ("m/sub/", "folder marker") in result.excluded
    assert (tmp_path / "d/sub/m/b.txt").read_bytes() == b"b"
    assert not (tmp_path / "d/c.txt").exists()


def test_unsafe_object_name_rejected_before_any_write(store: FakeObjectStorage, creds: OciUserCredentials, tmp_path: Path) -> None:
    store.put_object("bkt", "m/ok.txt", b"ok")
    store.put_object("bkt", "m/../../escape.txt", b"evil")
    with pytest.raises(modelagent.UnsafePathError, match=r"'m/\.\./\.\./escape\.txt'"):
        download(store, creds, "oci://bkt/m", tmp_path / "d")
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").rglob("*.txt"))
    assert not object_gets(store)


def test_empty_prefix_is_a_clear_error(store: FakeObjectStorage, creds: OciUserCredentials, tmp_path: Path) -> None:
    store.put_object("bkt", "models/llama2/x", b"x")
    with pytest.raises(modelagent.DownloadError, match=r"no objects under oci://n/fakens/b/bkt/o/models/llama/"):
        download(store, creds, "oci://bkt/models/llama", tmp_path / "d")


# ---- ranges and verification ---------------------------------------------------------------------


def test_ranged_parallel_download_and_multipart_md5(store: FakeObjectStorage, creds: OciUserCredentials, tmp_path: Path) -> None:
    data = bytes((i * 7) & 0xFF for i in range(5 * MiB + 123))
    source_file = tmp_path / "src.bin"
    source_file.write_bytes(data)
    store.put_object("bkt", "m/multi.safetensors", source_file, part_size=2 * MiB)
    store.put_object("bkt", "m/single.bin", data[: 3 * MiB])
    plan = OciSource().plan(SourceRequest(uri="oci://bkt/m", parameters=params(store, creds)))
    kinds = {e["path"]: e["digest"]["kind"] for e in plan.files}
    assert kinds == {"multi.safetensors": "md5-multipart", "single.bin": "md5"}
    assert plan.unverifiable == []
    store.clear_requests()
    report = modelagent.run_download(
        plan.files, tmp_path / "d", fast_options(chunk_size=1 * MiB, connections_per_file=4)
    )
    assert (tmp_path / "d/multi.safetensors").read_bytes() == data
    assert all(f.verified for f in report.files)
    ranges = sorted(r.range for r in object_gets(store, "multi") if r.range)
    assert len(ranges) == 6 and ranges[0] == "bytes=0-1048575"
    etags = {o.name: o.etag for o in store.objects("bkt")}
    assert all(r.headers.get("if-match") == etags[r.path.split("/o/", 1)[1]] for r in object_gets(store))


def test_opc_meta_md5_wins_and_unverifiable_is_reported(store: FakeObjectStorage, creds: OciUserCredentials, tmp_path: Path) -> None:
    store.put_object("bkt", "m/meta.bin", b"m" * 5000, part_size=1000, meta_md5=True)
    store.put_object("bkt", "m/bare.bin", b"b" * 10, md5=False)
    result = download(store, creds, "oci://bkt/m", tmp_path / "d")
    digests = {f.path: f.digest_kind for f in result.files}
    assert digests == {"meta.bin": "md5", "bare.bin": "none"}
    assert [p for p, _ in result.unverified] == ["bare.bin"]
    assert "no Content-MD5, opc-multipart-md5 or opc-meta-md5" in result.unverified[0][1]
    assert (tmp_path / "d/bare.bin").read_bytes() == b"b" * 10
    # A wrong opc-meta-md5 is what the object is checked against (it wins), so the download fails.
    store.put_object("bkt", "w/meta.bin", b"m" * 5000, part_size=1000, meta_md5="XUFAKrxLKna5cZ2REBfFkg==")
    with pytest.raises(modelagent.VerificationError, match="meta.bin"):
        download(store, creds, "oci://bkt/w", tmp_path / "w")


def test_corruption_is_refetched_then_fails_when_persistent(store: FakeObjectStorage, creds: OciUserCredentials, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    store.put_object("bkt", "m/x.bin", data)
    store.corrupt_bytes(offset=1000, count=1, path="x.bin")
    result = download(store, creds, "oci://bkt/m", tmp_path / "d")
    assert (tmp_path / "d/x.bin").read_bytes() == data
    assert len(object_gets(store, "x.bin")) >= 2
    assert result.unverified == []

    store.put_object("bkt", "n/y.bin", data, part_size=300_000)
    store.corrupt_bytes(offset=5, count=1000, path="y.bin")
    with pytest.raises(modelagent.VerificationError, match="y.bin"):
        download(store, creds, "oci://bkt/n", tmp_path / "e")
    assert not (tmp_path / "e/y.bin").exists()


# ---- credentials ---------------------------------------------------------------------------------


def test_bad_signature_and_clock_skew_are_clear_errors(store: FakeObjectStorage, creds: OciUserCredentials, tmp_path: Path) -> None:
    store.put_object("bkt", "m/a", b"a")
    store.remove_key(creds.key_id)
    with pytest.raises(modelagent.CredentialsError) as bad:
        download(store, creds, "oci://bkt/m", tmp_path / "d")
    message = str(bad.value)
    assert "NotAuthenticated" in message and "opc-request-id fake-oci-" in message and "GetNamespace" in message
    with pytest.raises(modelagent.CredentialsError, match=r"namespace 'fakens', bucket 'bkt'"):
        download(store, creds, f"oci://n/{NS}/b/bkt/o/m", tmp_path / "d")
    store.add_key(creds.key_id, creds.private_key.public_key())

    store.clock_offset = 360
    with pytest.raises(modelagent.CredentialsError, match="clock"):
        download(store, creds, "oci://bkt/m", tmp_path / "d")
    assert "server clock" in store.auth_log[-1][2]
    store.clock_offset = 0
    assert download(store, creds, "oci://bkt/m", tmp_path / "d").files[0].path == "a"


def test_key_revoked_between_listing_and_data_is_a_credentials_error(
    store: FakeObjectStorage, creds: OciUserCredentials, tmp_path: Path
) -> None:
    store.put_object("bkt", "m/a", b"a" * 100)
    store.on_request(lambda _r: store.remove_key(creds.key_id), path="/o/m")
    with pytest.raises(modelagent.CredentialsError, match="object 'm/a'"):
        download(store, creds, "oci://bkt/m", tmp_path / "d")


def test_rate_limits_and_server_errors_are_retried(store: FakeObjectStorage, creds: OciUserCredentials, tmp_path: Path) -> None:
    store.put_object("bkt", "m/a.bin", b"a" * 5000)
    store.rate_limit(count=2, retry_after=0, path=r"/b/bkt/o$")
    store.server_error(count=2, status=503, path="a.bin")
    result = download(store, creds, "oci://bkt/m", tmp_path / "d")
    assert (tmp_path / "d/a.bin").read_bytes() == b"a" * 5000
    assert len(store.find_requests(status=429)) == 2 and len(store.find_requests(status=503)) == 2
    assert result.files[0].downloaded


def test_object_deleted_or_replaced_during_download(store: FakeObjectStorage, creds: OciUserCredentials, tmp_path: Path) -> None:
    store.put_object("bkt", "m/a.bin", b"a" * 100)
    store.on_request(lambda _r: store.delete_object("bkt", "m/a.bin"), path="/o/m/a.bin")
    with pytest.raises(modelagent.HttpStatusError, match="'m/a.bin' in bucket 'bkt' was deleted during the download"):
        download(store, creds, "oci://bkt/m", tmp_path / "d")

    store.put_object("bkt", "m/a.bin", b"a" * 100)
    store.on_request(lambda _r: store.put_object("bkt", "m/a.bin", b"b" * 100), path="/o/m/a.bin")
    with pytest.raises(modelagent.HttpStatusError, match="was replaced while it was being downloaded") as replaced:
        download(store, creds, "oci://bkt/m", tmp_path / "d")
    assert replaced.value.status == 412
    assert download(store, creds, "oci://bkt/m", tmp_path / "d").files[0].size == 100
    assert (tmp_path / "d/a.bin").read_bytes() == b"b" * 100


# ---- resume and re-runs --------------------------------------------------------------------------


def test_cancel_then_resume_does_not_refetch_finished_ranges(
    store: FakeObjectStorage, creds: OciUserCredentials, tmp_path: Path
) -> None:
    data = bytes((i * 13) & 0xFF for i in range(4 * MiB))
    store.put_object("bkt", "m/w.bin", data)
    cancel = modelagent.CancelToken()
    third = f"bytes={2 * MiB}-{3 * MiB - 1}"
    store.throttle(2 * MiB)  # each 1 MiB range takes about half a second

    def cancel_at_third_range(record: Any) -> None:
        # Cancel when the third range reaches the service, before it is answered: with one connection the first
        # two are finished by then, and the download cannot finish (a watcher polling the log could be late).
        if record.range == third:
            cancel.cancel()

    store.on_request(cancel_at_third_range, count=3, path="w.bin")  # the first three ranges
    options = fast_options(chunk_size=1 * MiB, connections_per_file=1, max_connections=1)
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            download(store, creds, "oci://bkt/m", tmp_path / "d", options=options, cancel=cancel)
        except BaseException as e:  # noqa: BLE001
            outcome["error"] = e

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(60)
    assert not worker.is_alive()
    assert isinstance(outcome.get("error"), modelagent.CancelledError)
    assert not (tmp_path / "d/w.bin").exists()
    first = {r.range for r in object_gets(store, "w.bin")}
    assert f"bytes=0-{MiB - 1}" in first

    store.clear_requests()
    store.throttle(None)
    download(store, creds, "oci://bkt/m", tmp_path / "d", options=options)
    assert (tmp_path / "d/w.bin").read_bytes() == data
    second = [r.range for r in object_gets(store, "w.bin")]
    assert second and not any(r and r.startswith(("bytes=0-", f"bytes={MiB}-")) for r in second), second


def test_rerun_on_unchanged_destination_fetches_nothing(store: FakeObjectStorage, creds: OciUserCredentials, tmp_path: Path) -> None:
    store.put_object("bkt", "m/a.bin", b"a" * 3000)
    store.put_object("bkt", "m/b.bin", b"b" * 3000, part_size=1000)
    first = download(store, creds, "oci://bkt/m", tmp_path / "d")
    store.clear_requests()
    second = download(store, creds, "oci://bkt/m", tmp_path / "d")
    assert second.bytes_fetched == 0 and second.downloaded == []
    assert second.snapshot == first.snapshot
    assert not object_gets(store, r"\.bin")
    store.put_object("bkt", "m/a.bin", b"A" * 3000)
    third = download(store, creds, "oci://bkt/m", tmp_path / "d")
    assert third.snapshot != first.snapshot and third.downloaded == ["a.bin"]


def test_archived_objects_fail_clearly(store: FakeObjectStorage, creds: OciUserCredentials, tmp_path: Path) -> None:
    store.put_object("bkt", "m/cold.bin", b"c", storage_tier="Archive", archival_state="Archived")
    store.put_object("bkt", "m/ok.bin", b"o")
    with pytest.raises(modelagent.DownloadError, match="Archive tier.*'m/cold.bin'"):
        download(store, creds, "oci://bkt/m", tmp_path / "d")
    result = download(store, creds, "oci://bkt/m", tmp_path / "d2", exclude="cold.bin")
    assert [f.path for f in result.files] == ["ok.bin"]


def test_parameters_are_validated(store: FakeObjectStorage, creds: OciUserCredentials) -> None:
    source = OciSource()
    with pytest.raises(ValueError, match="list_page_size"):
        source.plan(SourceRequest(uri="oci://bkt/m", parameters=params(store, creds, list_page_size="0")))
    with pytest.raises(modelagent.CredentialsError):
        source.plan(SourceRequest(uri="oci://bkt/m", parameters=params(store, creds, auth="Telepathy")))
    with pytest.raises(modelagent.InvalidStorageUri):
        source.plan(SourceRequest(uri="oci://n/ns/b", parameters=params(store, creds)))
    assert _core.oci_endpoint("", "eu-frankfurt-1") == "https://objectstorage.eu-frankfurt-1.oraclecloud.com"


def test_instance_principal_end_to_end(store: FakeObjectStorage, tmp_path: Path) -> None:
    store.put_object("bkt", "m/config.json", b"{}")
    store.put_object("bkt", "m/w.bin", b"w" * 24576, part_size=8192)
    with FakeInstanceIdentity(region="phx") as identity:
        store.add_key_lookup(identity.key_lookup)
        parameters = {**identity.principal_kwargs(), "endpoint": store.url}  # auth defaults to InstancePrincipal
        result = modelagent.download("oci://bkt/m", tmp_path / "d", progress=False, parameters=parameters,
                                     options=fast_options())
        assert identity.federation.token_requests >= 1
    assert sorted(f.path for f in result.files) == ["config.json", "w.bin"]
    assert (tmp_path / "d/w.bin").read_bytes() == b"w" * 24576
    keys = {key for _, key, _ in store.auth_log}
    assert len(keys) == 1 and next(iter(keys)).startswith("ST$")
    assert result.unverified == []


def test_revoked_session_token_is_renewed_once_for_listing_and_for_download(store: FakeObjectStorage,
                                                                            tmp_path: Path) -> None:
    body = bytes(range(256)) * 8192  # 2 MiB: several ranges at once
    store.put_object("bkt", "m/w.bin", body)
    with FakeInstanceIdentity(region="phx") as identity:
        store.add_key_lookup(identity.key_lookup)
        parameters = {**identity.principal_kwargs(), "endpoint": store.url}
        # The token is revoked just before the listing reaches the service: the API client renews it and
        # lists again.
        store.on_request(lambda _record: identity.federation.issuer.revoke_all(), path=r"/b/bkt/o$")
        plan = OciSource().plan(SourceRequest(uri="oci://bkt/m", parameters=parameters, options=fast_options()))
        assert identity.federation.token_requests == 2
        listings = store.find_requests(method="GET", path=r"/b/bkt/o$")
        assert [r.status for r in listings] == [401, 200]
        # Revoked again after planning: every range comes back 401, the engine renews (one token for all of
        # them, renewals within 10 s are shared) and finishes.
        assert identity.federation.issuer.revoke_all() == 1
        report = modelagent.run_download(plan.files, tmp_path / "d",
                                         fast_options(chunk_size=256 * 1024, connections_per_file=4))
        assert identity.federation.token_requests == 3
    assert report.files[0].verified and (tmp_path / "d/w.bin").read_bytes() == body
    statuses = [r.status for r in object_gets(store)]
    assert statuses[0] == 401 and statuses[-1] in (200, 206)


def test_user_principal_rejection_is_not_retried(store: FakeObjectStorage, creds: OciUserCredentials,
                                                 tmp_path: Path) -> None:
    store.put_object("bkt", "m/w.bin", b"w" * 1000)
    plan = OciSource().plan(SourceRequest(uri="oci://bkt/m", parameters=params(store, creds), options=fast_options()))
    store.clear_requests()
    store.remove_key(creds.key_id)
    with pytest.raises(modelagent.HttpStatusError, match="HTTP 401 .*w.bin"):
        modelagent.run_download(plan.files, tmp_path / "d", fast_options())
    assert len(object_gets(store)) == 1  # an API key cannot be renewed: no second attempt
