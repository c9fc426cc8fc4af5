"""The s3:// source against ``moto_server`` (seeded with boto3, the reference client): listing with
pagination, ranged signed downloads of single-part and multipart objects with ETag verification, prefix
mapping, folder markers, the credential chain (checked by moto's SigV4 enforcement), web identity through
moto's STS, and the errors for wrong credentials and missing buckets."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import http.server
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

import modelagent
from modelagent import _core
from modelagent.sources.base import SourceRequest
from modelagent.sources.s3 import S3Source, s3_snapshot
from modelagent.testing.s3_server import MotoServer, moto_server  # noqa: F401  (pytest fixture)

pytestmark = pytest.mark.timeout(120)

MiB = 1 << 20
ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


@pytest.fixture(autouse=True)
def _no_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS settings of the machine running the tests leak in (environment, ~/.aws)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))


def options(**kw: object) -> _core.DownloadOptions:
    kw.setdefault("max_attempts", 2)
    kw.setdefault("retry_base_seconds", 0.01)
    kw.setdefault("retry_cap_seconds", 0.05)
    kw.setdefault("connect_timeout_seconds", 5)
    return _core.DownloadOptions(**kw)


SECRET_DATA = {"aws_access_key_id": "AKIDSECRETDATA", "aws_secret_access_key": "secret-data-key"}
"""Secret data for the moto server that does not check signatures."""


def plan(server: MotoServer, uri: str, *, credentials: dict[str, str] | None = None, **parameters: str):
    parameters.setdefault("endpoint", server.endpoint)
    request = SourceRequest(uri=uri, parameters=parameters, credentials=credentials if credentials is not None
                            else dict(SECRET_DATA), options=options())
    return S3Source().plan(request)


@contextlib.contextmanager
def serving(*servers: http.server.HTTPServer) -> Iterator[None]:
    """Serve each local test server on a daemon thread for the block, then shut it down."""
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def data(n: int, seed: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (n // len(block) + 1))[:n]


def test_pagination_lists_every_key(moto_server: MotoServer, tmp_path: Path) -> None:  # noqa: F811
    s3 = moto_server.boto3_client("s3")
    s3.create_bucket(Bucket="paged")
    for i in range(23):
        s3.put_object(Bucket="paged", Key=f"m/shard-{i:03d}.bin", Body=data(10 + i, i))
    p = plan(moto_server, "s3://paged/m", max_keys="4")
    assert sorted(f["path"] for f in p.files) == [f"shard-{i:03d}.bin" for i in range(23)]
    assert all(f["digest"]["kind"] == "md5" for f in p.files)
    assert p.label == "paged/m"
    assert p.details["credentials"] == "the model's Secret"
    report = modelagent.run_download(p.files, tmp_path / "out", options())
    assert all(f.verified for f in report.files)
    assert (tmp_path / "out" / "shard-007.bin").read_bytes() == data(17, 7)


def test_single_and_multipart_objects_download_verified_and_rerun_fetches_nothing(
    moto_server: MotoServer, tmp_path: Path  # noqa: F811
) -> None:
    s3 = moto_server.boto3_client("s3")
    s3.create_bucket(Bucket="models")
    big = data(11 * MiB + 12345, 1)
    (tmp_path / "big.bin").write_bytes(big)
    # boto3's transfer manager uploads in 5 MiB parts: ETag "<md5 of part md5s>-3".
    s3.upload_file(str(tmp_path / "big.bin"), "models", "llama/model.safetensors",
                   Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB))
    s3.put_object(Bucket="models", Key="llama/config.json", Body=b'{"model_type": "llama"}')
    etag = s3.head_object(Bucket="models", Key="llama/model.safetensors")["ETag"]
    assert etag.endswith('-3"')

    p = plan(moto_server, "s3://models/llama")
    by_path = {f["path"]: f for f in p.files}
    # The part size comes from `HEAD ?partNumber=1`, not from guessing.
    assert by_path["model.safetensors"]["digest"] == {"kind": "md5-multipart", "value": etag.strip('"')[:32],
                                                      "parts": 3, "part_size": 5 * MiB}
    assert by_path["config.json"]["digest"]["kind"] == "md5"
    assert by_path["model.safetensors"]["url"] == f"{moto_server.endpoint}/models/llama/model.safetensors"
    assert isinstance(by_path["model.safetensors"]["signer"], _core.RequestSigner)
    assert p.unverifiable == []

    dest = tmp_path / "dest"
    # Small chunks: the multipart object arrives as many signed Range requests in parallel.
    report = modelagent.run_download(p.files, dest, options(chunk_size=1 * MiB, connections_per_file=4))
    assert {f.path: f.verified for f in report.files} == {"model.safetensors": True, "config.json": True}
    assert (dest / "model.safetensors").read_bytes() == big
    assert report.bytes_fetched == len(big) + len(b'{"model_type": "llama"}')

    again = modelagent.run_download(plan(moto_server, "s3://models/llama").files, dest, options())
    assert again.bytes_fetched == 0
    assert not any(f.downloaded for f in again.files)
    assert plan(moto_server, "s3://models/llama").snapshot == p.snapshot


def upload_in_parts(s3: Any, bucket: str, key: str, parts: list[bytes]) -> str:
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=n,
                                                     Body=body)["ETag"]}
            for n, body in enumerate(parts, start=1)]
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done})
    return s3.head_object(Bucket=bucket, Key=key)["ETag"]


def test_unusual_part_size_is_read_from_the_first_part_and_verifies(
    moto_server: MotoServer, tmp_path: Path  # noqa: F811
) -> None:
    s3 = moto_server.boto3_client("s3")
    s3.create_bucket(Bucket="models")
    # 6 MiB parts: no uploader default, and the even split of 18 MiB + 1000 B into 4 parts is 5 MiB, so
    # inference alone would hash with a wrong part size and fail.
    body = data(18 * MiB + 1000, 3)
    etag = upload_in_parts(s3, "models", "m/w.bin", [body[i:i + 6 * MiB] for i in range(0, len(body), 6 * MiB)])
    assert etag.endswith('-4"')
    p = plan(moto_server, "s3://models/m")
    assert p.files[0]["digest"] == {"kind": "md5-multipart", "value": etag.strip('"')[:32], "parts": 4,
                                    "part_size": 6 * MiB}
    report = modelagent.run_download(p.files, tmp_path / "d", options(chunk_size=2 * MiB))
    assert report.files[0].verified and (tmp_path / "d" / "w.bin").read_bytes() == body


def test_parts_of_unequal_size_are_measured_and_verify(moto_server: MotoServer, tmp_path: Path) -> None:  # noqa: F811
    s3 = moto_server.boto3_client("s3")
    s3.create_bucket(Bucket="models")
    body = data(17 * MiB + 10, 4)
    lengths = [5 * MiB, 12 * MiB, 10]
    etag = upload_in_parts(s3, "models", "m/w.bin", [body[:5 * MiB], body[5 * MiB:17 * MiB], body[17 * MiB:]])
    p = plan(moto_server, "s3://models/m")
    # Part 1 (5 MiB) and part 3 (10 B) cannot be one part size for 17 MiB + 10 B: every part is measured.
    assert p.files[0]["digest"] == {"kind": "md5-multipart", "value": etag.strip('"')[:32], "parts": 3,
                                    "part_lengths": lengths}
    assert p.unverifiable == []
    report = modelagent.run_download(p.files, tmp_path / "d", options(chunk_size=3 * MiB))
    assert report.files[0].verified and (tmp_path / "d" / "w.bin").read_bytes() == body

    # Through the public API: the layout is recorded, so `verify` re-checks the file the same way.
    result = modelagent.download("s3://models/m", tmp_path / "api", endpoint=moto_server.endpoint,
                                 credentials=dict(SECRET_DATA), progress=False, options=options())
    assert result.downloaded == ["w.bin"] and result.unverified == []
    assert [f.ok for f in modelagent.verify(tmp_path / "api").files] == [True]
    changed = bytearray(body)
    changed[6 * MiB] ^= 1  # a byte inside the long middle part
    (tmp_path / "api" / "w.bin").write_bytes(changed)
    assert [f.ok for f in modelagent.verify(tmp_path / "api").files] == [False]


def test_corrupt_bytes_of_an_unequal_part_object_fail_verification(moto_server: MotoServer,  # noqa: F811
                                                                   tmp_path: Path) -> None:
    s3 = moto_server.boto3_client("s3")
    s3.create_bucket(Bucket="models")
    body = data(11 * MiB + 3, 5)
    upload_in_parts(s3, "models", "m/w.bin", [body[:6 * MiB], body[6 * MiB:11 * MiB], body[11 * MiB:]])
    p = plan(moto_server, "s3://models/m")
    assert p.files[0]["digest"]["part_lengths"] == [6 * MiB, 5 * MiB, 3]
    # The same bytes measured as if cut into other parts: the composite MD5 cannot match.
    p.files[0]["digest"]["part_lengths"] = [5 * MiB, 6 * MiB, 3]
    with pytest.raises(modelagent.VerificationError, match="w.bin"):
        modelagent.run_download(p.files, tmp_path / "d", options())
    assert not (tmp_path / "d" / "w.bin").exists()


def test_changed_object_is_detected_by_its_etag(moto_server: MotoServer, tmp_path: Path) -> None:  # noqa: F811
    s3 = moto_server.boto3_client("s3")
    s3.create_bucket(Bucket="models")
    s3.put_object(Bucket="models", Key="m/weights.bin", Body=data(4096, 1))
    p = plan(moto_server, "s3://models/m")
    # Same size, other bytes: what the server now returns no longer matches the planned ETag (MD5).
    s3.put_object(Bucket="models", Key="m/weights.bin", Body=data(4096, 2))
    with pytest.raises(modelagent.VerificationError, match="weights.bin"):
        modelagent.run_download(p.files, tmp_path / "d", options())
    assert not (tmp_path / "d" / "weights.bin").exists()
    assert plan(moto_server, "s3://models/m").snapshot != p.snapshot


def test_prefix_is_a_directory_and_folder_markers_are_skipped(moto_server: MotoServer,  # noqa: F811
                                                              tmp_path: Path) -> None:
    s3 = moto_server.boto3_client("s3")
    s3.create_bucket(Bucket="models")
    for key in ["org/llama/config.json", "org/llama/sub dir/tok+en.json", "org/llama/sub dir/",
                "org/llama2/config.json", "org/llama/ünï/ｗ.txt", "org/llama/.modelagent/x"]:
        s3.put_object(Bucket="models", Key=key, Body=b"" if key.endswith("/") else key.encode())
    p = plan(moto_server, "s3://models/org/llama")
    assert sorted(f["path"] for f in p.files) == ["config.json", "sub dir/tok+en.json", "ünï/ｗ.txt"]
    assert ("org/llama/sub dir/", "folder marker") in p.excluded
    assert ("org/llama/.modelagent/x", "reserved path") in p.excluded
    modelagent.run_download(p.files, tmp_path / "d", options())
    assert (tmp_path / "d" / "sub dir" / "tok+en.json").read_bytes() == b"org/llama/sub dir/tok+en.json"
    assert (tmp_path / "d" / "ünï" / "ｗ.txt").exists()

    whole = plan(moto_server, "s3://models")
    assert "org/llama2/config.json" in {f["path"] for f in whole.files}
    assert whole.label == "models"


def test_include_and_exclude_patterns(moto_server: MotoServer) -> None:  # noqa: F811
    s3 = moto_server.boto3_client("s3")
    s3.create_bucket(Bucket="models")
    for key in ["m/a.safetensors", "m/b.bin", "m/c.json"]:
        s3.put_object(Bucket="models", Key=key, Body=b"x")
    request = SourceRequest(uri="s3://models/m", include=["*.safetensors", "*.json"], exclude=["c.*"],
                            parameters={"endpoint": moto_server.endpoint}, credentials=dict(SECRET_DATA))
    p = S3Source().plan(request)
    assert [f["path"] for f in p.files] == ["a.safetensors"]
    assert ("m/b.bin", "not included") in p.excluded
    assert ("m/c.json", "excluded by pattern 'c.*'") in p.excluded


def test_unsafe_key_is_rejected_naming_it(moto_server: MotoServer) -> None:  # noqa: F811
    s3 = moto_server.boto3_client("s3")
    s3.create_bucket(Bucket="models")
    s3.put_object(Bucket="models", Key="m/../escape.txt", Body=b"x")
    with pytest.raises(modelagent.UnsafePathError, match=r"m/\.\./escape\.txt"):
        plan(moto_server, "s3://models/m")


def test_missing_bucket_and_empty_prefix_are_clear_errors(moto_server: MotoServer) -> None:  # noqa: F811
    with pytest.raises(modelagent.HttpStatusError, match="bucket 'no-such-bucket' does not exist.*NoSuchBucket"):
        plan(moto_server, "s3://no-such-bucket/x")
    moto_server.boto3_client("s3").create_bucket(Bucket="empty")
    with pytest.raises(modelagent.DownloadError, match="no objects under s3://empty/x/"):
        plan(moto_server, "s3://empty/x")


def test_no_credentials_anywhere_is_a_credentials_error(moto_server: MotoServer) -> None:  # noqa: F811
    with pytest.raises(modelagent.CredentialsError, match="no AWS credentials found"):
        plan(moto_server, "s3://any-bucket/x", credentials={})


def test_endpoint_from_environment_and_explicit_path_style(moto_server: MotoServer,  # noqa: F811
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = moto_server.boto3_client("s3")
    s3.create_bucket(Bucket="models")
    s3.put_object(Bucket="models", Key="m/a", Body=b"x")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server.endpoint)
    request = SourceRequest(uri="s3://models@eu-central-1/m", parameters={"path_style": True},
                            credentials=dict(SECRET_DATA))
    p = S3Source().plan(request)
    assert p.details["endpoint"] == moto_server.endpoint
    assert p.details["region"] == "eu-central-1"
    assert p.files[0]["url"] == f"{moto_server.endpoint}/models/m/a"


def test_download_api_dispatches_s3(moto_server: MotoServer, tmp_path: Path) -> None:  # noqa: F811
    s3 = moto_server.boto3_client("s3")
    s3.create_bucket(Bucket="models")
    s3.put_object(Bucket="models", Key="llama/config.json", Body=b"{}")
    s3.put_object(Bucket="models", Key="llama/w.bin", Body=data(70000, 3))
    result = modelagent.download("s3://models/llama", tmp_path / "d", endpoint=moto_server.endpoint,
                                 credentials=dict(SECRET_DATA), progress=False, options=options())
    assert result.source == "s3"
    assert result.label == "models/llama"
    assert sorted(result.downloaded) == ["config.json", "w.bin"]
    assert (tmp_path / "d" / "w.bin").read_bytes() == data(70000, 3)
    again = modelagent.download("s3://models/llama", tmp_path / "d", endpoint=moto_server.endpoint,
                                credentials=dict(SECRET_DATA), progress=False, options=options())
    assert again.downloaded == []
    assert sorted(again.skipped) == ["config.json", "w.bin"]
    checked = modelagent.verify(tmp_path / "d")
    assert checked.source == "s3"
    assert all(f.ok for f in checked.files) and len(checked.files) == 2
    (tmp_path / "d" / "w.bin").write_bytes(data(70000, 4))
    assert [f.path for f in modelagent.verify(tmp_path / "d").files if not f.ok] == ["w.bin"]


def test_cancelled_before_listing(moto_server: MotoServer) -> None:  # noqa: F811
    cancel = _core.CancelToken()
    cancel.cancel()
    request = SourceRequest(uri="s3://models/m", parameters={"endpoint": moto_server.endpoint},
                            credentials=dict(SECRET_DATA), options=options(), cancel=cancel)
    with pytest.raises(modelagent.CancelledError):
        S3Source().plan(request)


# --- moto with SigV4 enforcement: proves which keys were used -------------------------------------------


class AuthMoto:
    """A moto_server that checks signatures, an IAM user with real keys, and a seeded bucket."""

    def __init__(self, server: MotoServer, key_id: str, secret: str) -> None:
        self.server = server
        self.key_id = key_id
        self.secret = secret

    def keys(self) -> dict[str, str]:
        return {"aws_access_key_id": self.key_id, "aws_secret_access_key": self.secret}


def iam_user_s3_client(server: MotoServer, user: str) -> tuple[dict[str, str], Any]:
    """Creates an IAM user allowed everything (3 actions) and returns its keys and an S3 client using them."""
    iam = server.boto3_client("iam")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="all", PolicyDocument=ALLOW_ALL)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    s3 = server.boto3_client("s3", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    return key, s3


@pytest.fixture(scope="module")
def auth_moto() -> Iterator[AuthMoto]:
    # The first 3 actions (creating the user, its policy and its keys) need no signature; every later one does.
    with MotoServer(env={"INITIAL_NO_AUTH_ACTION_COUNT": "3"}) as server:
        key, s3 = iam_user_s3_client(server, "reader")
        s3.create_bucket(Bucket="private")
        s3.put_object(Bucket="private", Key="config.json", Body=b'{"a": 1}')
        s3.put_object(Bucket="private", Key="w.bin", Body=data(300000, 9))
        yield AuthMoto(server, key["AccessKeyId"], key["SecretAccessKey"])


def auth_plan(auth: AuthMoto, credentials: dict[str, str], **parameters: str):
    parameters.setdefault("endpoint", auth.server.endpoint)
    # The whole bucket: moto's signature check rebuilds the query string decoded, so it rejects every
    # correctly signed listing with an encoded '/' in the prefix (boto3's too); an empty prefix avoids that.
    return S3Source().plan(SourceRequest(uri="s3://private", parameters=parameters, credentials=credentials,
                                         options=options()))


def test_secret_data_keys_sign_requests_moto_accepts(auth_moto: AuthMoto, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Wrong keys in the environment: the Secret must win.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", auth_moto.key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    upper = {k.upper(): v for k, v in auth_moto.keys().items()}
    p = auth_plan(auth_moto, upper)
    assert p.details["credentials"] == "the model's Secret"
    report = modelagent.run_download(p.files, tmp_path / "d", options(chunk_size=64 * 1024))
    assert all(f.verified for f in report.files)
    assert (tmp_path / "d" / "w.bin").read_bytes() == data(300000, 9)


def test_wrong_secret_is_signature_does_not_match(auth_moto: AuthMoto) -> None:
    creds = dict(auth_moto.keys(), aws_secret_access_key="not-the-secret")
    with pytest.raises(modelagent.HttpStatusError, match="HTTP 403 SignatureDoesNotMatch.*secret key") as info:
        auth_plan(auth_moto, creds)
    assert info.value.status == 403


def test_unknown_access_key_is_invalid_access_key_id(auth_moto: AuthMoto) -> None:
    with pytest.raises(modelagent.HttpStatusError, match="InvalidAccessKeyId"):
        auth_plan(auth_moto, {"aws_access_key_id": "AKIAUNKNOWN000000000", "aws_secret_access_key": "x"})


def test_environment_keys(auth_moto: AuthMoto, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", auth_moto.key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", auth_moto.secret)
    p = auth_plan(auth_moto, {})
    assert p.details["credentials"] == "environment (AWS_ACCESS_KEY_ID)"
    assert sorted(f["path"] for f in p.files) == ["config.json", "w.bin"]


def test_shared_credentials_file_profile(auth_moto: AuthMoto, monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    creds = tmp_path / "credentials"
    creds.write_text(f"[default]\naws_access_key_id = {auth_moto.key_id}\naws_secret_access_key = wrong\n\n"
                     f"[models]\naws_access_key_id = {auth_moto.key_id}\naws_secret_access_key = {auth_moto.secret}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    p = auth_plan(auth_moto, {}, profile="models")
    assert p.details["credentials"] == f"{creds} (profile models)"
    with pytest.raises(modelagent.HttpStatusError, match="SignatureDoesNotMatch"):
        auth_plan(auth_moto, {})  # the default profile has the wrong secret


def test_home_aws_credentials_and_config_region(auth_moto: AuthMoto, monkeypatch: pytest.MonkeyPatch) -> None:
    aws = Path(os.environ["HOME"]) / ".aws"
    aws.mkdir()
    (aws / "credentials").write_text(
        f"[default]\naws_access_key_id={auth_moto.key_id}\naws_secret_access_key={auth_moto.secret}\n")
    (aws / "config").write_text("[default]\nregion = ap-northeast-1\n")
    p = auth_plan(auth_moto, {})
    assert p.details["region"] == "ap-northeast-1"
    assert p.details["credentials"].endswith(".aws/credentials (profile default)")


def test_web_identity_through_moto_sts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # moto answers the unsigned AssumeRoleWithWebIdentity only while unauthenticated actions remain (it
    # fails with 500 once auth is enforced), so the count covers the 7 seeding calls and the agent's STS call.
    with MotoServer(env={"INITIAL_NO_AUTH_ACTION_COUNT": "8"}) as server:
        iam = server.boto3_client("iam")
        iam.create_role(RoleName="model-reader", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Federated": "oidc"},
                           "Action": "sts:AssumeRoleWithWebIdentity"}]}))
        iam.put_role_policy(RoleName="model-reader", PolicyName="all", PolicyDocument=ALLOW_ALL)
        _, s3 = iam_user_s3_client(server, "seeder")
        s3.create_bucket(Bucket="irsa")
        s3.put_object(Bucket="irsa", Key="w.bin", Body=data(5000, 4))

        token = tmp_path / "token"
        token.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2ln\n")
        monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
        monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/model-reader")
        monkeypatch.setenv("AWS_ROLE_SESSION_NAME", "agent-node-1")
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)  # both STS and S3
        p = S3Source().plan(SourceRequest(uri="s3://irsa", options=options()))
        assert p.details["credentials"].startswith("web identity")
        # Every listing/HEAD/GET below was signed with the STS session keys and token; moto checked them.
        report = modelagent.run_download(p.files, tmp_path / "d", options())
        assert report.files[0].verified
        assert (tmp_path / "d" / "w.bin").read_bytes() == data(5000, 4)


def test_web_identity_sts_failure_names_the_endpoint(moto_server: MotoServer, tmp_path: Path,  # noqa: F811
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(tmp_path / "absent-token"))
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_server.endpoint)
    with pytest.raises(modelagent.CredentialsError, match="absent-token"):
        plan(moto_server, "s3://any-bucket/m", credentials={})


def test_snapshot_is_order_independent() -> None:
    a = [("b", 2, '"x"'), ("a", 1, '"y"')]
    assert s3_snapshot(a) == s3_snapshot(list(reversed(a)))
    assert s3_snapshot(a) != s3_snapshot([("b", 2, '"x"'), ("a", 1, '"z"')])


def test_boto3_is_the_reference_for_what_was_uploaded(moto_server: MotoServer) -> None:  # noqa: F811
    """Our listing and ETag reading agree with boto3's."""
    s3 = moto_server.boto3_client("s3")
    s3.create_bucket(Bucket="ref")
    for i in range(5):
        s3.put_object(Bucket="ref", Key=f"p/{i}", Body=b"z" * i)
    theirs = {o["Key"][2:]: (o["Size"], o["ETag"]) for o in s3.list_objects_v2(Bucket="ref", Prefix="p/")["Contents"]}
    p = plan(moto_server, "s3://ref/p")
    ours = {f["path"]: (f["size"], f'"{f["digest"]["value"]}"') for f in p.files}
    assert ours == theirs


def test_kms_encrypted_objects_are_unverifiable_with_the_reason(moto_server: MotoServer,  # noqa: F811
                                                                tmp_path: Path) -> None:
    s3 = moto_server.boto3_client("s3")
    s3.create_bucket(Bucket="models")
    s3.put_object(Bucket="models", Key="m/kms.bin", Body=data(1000, 5), ServerSideEncryption="aws:kms")
    s3.put_object(Bucket="models", Key="m/sse-s3.bin", Body=data(1000, 6), ServerSideEncryption="AES256")
    p = plan(moto_server, "s3://models/m")
    by_path = {f["path"]: f for f in p.files}
    assert by_path["kms.bin"]["digest"]["kind"] == "none"
    assert by_path["sse-s3.bin"]["digest"]["kind"] == "md5"
    assert len(p.unverifiable) == 1
    assert p.unverifiable[0][0] == "kms.bin"
    assert "SSE-KMS" in p.unverifiable[0][1]
    report = modelagent.run_download(p.files, tmp_path / "d", options())
    assert {f.path: f.verified for f in report.files} == {"kms.bin": False, "sse-s3.bin": True}
    assert (tmp_path / "d" / "kms.bin").read_bytes() == data(1000, 5)


def test_verify_etag_false_plans_sizes_only(moto_server: MotoServer) -> None:  # noqa: F811
    s3 = moto_server.boto3_client("s3")
    s3.create_bucket(Bucket="models")
    s3.put_object(Bucket="models", Key="m/a.bin", Body=b"abc")
    p = plan(moto_server, "s3://models/m", verify_etag="false")
    assert p.files[0]["digest"]["kind"] == "none"
    assert p.unverifiable == [("a.bin", "ETag verification is off (parameter verify_etag=false)")]
    with pytest.raises(ValueError, match="verify_etag 'maybe'"):
        plan(moto_server, "s3://models/m", verify_etag="maybe")


def test_archived_objects_fail_naming_the_key(moto_server: MotoServer) -> None:  # noqa: F811
    s3 = moto_server.boto3_client("s3")
    s3.create_bucket(Bucket="models")
    s3.put_object(Bucket="models", Key="m/config.json", Body=b"{}")
    s3.put_object(Bucket="models", Key="m/old.bin", Body=b"x", StorageClass="DEEP_ARCHIVE")
    with pytest.raises(modelagent.DownloadError, match=r"s3://models/m/old\.bin is in the DEEP_ARCHIVE storage class"):
        plan(moto_server, "s3://models/m")


class _FakeSts(http.server.ThreadingHTTPServer):
    """An STS endpoint answering AssumeRoleWithWebIdentity with keys that expire after `lifetime`."""

    daemon_threads = True

    def __init__(self, lifetime: datetime.timedelta) -> None:
        super().__init__(("127.0.0.1", 0), _StsHandler)
        self.lifetime = lifetime
        self.fail_after: int | None = None  # answer 500 from this many calls on
        self.hold: threading.Event | None = None  # calls after `hold_after` wait for it before answering
        self.hold_after = 0
        self.tokens: list[str] = []
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class _StsHandler(http.server.BaseHTTPRequestHandler):
    server: _FakeSts

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:
        form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        assert form["Action"] == ["AssumeRoleWithWebIdentity"]
        assert "Authorization" not in self.headers
        with self.server.lock:
            self.server.tokens.append(form["WebIdentityToken"][0])
            n = len(self.server.tokens)
        if self.server.hold is not None and n > self.server.hold_after:
            self.server.hold.wait(timeout=60)
        if self.server.fail_after is not None and n > self.server.fail_after:
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        expires = (datetime.datetime.now(datetime.timezone.utc) + self.server.lifetime).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = (f"<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
                f"<AccessKeyId>ASIAFAKE{n:04d}</AccessKeyId><SecretAccessKey>s{n}</SecretAccessKey>"
                f"<SessionToken>token-{n}</SessionToken><Expiration>{expires}</Expiration></Credentials>"
                f"</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.parametrize(("lifetime_minutes", "many_calls"), [(60, False), (2, True)])
def test_web_identity_keys_are_cached_until_five_minutes_before_expiry(
    moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
    lifetime_minutes: int, many_calls: bool,
) -> None:
    s3 = moto_server.boto3_client("s3")
    s3.create_bucket(Bucket="models")
    for i in range(4):
        s3.put_object(Bucket="models", Key=f"m/{i}.bin", Body=data(3000, i))
    sts = _FakeSts(datetime.timedelta(minutes=lifetime_minutes))
    with serving(sts):
        token = tmp_path / "token"
        token.write_text("first-token")
        monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
        monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r")
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts.endpoint)
        p = plan(moto_server, "s3://models/m", credentials={})
        token.write_text("rotated-token")  # Kubernetes rotates the projected token file
        modelagent.run_download(p.files, tmp_path / "d", options())
    if many_calls:
        # Keys that expire within the refresh margin are fetched again when a request is signed (concurrent
        # requests that find a refresh under way sign with the still-valid keys), and the rotated token is
        # read from the file.
        assert len(sts.tokens) >= 3
        assert sts.tokens[0] == "first-token"
        assert sts.tokens[-1] == "rotated-token"
    else:
        assert sts.tokens == ["first-token"]


def test_failed_early_refresh_keeps_the_still_valid_keys(moto_server: MotoServer, tmp_path: Path,  # noqa: F811
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = moto_server.boto3_client("s3")
    s3.create_bucket(Bucket="models")
    s3.put_object(Bucket="models", Key="m/a.bin", Body=data(3000, 1))
    sts = _FakeSts(datetime.timedelta(minutes=2))  # inside the refresh margin: every request tries to refresh
    sts.fail_after = 1
    with serving(sts):
        (tmp_path / "token").write_text("t")
        monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(tmp_path / "token"))
        monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r")
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts.endpoint)
        p = plan(moto_server, "s3://models/m", credentials={})
        report = modelagent.run_download(p.files, tmp_path / "d", options())
    assert report.files[0].verified
    assert len(sts.tokens) > 2  # refreshes were attempted and failed, the first keys stayed in use


def test_signing_goes_on_with_still_valid_keys_while_another_thread_refreshes(
    moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    s3 = moto_server.boto3_client("s3")
    s3.create_bucket(Bucket="models")
    s3.put_object(Bucket="models", Key="m/a.bin", Body=b"x")
    sts = _FakeSts(datetime.timedelta(minutes=2))  # valid, but inside the refresh margin
    thread = threading.Thread(target=sts.serve_forever, daemon=True)
    thread.start()
    hold = threading.Event()
    try:
        (tmp_path / "token").write_text("t")
        monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(tmp_path / "token"))
        monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r")
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts.endpoint)
        signer = plan(moto_server, "s3://models/m", credentials={}).files[0]["signer"]
        url = f"{moto_server.endpoint}/models/m/a.bin"
        current = len(sts.tokens)  # the keys in use come from the last call
        sts.hold_after = current
        sts.hold = hold
        results: dict[str, list[tuple[str, str]]] = {}
        refresher = threading.Thread(target=lambda: results.update(refresher=signer.sign("GET", url)))
        refresher.start()
        for _ in range(600):  # the refresher's STS call has arrived and is held
            if len(sts.tokens) > current:
                break
            time.sleep(0.05)
        assert len(sts.tokens) == current + 1
        other = threading.Thread(target=lambda: results.update(other=signer.sign("GET", url)))
        other.start()
        other.join(timeout=30)
        assert not other.is_alive(), "a second signer waited for the first one's STS refresh"
        assert f"Credential=ASIAFAKE{current:04d}/" in dict(results["other"])["authorization"]
    finally:
        hold.set()
        sts.shutdown()
        sts.server_close()
    refresher.join(timeout=30)
    assert f"Credential=ASIAFAKE{current + 1:04d}/" in dict(results["refresher"])["authorization"]
    assert len(sts.tokens) == current + 1


class _FailingHeads(http.server.ThreadingHTTPServer):
    """An "S3" listing 200 objects whose every HEAD answers 500."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FailingHeadsHandler)
        self.heads = 0
        self.lock = threading.Lock()


class _FailingHeadsHandler(http.server.BaseHTTPRequestHandler):
    server: _FailingHeads

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        contents = "".join(f"<Contents><Key>m/{i:03d}.bin</Key><Size>1</Size><ETag>\"{'0' * 32}\"</ETag></Contents>"
                           for i in range(200))
        body = f"<ListBucketResult><IsTruncated>false</IsTruncated>{contents}</ListBucketResult>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        with self.server.lock:
            self.server.heads += 1
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_a_failed_head_stops_planning_instead_of_heading_every_object() -> None:
    server = _FailingHeads()
    with serving(server):
        endpoint = f"http://127.0.0.1:{server.server_port}"
        request = SourceRequest(uri="s3://models/m", parameters={"endpoint": endpoint},
                                credentials=dict(SECRET_DATA), options=options(max_attempts=1))
        with pytest.raises(modelagent.HttpStatusError, match=r"HEAD .*models/m/\d{3}\.bin"):
            S3Source().plan(request)
    # The HEADs already under way finish; no new ones start after the first failure.
    assert 1 <= server.heads < 100


class _BrokenListing(http.server.ThreadingHTTPServer):
    """An "S3" whose ListObjectsV2 answer is cut off in the middle."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _BrokenListingHandler)


class _BrokenListingHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        body = b"<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a</Key>"
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_malformed_listing_is_an_error_naming_the_url() -> None:
    server = _BrokenListing()
    with serving(server):
        endpoint = f"http://127.0.0.1:{server.server_port}"
        request = SourceRequest(uri="s3://models/m", parameters={"endpoint": endpoint},
                                credentials=dict(SECRET_DATA), options=options())
        with pytest.raises(modelagent.DownloadError, match=rf"{endpoint}/models/\?list-type=2.*malformed XML"):
            S3Source().plan(request)


class _PartLayoutStore(http.server.ThreadingHTTPServer):
    """An S3-compatible store listing one multipart object `m/w.bin` (`count` parts, `size` bytes). It answers
    `HEAD ?partNumber=k` with the length in `parts` ({k: length}) and with `part_status` for other parts."""

    daemon_threads = True

    def __init__(self, size: int, count: int, parts: dict[int, int], part_status: int = 501) -> None:
        super().__init__(("127.0.0.1", 0), _PartLayoutHandler)
        self.size, self.count, self.parts, self.part_status = size, count, parts, part_status
        self.etag = '"' + "a" * 32 + f'-{count}"'
        self.paths: list[str] = []

    def plan(self) -> Any:
        request = SourceRequest(uri="s3://models/m", parameters={"endpoint": f"http://127.0.0.1:{self.server_port}"},
                                credentials=dict(SECRET_DATA), options=options(max_attempts=1))
        with serving(self):
            return S3Source().plan(request)


class _PartLayoutHandler(http.server.BaseHTTPRequestHandler):
    server: _PartLayoutStore

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        body = (f"<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>m/w.bin</Key>"
                f"<Size>{self.server.size}</Size><ETag>{self.server.etag}</ETag></Contents></ListBucketResult>").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.server.paths.append(self.path)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if "partNumber" not in query:
            self.send_response(200)
            self.send_header("Content-Length", str(self.server.size))
        elif (length := self.server.parts.get(int(query["partNumber"][0]))) is not None:
            self.send_response(206)
            self.send_header("Content-Length", str(length))
            self.send_header("x-amz-mp-parts-count", str(self.server.count))
        else:
            self.send_response(self.server.part_status)
            self.send_header("Content-Length", "0")
        self.send_header("ETag", self.server.etag)
        self.end_headers()


def test_store_without_part_heads_falls_back_to_inferring_the_part_size() -> None:
    store = _PartLayoutStore(20 * MiB + 1, 3, {})
    p = store.plan()
    assert store.paths == ["/models/m/w.bin", "/models/m/w.bin?partNumber=1"]
    # No part size in the plan: the engine tries the likely ones (8 MiB first for 3 parts of 20 MiB + 1 B).
    assert p.files[0]["digest"] == {"kind": "md5-multipart", "value": "a" * 32, "parts": 3}
    assert p.unverifiable == []


def test_first_and_last_part_of_one_part_size_need_no_more_heads() -> None:
    store = _PartLayoutStore(20 * MiB + 1, 3, {1: 8 * MiB, 3: 4 * MiB + 1})
    p = store.plan()
    assert store.paths == ["/models/m/w.bin", "/models/m/w.bin?partNumber=1", "/models/m/w.bin?partNumber=3"]
    assert p.files[0]["digest"] == {"kind": "md5-multipart", "value": "a" * 32, "parts": 3, "part_size": 8 * MiB}


def test_unequal_parts_whose_middle_part_cannot_be_measured_are_unverifiable_with_the_reason() -> None:
    store = _PartLayoutStore(17 * MiB + 10, 3, {1: 5 * MiB, 3: 10}, part_status=404)
    p = store.plan()
    assert sorted(store.paths) == sorted(["/models/m/w.bin"] + [f"/models/m/w.bin?partNumber={k}" for k in (1, 2, 3)])
    assert p.files[0]["digest"]["kind"] == "none"
    assert p.unverifiable == [("w.bin", "multipart object whose parts differ in size and could not be measured: "
                                        "HEAD ?partNumber=2 answered 404")]


def test_measured_parts_that_do_not_add_up_are_unverifiable_with_the_reason() -> None:
    store = _PartLayoutStore(17 * MiB + 10, 3, {1: 5 * MiB, 2: 5 * MiB, 3: 10})
    p = store.plan()
    assert p.files[0]["digest"]["kind"] == "none"
    assert p.unverifiable == [("w.bin", f"multipart object whose 3 parts add up to {10 * MiB + 10} bytes, "
                                        f"not its {17 * MiB + 10}")]


def test_unequal_parts_beyond_the_measuring_limit_are_unverifiable_with_the_reason() -> None:
    store = _PartLayoutStore(5000 * MiB + 1, 1001, {1: 8 * MiB, 1001: 1})
    p = store.plan()
    # Only the first and the last part were asked about, not the 999 in between.
    assert store.paths == ["/models/m/w.bin", "/models/m/w.bin?partNumber=1", "/models/m/w.bin?partNumber=1001"]
    assert p.unverifiable == [("w.bin", f"multipart object whose parts differ in size (part 1 is {8 * MiB} bytes, "
                                        "part 1001 is 1 bytes) and has more than 1000 parts to measure")]


def test_unequal_parts_when_the_last_part_cannot_be_asked_about() -> None:
    store = _PartLayoutStore(17 * MiB + 10, 3, {1: 5 * MiB}, part_status=500)
    p = store.plan()
    assert p.unverifiable == [("w.bin", f"multipart object whose parts differ in size (part 1 is {5 * MiB} bytes; "
                                        f"3 equal parts cannot make {17 * MiB + 10} bytes)")]


class _RevokingStore(http.server.ThreadingHTTPServer):
    """An S3-compatible store with one object that answers S3's ExpiredToken to revoked access keys
    (an error document on GET, a bare 400 on HEAD, as S3 does)."""

    daemon_threads = True
    BODY = data(3 * MiB, 9)

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RevokingStoreHandler)
        self.revoked: set[str] = set()
        self.seen: list[tuple[str, str, int]] = []  # (method, access key id, status)
        self.lock = threading.Lock()


class _RevokingStoreHandler(http.server.BaseHTTPRequestHandler):
    server: _RevokingStore
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)) if self.command != "HEAD" else headers.get("Size", "0"))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        key_id = self.headers.get("Authorization", "").split("Credential=")[-1].split("/")[0]
        with self.server.lock:
            revoked = key_id in self.server.revoked
        body = self.server.BODY
        if revoked:
            status, payload, headers = 400, b"<Error><Code>ExpiredToken</Code></Error>", {}
        elif "list-type=2" in self.path:
            status, headers = 200, {}
            payload = (f"<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>m/w.bin</Key>"
                       f"<Size>{len(body)}</Size><ETag>\"{hashlib.md5(body).hexdigest()}\"</ETag></Contents>"
                       f"</ListBucketResult>").encode()
        elif self.headers.get("Range"):
            first, _, last = self.headers["Range"][len("bytes="):].partition("-")
            start, end = int(first), int(last) + 1
            status, payload = 206, body[start:end]
            headers = {"Content-Range": f"bytes {start}-{end - 1}/{len(body)}"}
        else:
            status, payload = 200, body
            headers = {"ETag": f'"{hashlib.md5(body).hexdigest()}"', "Size": str(len(body))}
        with self.server.lock:
            self.server.seen.append((self.command, key_id, status))
        if self.command == "HEAD" and status == 400:
            payload = b""
        self._answer(status, payload, headers)

    do_GET = _handle
    do_HEAD = _handle


def test_rejected_web_identity_keys_are_renewed_for_listing_head_and_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sts, store = _FakeSts(datetime.timedelta(minutes=60)), _RevokingStore()
    with serving(sts, store):
        token = tmp_path / "token"
        token.write_text("projected-token")
        monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
        monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r")
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts.endpoint)
        store.revoked.add("ASIAFAKE0001")  # the listing is rejected: renewed, listed again
        request = SourceRequest(uri="s3://models/m", parameters={"endpoint": f"http://127.0.0.1:{store.server_port}"},
                                credentials={}, options=options())
        p = S3Source().plan(request)
        assert [(m, k, s) for m, k, s in store.seen] == [("GET", "ASIAFAKE0001", 400), ("GET", "ASIAFAKE0002", 200),
                                                        ("HEAD", "ASIAFAKE0002", 200)]
        store.revoked.add("ASIAFAKE0002")  # every range of the download is rejected: one renewal for all
        report = modelagent.run_download(p.files, tmp_path / "d", options(chunk_size=512 * 1024, connections_per_file=4))
        assert report.files[0].verified and (tmp_path / "d" / "w.bin").read_bytes() == store.BODY
        assert len(sts.tokens) == 3
        assert {k for m, k, s in store.seen[3:] if s in (200, 206)} == {"ASIAFAKE0003"}
        assert {k for m, k, s in store.seen[3:] if s == 400} == {"ASIAFAKE0002"}
