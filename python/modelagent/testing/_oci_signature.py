"""Server-side verification of OCI request signatures (signature version 1, ``rsa-sha256``), as the OCI
services perform it; shared by every fake OCI server in :mod:`modelagent.testing`.

A request carries ``Authorization: Signature version="1",keyId="...",algorithm="rsa-sha256",
headers="date (request-target) host",signature="<base64>"``. The signing string has one
``name: value`` line per listed header (``(request-target)`` is ``<lower-case method> <path?query>``),
joined by ``\\n``; the signature is RSA PKCS#1 v1.5 over SHA-256 of that string.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

__all__ = [
    "SignatureError",
    "key_fingerprint",
    "parse_authorization",
    "user_key_id",
    "verify_request",
]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_BODY_HEADERS = ("content-length", "content-type", "x-content-sha256")
_PARAM = re.compile(r'\s*([A-Za-z]+)\s*=\s*"([^"]*)"\s*(?:,|$)')


class SignatureError(Exception):
    """The request is not authenticated; the service answers ``401 NotAuthenticated``."""

    status = 401
    code = "NotAuthenticated"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_authorization(value: str) -> dict[str, str]:
    """Parses ``Signature k="v",k="v"...`` into a dict (keys as written). Raises SignatureError."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "signature" or not rest.strip():
        raise SignatureError("Authorization header is not an OCI 'Signature' header")
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        match = _PARAM.match(rest, pos)
        if match is None or match.end() == pos:
            raise SignatureError(f"malformed Authorization header near {rest[pos:pos + 40]!r}")
        if match.group(1) in params:
            raise SignatureError(f"Authorization header repeats {match.group(1)!r}")
        params[match.group(1)] = match.group(2)
        pos = match.end()
    return params


def _lookup(headers: Mapping[str, str]) -> Callable[[str], str | None]:
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    return lowered.get


def verify_request(
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    key_lookup: Callable[[str], RSAPublicKey | None],
    *,
    now: float | None = None,
    max_skew: float = 300.0,
    body_headers_required: bool = True,
    host_required: bool = True,
) -> str:
    """Verifies one request's OCI signature and returns its keyId.

    ``target`` is the request target exactly as received (path and query, still percent-encoded);
    ``headers`` is looked up case-insensitively. ``key_lookup(key_id)`` returns the RSA public key for a
    keyId, or None when the key is unknown. ``body_headers_required=False`` accepts POST/PUT requests
    signed without the body headers (as Object Storage PutObject/UploadPart are);
    ``host_required=False`` accepts requests that do not sign ``host`` (the x509 federation call).
    Raises :class:`SignatureError` saying what is wrong.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    get = _lookup(headers)
    authorization = get("authorization")
    if not authorization:
        raise SignatureError("missing Authorization header")
    params = parse_authorization(authorization)
    for name in ("keyId", "signature", "headers"):
        if not params.get(name):
            raise SignatureError(f"Authorization header has no {name}")
    if params.get("version") != "1":
        raise SignatureError(f"unsupported signature version {params.get('version')!r} (expected \"1\")")
    if params.get("algorithm") != "rsa-sha256":
        raise SignatureError(f"unsupported algorithm {params.get('algorithm')!r} (expected \"rsa-sha256\")")
    key_id = params["keyId"]
    signed = params["headers"].lower().split()

    method = method.upper()
    required = ["(request-target)"]
    if host_required:
        required.append("host")
    if method in _BODY_METHODS and body_headers_required:
        required.extend(_BODY_HEADERS)
    missing = [name for name in required if name not in signed]
    if "date" not in signed and "x-date" not in signed:
        missing.insert(0, "date")
    if missing:
        raise SignatureError(f"signature does not cover required headers: {' '.join(missing)}")

    lines = []
    for name in signed:
        if name == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {target}")
            continue
        value = get(name)
        if value is None:
            raise SignatureError(f"signed header {name!r} is not in the request")
        lines.append(f"{name}: {value}")

    if "x-content-sha256" in signed:
        expected = base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")
        if get("x-content-sha256") != expected:
            raise SignatureError("x-content-sha256 does not match the request body")
    if "content-length" in signed:
        try:
            declared = int(get("content-length") or "")
        except ValueError:
            raise SignatureError(f"content-length {get('content-length')!r} is not a number") from None
        if declared != len(body):
            raise SignatureError(f"content-length {declared} does not match the body ({len(body)} bytes)")

    date_name = "x-date" if "x-date" in signed else "date"
    date_value = get(date_name) or ""
    try:
        sent = parsedate_to_datetime(date_value).timestamp()
    except (TypeError, ValueError, IndexError):
        raise SignatureError(f"{date_name} header {date_value!r} is not an RFC 1123 date") from None
    current = time.time() if now is None else now
    if abs(current - sent) > max_skew:
        raise SignatureError(
            f"{date_name} {date_value!r} is {abs(current - sent):.0f}s away from the server clock "
            f"(allowed {max_skew:.0f}s)"
        )

    public_key = key_lookup(key_id)
    if public_key is None:
        raise SignatureError(f"unknown keyId {key_id!r}")
    try:
        signature = base64.b64decode(params["signature"], validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("signature is not valid base64") from None
    try:
        public_key.verify(signature, "\n".join(lines).encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise SignatureError(f"signature does not verify for keyId {key_id!r}") from None
    return key_id


def key_fingerprint(public_key: Any) -> str:
    """Colon-separated MD5 of the DER SubjectPublicKeyInfo (an OCI API key's fingerprint).

    Accepts a public key or a private key (its public half is used).
    """
    from cryptography.hazmat.primitives import serialization

    if hasattr(public_key, "public_key"):
        public_key = public_key.public_key()
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.md5(der).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def user_key_id(tenancy: str, user: str, public_key: Any) -> str:
    """The keyId a user principal signs with: ``<tenancy>/<user>/<fingerprint>``."""
    return f"{tenancy}/{user}/{key_fingerprint(public_key)}"
