"""Our OCI request signer against the official ``oci`` Python SDK: for the same request, key and date the
Authorization header (and every header it signs) must be identical. RSA PKCS#1 v1.5 signatures are
deterministic, so any difference in the signing string shows up as a different signature."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import oci
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from modelagent import _core
from modelagent.testing._oci_signature import SignatureError, key_fingerprint, verify_request
from modelagent.testing.oci_identity import generate_rsa_key, private_key_pem

DATE = "Fri, 27 Nov 2026 15:44:28 GMT"
TENANCY = "ocid1.tenancy.oc1..aaaaaaaaparitytenancy"
USER = "ocid1.user.oc1..aaaaaaaaparityuser"
OS = "https://objectstorage.us-phoenix-1.oraclecloud.com"

CASES = [
    ("GET", f"{OS}/n/", None, {}),
    ("GET", f"{OS}/n/axabc123/b/models/o?prefix=llama%2F&fields=name,size,md5&limit=1000", None, {}),
    ("GET", f"{OS}/n/axabc123/b/models/o/llama%2Fmodel-00001-of-00002.safetensors", None, {}),
    ("GET", f"{OS}/n/axabc123/b/models/o/dir/with%20space/%E2%9C%93.json?versionId=v1", None, {}),
    ("HEAD", f"{OS}/n/axabc123/b/models/o/config.json", None, {}),
    ("DELETE", f"{OS}/n/axabc123/b/models/o/old.bin", None, {}),
    ("GET", "https://127.0.0.1:8443/n/ns/b/bk/o?start=a%20b", None, {}),
    ("PUT", f"{OS}/n/axabc123/b/models/o/weights.bin", b"\x00\x01binary\xff", {"content-type": "application/octet-stream"}),
    ("POST", f"{OS}/n/axabc123/b/models/actions/listObjects", b'{"prefix": "llama/", "limit": 5}', {}),
    ("POST", "https://auth.example.com/v1/x509", b'{"certificate": "MIIB"}', {"content-type": "application/json"}),
    ("PUT", f"{OS}/n/axabc123/b/models/o/empty", b"", {}),
]


@pytest.fixture(scope="module")
def key() -> RSAPrivateKey:
    return generate_rsa_key()


def _sdk_headers(
    signer: object, method: str, url: str, body: bytes | None, headers: dict[str, str], **kw: bool
) -> dict[str, str]:
    request = requests.Request(method, url, data=body, headers={"date": DATE, **headers}).prepare()
    assert request.url == url, "requests rewrote the URL; the comparison would not be like for like"
    signer(request, **kw)  # type: ignore[operator]
    return {k.lower(): v for k, v in request.headers.items()}


def _our_headers(
    method: str, url: str, body: bytes | None, headers: dict[str, str], key_id: str, pem: str, **kw: bool
) -> dict[str, str]:
    signed = _core.oci_sign_request(method, url, list(headers.items()), body or b"", key_id, pem, DATE, **kw)
    assert len({k.lower() for k, _ in signed}) == len(signed), f"duplicate headers: {signed}"
    return {k.lower(): v for k, v in signed}


def _user_signer(key: RSAPrivateKey) -> tuple[oci.signer.Signer, str, str]:
    """The SDK's API-key signer for `key`, our keyId for it and the key's PEM."""
    pem = private_key_pem(key)
    fingerprint = key_fingerprint(key)
    sdk_signer = oci.signer.Signer(TENANCY, USER, fingerprint, None, private_key_content=pem)
    return sdk_signer, f"{TENANCY}/{USER}/{fingerprint}", pem


@pytest.mark.parametrize(("method", "url", "body", "headers"), CASES, ids=[f"{c[0]} {c[1][-40:]}" for c in CASES])
def test_user_principal_signature_equals_the_sdk(
    key: RSAPrivateKey, method: str, url: str, body: bytes | None, headers: dict[str, str]
) -> None:
    sdk_signer, key_id, pem = _user_signer(key)
    sdk = _sdk_headers(sdk_signer, method, url, body, headers)
    ours = _our_headers(method, url, body, headers, key_id, pem)
    assert ours["authorization"] == sdk["authorization"]
    for name in ("date", "host", "content-length", "content-type", "x-content-sha256"):
        if name in ours or method in ("PUT", "POST"):
            assert ours.get(name) == sdk.get(name), name


@pytest.mark.parametrize(("method", "url", "body", "headers"), [c for c in CASES if c[0] == "PUT"])
def test_object_upload_signature_without_body_headers_equals_the_sdk(
    key: RSAPrivateKey, method: str, url: str, body: bytes | None, headers: dict[str, str]
) -> None:
    sdk_signer, key_id, pem = _user_signer(key)
    sdk = _sdk_headers(sdk_signer, method, url, body, headers, enforce_content_headers=False)
    ours = _our_headers(method, url, body, headers, key_id, pem, body_headers=False)
    assert ours["authorization"] == sdk["authorization"]
    assert 'headers="date (request-target) host"' in ours["authorization"]


def test_session_token_signature_equals_the_sdk(key: RSAPrivateKey) -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjQwMDAwMDAwMDB9.c2ln"
    sdk_signer = oci.auth.signers.SecurityTokenSigner(token, key)
    for method, url, body, headers in CASES:
        sdk = _sdk_headers(sdk_signer, method, url, body, headers)
        ours = _our_headers(method, url, body, headers, f"ST${token}", private_key_pem(key))
        assert ours["authorization"] == sdk["authorization"], f"{method} {url}"


def test_federation_signature_without_host_equals_the_sdk_scheme(key: RSAPrivateKey) -> None:
    # The SDK's federation signer signs "date (request-target)" plus the body headers, never host.
    sdk_signer = oci.signer.AbstractBaseSigner()
    key_id = f"{TENANCY}/fed-x509-sha256/AB:CD"
    body_headers = ["content-length", "content-type", "x-content-sha256"]
    sdk_signer.create_signers(key_id, key, ["date", "(request-target)"], body_headers)
    url = "https://auth.us-phoenix-1.oraclecloud.com/v1/x509"
    body = b'{"certificate": "MIIB", "publicKey": "MIIB"}'
    sdk = _sdk_headers(sdk_signer, "POST", url, body, {"content-type": "application/json"})
    json_type = {"content-type": "application/json"}
    ours = _our_headers("POST", url, body, json_type, key_id, private_key_pem(key), host=False)
    assert ours["authorization"] == sdk["authorization"]
    assert "host" not in ours


@pytest.mark.parametrize("pkcs8", [False, True])
def test_encrypted_keys_sign_like_plain_ones(key: RSAPrivateKey, pkcs8: bool) -> None:
    plain = _our_headers("GET", f"{OS}/n/", None, {}, "k", private_key_pem(key))
    encrypted_pem = private_key_pem(key, passphrase="pass phrase", pkcs8=pkcs8)
    signed = _core.oci_sign_request("GET", f"{OS}/n/", [], b"", "k", encrypted_pem, DATE, "pass phrase")
    assert dict(signed)["authorization"] == plain["authorization"]
    with pytest.raises(_core.CredentialsError, match="wrong passphrase"):
        _core.oci_sign_request("GET", f"{OS}/n/", [], b"", "k", encrypted_pem, DATE, "nope")


def test_the_fake_services_verifier_accepts_sdk_requests_and_rejects_tampering(key: RSAPrivateKey) -> None:
    """The verifier the fakes share agrees with the SDK too (so a fake's 401 means our signer is wrong)."""
    sdk_signer, key_id, _ = _user_signer(key)
    lookup = {key_id: key.public_key()}.get
    now = parsedate_to_datetime(DATE).timestamp()
    for method, url, body, headers in CASES:
        sdk = _sdk_headers(sdk_signer, method, url, body, headers)
        target = url.split("://", 1)[1]
        target = target[target.index("/") :] if "/" in target else "/"
        assert verify_request(method, target, sdk, body or b"", lookup, now=now) == key_id
        with pytest.raises(SignatureError, match="does not verify"):
            verify_request(method, target + "x", sdk, body or b"", lookup, now=now)
    with pytest.raises(SignatureError, match="away from the server clock"):
        verify_request("GET", "/n/", _sdk_headers(sdk_signer, "GET", f"{OS}/n/", None, {}), b"", lookup, now=now + 301)


def _signed(key: RSAPrivateKey, method: str, body: bytes = b"", **kw: bool) -> dict[str, str]:
    return _our_headers(method, f"{OS}/n/ns/b/bk/o/x", body, {}, "kid", private_key_pem(key), **kw)


def test_verifier_enforces_the_required_headers_per_method(key: RSAPrivateKey) -> None:
    now = parsedate_to_datetime(DATE).timestamp()
    lookup = {"kid": key.public_key()}.get

    def check(method: str, headers: dict[str, str], body: bytes = b"", **kw: bool) -> str:
        return verify_request(method, "/n/ns/b/bk/o/x", headers, body, lookup, now=now, **kw)

    assert check("GET", _signed(key, "GET")) == "kid"
    unsigned_body = _signed(key, "PUT", b"data", body_headers=False)
    with pytest.raises(SignatureError, match="required headers: content-length content-type x-content-sha256"):
        check("PUT", unsigned_body, b"data")
    assert check("PUT", unsigned_body, b"data", body_headers_required=False) == "kid"
    no_host = _signed(key, "POST", b"{}", host=False)
    with pytest.raises(SignatureError, match="required headers: host"):
        check("POST", no_host, b"{}")
    assert check("POST", no_host, b"{}", host_required=False) == "kid"
    with pytest.raises(SignatureError, match="x-content-sha256 does not match"):
        check("POST", _signed(key, "POST", b"{}"), b"{ }")
    with pytest.raises(SignatureError, match="unknown keyId 'kid'"):
        verify_request("GET", "/n/ns/b/bk/o/x", _signed(key, "GET"), b"", lambda _: None, now=now)
    headers = _signed(key, "GET")
    for old, new, why in [
        ('version="1"', 'version="2"', "unsupported signature version"),
        ("rsa-sha256", "hmac-sha256", "unsupported algorithm"),
        ('headers="date (request-target) host"', 'headers="(request-target) host"', "required headers: date"),
    ]:
        with pytest.raises(SignatureError, match=why):
            check("GET", headers | {"authorization": headers["authorization"].replace(old, new)})
    with pytest.raises(SignatureError, match="missing Authorization"):
        check("GET", {k: v for k, v in headers.items() if k != "authorization"})
    with pytest.raises(SignatureError, match="not an OCI 'Signature' header"):
        check("GET", headers | {"authorization": "Bearer abc"})
    error = SignatureError("x")
    assert (error.status, error.code) == (401, "NotAuthenticated")
