"""The fake OCI Object Storage is faithful: the official ``oci`` SDK works against it (namespace, paginated
listing, HEAD, ranged GET), its signatures verify, and the fake rejects what the service rejects."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from pathlib import Path

import oci
import pytest
import requests

from modelagent.testing.oci_object_storage import FakeObjectStorage, OciUserCredentials, fake_oci  # noqa: F401

pytestmark = pytest.mark.timeout(60)


def _sdk_config(creds: OciUserCredentials) -> dict[str, str]:
    return {
        "user": creds.user,
        "fingerprint": creds.fingerprint,
        "tenancy": creds.tenancy,
        "region": creds.region,
        "key_file": str(creds.key_file),
    }


def _client(store: FakeObjectStorage, creds: OciUserCredentials) -> oci.object_storage.ObjectStorageClient:
    return oci.object_storage.ObjectStorageClient(
        _sdk_config(creds), service_endpoint=store.url, retry_strategy=oci.retry.NoneRetryStrategy()
    )


@pytest.fixture
def store(tmp_path: Path):
    with FakeObjectStorage(namespace="axns") as s:
        yield s
    assert not s.internal_errors


@pytest.fixture
def creds(store: FakeObjectStorage, tmp_path: Path) -> OciUserCredentials:
    return store.add_user(tmp_path / "oci")


def _b64md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def test_sdk_namespace_and_signatures_verify(store: FakeObjectStorage, creds: OciUserCredentials) -> None:
    client = _client(store, creds)
    assert client.get_namespace().data == "axns"
    (record, key_id, error) = store.auth_log[-1]
    assert key_id == creds.key_id and error is None
    assert record.path == "/n" and record.status == 200  # the SDK asks for /n, modelagent for /n/


def test_sdk_lists_with_pagination_and_fields(store: FakeObjectStorage, creds: OciUserCredentials) -> None:
    names = [f"models/m/file{i:02d}.bin" for i in range(8)] + ["models/other.txt", "zzz"]
    for i, name in enumerate(names):
        store.put_object("bkt", name, bytes([i]) * (i + 1))
    client = _client(store, creds)
    first = client.list_objects("axns", "bkt", prefix="models/m/", fields="name,size,md5,etag", limit=1000).data
    assert [o.name for o in first.objects] == names[:3]  # the fake's page size caps the page
    assert first.next_start_with == names[3]
    assert first.objects[1].size == 2 and first.objects[1].md5 == _b64md5(b"\x01\x01")
    assert first.objects[0].etag == store.get_object("bkt", names[0]).etag
    every = oci.pagination.list_call_get_all_results(
        client.list_objects, "axns", "bkt", prefix="models/m/", fields="name,size"
    ).data
    assert [o.name for o in every.objects] == names[:8]
    # Default fields: the name only.
    bare = client.list_objects("axns", "bkt", prefix="zz").data.objects
    assert bare[0].name == "zzz" and bare[0].size is None and bare[0].md5 is None
    # Delimiter: one level.
    level = client.list_objects("axns", "bkt", prefix="models/", delimiter="/", limit=10).data
    assert [o.name for o in level.objects] == ["models/other.txt"] and level.prefixes == ["models/m/"]
    # start / end / startAfter
    window = client.list_objects("axns", "bkt", start=names[2], end=names[4], limit=10).data
    assert [o.name for o in window.objects] == names[2:4]
    after = client.list_objects("axns", "bkt", start_after=names[6], prefix="models/m/").data
    assert [o.name for o in after.objects] == [names[7]]
    with pytest.raises(oci.exceptions.ServiceError) as bad:
        client.list_objects("axns", "bkt", fields="name,colour")
    assert bad.value.status == 400 and bad.value.code == "InvalidParameter"


def test_sdk_head_and_ranged_get(store: FakeObjectStorage, creds: OciUserCredentials, tmp_path: Path) -> None:
    data = bytes(range(256)) * 300
    on_disk = tmp_path / "blob.bin"
    on_disk.write_bytes(data)
    single = store.put_object("bkt", "dir/single.bin", data, metadata={"owner": "me"})
    multi = store.put_object("bkt", "dir/multi.bin", on_disk, part_size=10_000, meta_md5=True)
    client = _client(store, creds)

    head = client.head_object("axns", "bkt", "dir/single.bin")
    assert head.status == 200
    assert head.headers["content-length"] == str(len(data))
    assert head.headers["content-md5"] == _b64md5(data)
    assert head.headers["etag"] == single.etag
    assert head.headers["opc-meta-owner"] == "me"
    assert head.headers["opc-request-id"].startswith("fake-oci-")

    head = client.head_object("axns", "bkt", "dir/multi.bin")
    assert "content-md5" not in head.headers
    parts = [hashlib.md5(data[i : i + 10_000]).digest() for i in range(0, len(data), 10_000)]
    expected = base64.b64encode(hashlib.md5(b"".join(parts)).digest()).decode() + f"-{len(parts)}"
    assert head.headers["opc-multipart-md5"] == expected == multi.multipart_md5
    assert head.headers["opc-meta-md5"] == _b64md5(data)

    got = client.get_object("axns", "bkt", "dir/multi.bin", range="bytes=1000-1999")
    assert got.status == 206
    assert got.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    assert got.data.content == data[1000:2000]
    whole = client.get_object("axns", "bkt", "dir/single.bin")
    assert whole.status == 200 and whole.data.content == data

    with pytest.raises(oci.exceptions.ServiceError) as e416:
        client.get_object("axns", "bkt", "dir/single.bin", range=f"bytes={len(data)}-")
    assert e416.value.status == 416 and e416.value.code == "InvalidRange"
    with pytest.raises(oci.exceptions.ServiceError) as e412:
        client.get_object("axns", "bkt", "dir/single.bin", if_match="not-the-etag")
    assert e412.value.status == 412 and e412.value.code == "IfMatchFailed"
    assert client.get_object("axns", "bkt", "dir/single.bin", if_match=single.etag).status == 200
    with pytest.raises(oci.exceptions.ServiceError) as missing:
        client.head_object("axns", "bkt", "dir/nope")
    assert missing.value.status == 404
    with pytest.raises(oci.exceptions.ServiceError) as nobucket:
        client.list_objects("axns", "nobucket")
    assert nobucket.value.status == 404 and nobucket.value.code == "BucketNotFound"
    assert nobucket.value.request_id.startswith("fake-oci-")
    # Every request above was signed by the SDK and verified.
    assert all(key == creds.key_id for _, key, _ in store.auth_log)


def test_object_names_raw_or_encoded(store: FakeObjectStorage, creds: OciUserCredentials) -> None:
    store.put_object("bkt", "a/b c/d.txt", b"hello")
    signer = oci.signer.Signer(creds.tenancy, creds.user, creds.fingerprint, str(creds.key_file))
    for path in ("/n/axns/b/bkt/o/a/b%20c/d.txt", "/n/axns/b/bkt/o/a%2Fb%20c%2Fd.txt"):
        r = requests.get(store.url + path, auth=signer, timeout=10)
        assert r.status_code == 200 and r.content == b"hello", path


def test_bad_signatures_and_clock_skew_get_401(store: FakeObjectStorage, creds: OciUserCredentials, tmp_path: Path) -> None:
    client = _client(store, creds)
    other = FakeObjectStorage().add_user(tmp_path / "stranger", user="ocid1.user.oc1..stranger")
    with pytest.raises(oci.exceptions.ServiceError) as unknown:
        _client(store, other).get_namespace()
    assert unknown.value.status == 401 and unknown.value.code == "NotAuthenticated"
    assert "unknown keyId" in store.auth_log[-1][2]

    # Same keyId, wrong private key: the signature does not verify.
    forged = dataclasses.replace(creds, key_file=other.key_file)
    with pytest.raises(oci.exceptions.ServiceError) as wrong:
        _client(store, forged).get_namespace()
    assert wrong.value.status == 401
    assert "does not verify" in store.auth_log[-1][2]

    r = requests.get(store.url + "/n/", timeout=10)
    assert r.status_code == 401 and r.json()["code"] == "NotAuthenticated"

    store.clock_offset = 301
    with pytest.raises(oci.exceptions.ServiceError) as skew:
        client.get_namespace()
    assert skew.value.status == 401 and "server clock" in skew.value.message
    store.clock_offset = -250
    assert client.get_namespace().data == "axns"


def test_scripted_faults(store: FakeObjectStorage, creds: OciUserCredentials) -> None:
    store.put_object("bkt", "x.bin", b"0123456789" * 100)
    client = _client(store, creds)
    store.rate_limit(count=1, retry_after=3)
    with pytest.raises(oci.exceptions.ServiceError) as limited:
        client.list_objects("axns", "bkt")
    assert limited.value.status == 429 and limited.value.code == "TooManyRequests"
    assert limited.value.headers["retry-after"] == "3"
    store.server_error(count=1, status=503)
    with pytest.raises(oci.exceptions.ServiceError) as unavailable:
        client.get_namespace()
    assert unavailable.value.status == 503 and unavailable.value.code == "ServiceUnavailable"
    store.corrupt_bytes(offset=5)
    body = client.get_object("axns", "bkt", "x.bin").data.content
    assert body[5] != b"5"[0] and body[:5] == b"01234"
    store.cut_connection(after_bytes=100)
    with pytest.raises(OSError, match="IncompleteRead|Connection broken"):  # the SDK's ChunkedEncodingError
        client.get_object("axns", "bkt", "x.bin").data.content  # noqa: B018 - reading the body fails
    assert store.find_requests(method="GET", path="x.bin")[-1].cut
    assert client.get_object("axns", "bkt", "x.bin").data.content == b"0123456789" * 100


def test_archived_objects_and_no_md5(store: FakeObjectStorage, creds: OciUserCredentials) -> None:
    store.put_object("bkt", "cold.bin", b"c", storage_tier="Archive", archival_state="Archived")
    store.put_object("bkt", "plain.bin", b"p", md5=False)
    client = _client(store, creds)
    listing = client.list_objects("axns", "bkt", fields="name,md5,storageTier,archivalState").data.objects
    by_name = {o.name: o for o in listing}
    assert by_name["cold.bin"].archival_state == "Archived" and by_name["cold.bin"].storage_tier == "Archive"
    assert by_name["plain.bin"].md5 is None
    head = client.head_object("axns", "bkt", "plain.bin")
    assert "content-md5" not in head.headers and "opc-multipart-md5" not in head.headers
    with pytest.raises(oci.exceptions.ServiceError) as archived:
        client.get_object("axns", "bkt", "cold.bin")
    assert archived.value.status == 409 and archived.value.code == "NotRestored"


def test_fake_oci_fixture_points_the_environment_at_the_fake(fake_oci: FakeObjectStorage, tmp_path: Path) -> None:
    import os

    assert os.environ["OCI_OBJECT_STORAGE_ENDPOINT"] == fake_oci.url
    creds = fake_oci.add_user(tmp_path / "c")
    assert _client(fake_oci, creds).get_namespace().data == fake_oci.namespace
