"""Our SigV4 Authorization header equals botocore's (``S3SigV4Auth`` on an ``AWSRequest``) for the same
request, keys and (frozen) time."""

from __future__ import annotations

import datetime
from unittest import mock
from urllib.parse import quote

import botocore.auth as botocore_auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from modelagent import _core

AMZ_DATE = "20240305T071122Z"
WHEN = datetime.datetime(2024, 3, 5, 7, 11, 22)
KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def botocore_headers(
    method: str,
    url: str,
    headers: dict[str, str],
    *,
    token: str | None = None,
    region: str = "us-east-1",
    unsigned_payload: bool = False,
    body: bytes = b"",
) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    if unsigned_payload:
        request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    auth = botocore_auth.S3SigV4Auth(Credentials(KEY_ID, SECRET, token), "s3", region)
    with mock.patch("botocore.auth.get_current_datetime", return_value=WHEN):
        auth.add_auth(request)
    return {k.lower(): v for k, v in request.headers.items()}


def our_headers(
    method: str,
    url: str,
    headers: dict[str, str],
    *,
    token: str = "",
    region: str = "us-east-1",
    unsigned_payload: bool = False,
    body: str = "",
) -> dict[str, str]:
    signer = _core.S3Signer(KEY_ID, SECRET, token, region=region, unsigned_payload=unsigned_payload)
    result = signer.sign_at(method, url, body, list(headers.items()), amz_date=AMZ_DATE)
    return {k.lower(): v for k, v in result["headers"]}


def assert_same(ours: dict[str, str], theirs: dict[str, str]) -> None:
    assert ours["authorization"] == theirs["authorization"]
    for name in ("x-amz-date", "x-amz-content-sha256", "x-amz-security-token"):
        assert ours.get(name) == theirs.get(name), name


def object_url(endpoint: str, key: str) -> str:
    return f"{endpoint}/{quote(key, safe='/~')}"


def test_get_with_range_virtual_hosted() -> None:
    url = "https://models.s3.eu-west-1.amazonaws.com/llama/model-00001-of-00002.safetensors"
    headers = {"Range": "bytes=0-1048575"}
    assert_same(our_headers("GET", url, headers, region="eu-west-1"),
                botocore_headers("GET", url, headers, region="eu-west-1"))


def test_unsigned_payload_get_matches_botocore_with_payload_signing_disabled() -> None:
    url = "https://models.s3.us-west-2.amazonaws.com/llama/config.json"
    ours = our_headers("GET", url, {}, region="us-west-2", unsigned_payload=True)
    theirs = botocore_headers("GET", url, {}, region="us-west-2", unsigned_payload=True)
    assert ours["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert_same(ours, theirs)


def test_list_objects_v2_with_query() -> None:
    url = ("http://127.0.0.1:9000/models/?continuation-token=1ueGcxLPRx1Tr%2FXYExHnhbYLgveDs2J%2Fwm36Hy4vbOwM%3D"
           "&encoding-type=url&list-type=2&max-keys=4&prefix=llama%2Fv1%20final%2F")
    assert_same(our_headers("GET", url, {}), botocore_headers("GET", url, {}))


@pytest.mark.parametrize(
    "key",
    [
        "dir with spaces/file name.json",
        "unicode/模型/權重-é.safetensors",
        "special/a+b=c&d;e,f@g$h'(i)!*.bin",
        "tilde~and%percent/x#y?z.txt",
    ],
)
def test_keys_with_special_characters(key: str) -> None:
    url = object_url("http://127.0.0.1:9000/models", key)
    headers = {"Range": "bytes=100-199"}
    assert_same(our_headers("GET", url, headers), botocore_headers("GET", url, headers))


def test_session_token() -> None:
    url = "https://models.s3.amazonaws.com/llama/tokenizer.json"
    token = "FwoGZXIvYXdzEJr//////////wEaDOOlHjS+example/session+token=="
    ours = our_headers("GET", url, {}, token=token)
    theirs = botocore_headers("GET", url, {}, token=token)
    assert ours["x-amz-security-token"] == token
    assert "x-amz-security-token" in ours["authorization"]
    assert_same(ours, theirs)


def test_post_with_body_hash() -> None:
    url = "https://models.s3.amazonaws.com/llama/big.bin?uploads="
    body = "<CompleteMultipartUpload/>"
    headers = {"Content-Type": "application/xml"}
    assert_same(our_headers("POST", url, headers, body=body),
                botocore_headers("POST", url, headers, body=body.encode()))


def test_a_different_secret_gives_a_different_signature() -> None:
    url = "https://models.s3.amazonaws.com/k"
    theirs = botocore_headers("GET", url, {})
    other = _core.S3Signer(KEY_ID, SECRET + "x").sign_at("GET", url, "", [], amz_date=AMZ_DATE)
    assert other["authorization"] != theirs["authorization"]
