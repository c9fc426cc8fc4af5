"""Fake OCI identity services on 127.0.0.1, for tests of every OCI principal:

* :class:`FakeInstanceMetadata` - the instance metadata service (``/opc/v2``: region, identity
  certificate, key and intermediate), answering only ``Authorization: Bearer Oracle``;
* :class:`FakeFederation` - the x509 federation endpoint (``POST /v1/x509``) that checks the
  leaf-certificate signature and issues session tokens;
* :class:`FakeInstanceIdentity` - both of them wired together (what an instance principal needs);
* :class:`FakeOkeProxymux` - the OKE workload-identity proxymux over HTTPS with its own CA;
* :class:`ResourcePrincipalCredentials` - version 2.2 resource-principal environment variables;
* :func:`write_oci_config` - an OCI config file plus API key for user principals.

Each exposes ``key_lookup(key_id)`` returning the RSA public key a fake OCI service should verify a
signature with (``ST$<token>`` for tokens it issued and that have not expired), so a fake Object Storage
can accept requests from any of these principals: pass ``combine_key_lookups(a.key_lookup, ...)``.
Servers run between ``start()`` and ``stop()`` (or in a ``with`` block) and count requests in ``counters``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
import os
import secrets
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.x509.oid import NameOID

from modelagent.testing._oci_signature import SignatureError, key_fingerprint, user_key_id, verify_request

__all__ = [
    "FakeFederation",
    "FakeInstanceIdentity",
    "FakeInstanceMetadata",
    "FakeOkeProxymux",
    "IdentityCertificates",
    "OciUserCredentials",
    "ResourcePrincipalCredentials",
    "TokenIssuer",
    "combine_key_lookups",
    "generate_rsa_key",
    "private_key_pem",
    "write_oci_config",
]

KeyLookup = Callable[[str], "RSAPublicKey | None"]

# --------------------------------------------------------------------------------------------------
# Keys, certificates and tokens


def generate_rsa_key(bits: int = 2048) -> RSAPrivateKey:
    """A fresh RSA private key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_key_pem(key: RSAPrivateKey, *, passphrase: str | None = None, pkcs8: bool = False) -> str:
    """PEM text of `key`: PKCS#1 ("RSA PRIVATE KEY") unless `pkcs8`; encrypted when `passphrase` is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    )
    fmt = serialization.PrivateFormat.PKCS8 if pkcs8 else serialization.PrivateFormat.TraditionalOpenSSL
    return key.private_bytes(serialization.Encoding.PEM, fmt, encryption).decode("ascii")


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _pem_body(pem: str) -> str:
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _issue_cert(
    subject: x509.Name,
    public_key: RSAPublicKey,
    issuer: x509.Name,
    issuer_key: RSAPrivateKey,
    *,
    ca: bool,
    san_ip: str | None = None,
) -> x509.Certificate:
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san_ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(san_ip))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def combine_key_lookups(*lookups: KeyLookup) -> KeyLookup:
    """One lookup asking each of `lookups` in turn (for a fake service trusting several principals)."""

    def lookup(key_id: str) -> RSAPublicKey | None:
        for candidate in lookups:
            key = candidate(key_id)
            if key is not None:
                return key
        return None

    return lookup


class TokenIssuer:
    """Issues JWT-shaped session tokens bound to a session public key, and resolves ``ST$<token>`` keyIds.

    The tokens' signature part is random: only this issuer can tell a token is genuine, by remembering it.
    A token past its ``exp`` no longer resolves (the service would answer 401).
    """

    def __init__(self, tenancy: str, lifetime: float = 1200.0, clock: Callable[[], float] = time.time) -> None:
        self.tenancy = tenancy
        self.lifetime = lifetime
        self.clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[RSAPublicKey, float]] = {}
        self.issued: list[str] = []

    def issue(self, public_key: RSAPublicKey, *, subject: str = "ocid1.instance.oc1..fake", **claims: Any) -> str:
        """A new token for `public_key`, valid for ``lifetime`` seconds from now."""
        now = self.clock()
        payload = {
            "sub": subject,
            "res_tenant": self.tenancy,
            "tenant": self.tenancy,
            "iat": int(now),
            "exp": int(now + self.lifetime),
            "jti": secrets.token_hex(8),
            **claims,
        }
        header = {"alg": "RS256", "typ": "JWT", "kid": "fake"}
        token = ".".join(
            [
                _b64url(json.dumps(header).encode()),
                _b64url(json.dumps(payload).encode()),
                _b64url(secrets.token_bytes(32)),
            ]
        )
        with self._lock:
            self._tokens[token] = (public_key, now + self.lifetime)
            self.issued.append(token)
        return token

    def revoke_all(self) -> int:
        """Forget every token issued so far (the service answers 401 to them); returns how many."""
        with self._lock:
            count = len(self._tokens)
            self._tokens.clear()
        return count

    def key_lookup(self, key_id: str) -> RSAPublicKey | None:
        """The session public key of ``ST$<token>``, or None (unknown, revoked or expired token)."""
        if not key_id.startswith("ST$"):
            return None
        with self._lock:
            entry = self._tokens.get(key_id[3:])
        if entry is None or entry[1] <= self.clock():
            return None
        return entry[0]


@dataclasses.dataclass
class IdentityCertificates:
    """A test PKI as IMDS serves it: root CA → intermediate CA → leaf for one instance of `tenancy`."""

    tenancy: str
    root_key: RSAPrivateKey
    root: x509.Certificate
    intermediate_key: RSAPrivateKey
    intermediate: x509.Certificate
    leaf_key: RSAPrivateKey
    leaf: x509.Certificate

    @classmethod
    def generate(cls, tenancy: str = "ocid1.tenancy.oc1..faketenancy") -> IdentityCertificates:
        """Fresh keys and certificates; the leaf subject carries ``opc-tenant:<tenancy>``."""
        root_key, intermediate_key, leaf_key = (generate_rsa_key() for _ in range(3))
        root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelagent fake OCI root")])
        inter_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelagent fake OCI intermediate")])
        leaf_name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, "ocid1.instance.oc1..fakeinstance"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "opc-certtype:instance"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "opc-compartment:ocid1.compartment.oc1..fake"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"opc-tenant:{tenancy}"),
            ]
        )
        root = _issue_cert(root_name, root_key.public_key(), root_name, root_key, ca=True)
        intermediate = _issue_cert(inter_name, intermediate_key.public_key(), root_name, root_key, ca=True)
        leaf = _issue_cert(leaf_name, leaf_key.public_key(), inter_name, intermediate_key, ca=False)
        return cls(tenancy, root_key, root, intermediate_key, intermediate, leaf_key, leaf)

    @property
    def leaf_pem(self) -> str:
        return _cert_pem(self.leaf)

    @property
    def leaf_key_pem(self) -> str:
        return private_key_pem(self.leaf_key)

    @property
    def intermediate_pem(self) -> str:
        return _cert_pem(self.intermediate)

    @property
    def federation_key_id(self) -> str:
        """``<tenancy>/fed-x509-sha256/<SHA-256 fingerprint of the leaf, colon-separated upper-case hex>``."""
        digest = self.leaf.fingerprint(hashes.SHA256()).hex().upper()
        return f"{self.tenancy}/fed-x509-sha256/" + ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


# --------------------------------------------------------------------------------------------------
# A tiny threaded HTTP(S) server


@dataclasses.dataclass
class _Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"


def _json_reply(status: int, payload: Any) -> _Reply:
    return _Reply(status, json.dumps(payload).encode())


def _error(status: int, code: str, message: str) -> _Reply:
    return _json_reply(status, {"code": code, "message": message})


class _FakeServer:
    """Base of the fakes: a ThreadingHTTPServer on 127.0.0.1 in a daemon thread calling :meth:`handle`."""

    name = "fake"

    def __init__(self, *, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self._port = port
        self._tls = tls
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.counters: Counter[str] = Counter()
        self.errors: list[str] = []

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> _FakeServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                with fake._lock:
                    fake.counters[f"{self.command} {self.path.split('?')[0]}"] += 1
                try:
                    reply = fake.handle(self.command, self.path, headers, body)
                except Exception as exc:  # a bug in the fake must be loud, not a retryable 5xx
                    fake.errors.append(f"{self.command} {self.path}: {exc!r}")
                    reply = _error(500, "FakeServerBug", repr(exc))
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.send_header("opc-request-id", secrets.token_hex(8))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _serve

        server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        server.daemon_threads = True
        if self._tls is not None:
            server.socket = self._tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(5)
            self._server = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Reply:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------------
# Instance principal: IMDS + federation


class FakeInstanceMetadata(_FakeServer):
    """The instance metadata service at ``url`` (= ``http://127.0.0.1:<port>/opc/v2``).

    Serves ``instance/region`` (``region``, a short code such as ``phx`` by default) and
    ``identity/{cert,key,intermediate}.pem`` of `certificates`; 401 without ``Authorization: Bearer Oracle``.
    """

    name = "fake IMDS"

    def __init__(self, certificates: IdentityCertificates, region: str = "phx", *, port: int = 0) -> None:
        super().__init__(port=port)
        self.certificates = certificates
        self.region = region

    @property
    def url(self) -> str:
        return self.base_url + "/opc/v2"

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Reply:
        if headers.get("authorization") != "Bearer Oracle":
            return _error(401, "NotAuthenticated", "IMDS v2 requires 'Authorization: Bearer Oracle'")
        if method != "GET":
            return _error(405, "MethodNotAllowed", method)
        documents = {
            "/opc/v2/instance/region": self.region,
            "/opc/v2/identity/cert.pem": self.certificates.leaf_pem,
            "/opc/v2/identity/key.pem": self.certificates.leaf_key_pem,
            "/opc/v2/identity/intermediate.pem": self.certificates.intermediate_pem,
        }
        text = documents.get(target)
        if text is None:
            return _error(404, "NotFound", target)
        return _Reply(200, text.encode(), "text/plain")


class FakeFederation(_FakeServer):
    """The x509 federation endpoint at ``url`` (clients POST ``/v1/x509``).

    Verifies the request signature with the leaf certificate's key (keyId
    ``<tenancy>/fed-x509-sha256/<fingerprint>``, signed headers without ``host``) and the payload against
    `certificates`, then issues a token for the session key in the payload. ``fail_status`` makes every
    call fail with that status; ``issuer.lifetime`` sets how long tokens live.
    """

    name = "fake federation"

    def __init__(
        self, certificates: IdentityCertificates, *, token_lifetime: float = 1200.0, port: int = 0
    ) -> None:
        super().__init__(port=port)
        self.certificates = certificates
        self.issuer = TokenIssuer(certificates.tenancy, token_lifetime)
        self.fail_status: int | None = None
        self.session_keys: list[RSAPublicKey] = []

    @property
    def url(self) -> str:
        return self.base_url

    @property
    def token_requests(self) -> int:
        return self.counters["POST /v1/x509"]

    def key_lookup(self, key_id: str) -> RSAPublicKey | None:
        return self.issuer.key_lookup(key_id)

    def _leaf_lookup(self, key_id: str) -> RSAPublicKey | None:
        if key_id == self.certificates.federation_key_id:
            return self.certificates.leaf_key.public_key()
        return None

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Reply:
        if self.fail_status is not None:
            return _error(self.fail_status, "NotAuthenticated", "scripted federation failure")
        if method != "POST" or target != "/v1/x509":
            return _error(404, "NotFound", f"{method} {target}")
        try:
            verify_request(method, target, headers, body, self._leaf_lookup, host_required=False)
        except SignatureError as exc:
            return _error(exc.status, exc.code, exc.message)
        try:
            payload = json.loads(body)
            certificate = payload["certificate"]
            public_key_b64 = payload["publicKey"]
            intermediates = payload.get("intermediateCertificates", [])
        except (ValueError, KeyError, TypeError) as exc:
            return _error(400, "InvalidParameter", f"malformed x509 federation request: {exc!r}")
        if certificate != _pem_body(self.certificates.leaf_pem):
            return _error(401, "NotAuthenticated", "certificate is not the instance's leaf certificate")
        if intermediates != [_pem_body(self.certificates.intermediate_pem)]:
            return _error(401, "NotAuthenticated", "intermediateCertificates do not chain the leaf")
        if payload.get("fingerprintAlgorithm") != "SHA256" or payload.get("purpose") != "DEFAULT":
            return _error(400, "InvalidParameter", "expected fingerprintAlgorithm SHA256 and purpose DEFAULT")
        try:
            session_key = serialization.load_der_public_key(base64.b64decode(public_key_b64))
        except ValueError as exc:
            return _error(400, "InvalidParameter", f"publicKey is not a DER public key: {exc}")
        assert isinstance(session_key, RSAPublicKey)
        with self._lock:
            self.session_keys.append(session_key)
        return _json_reply(200, {"token": self.issuer.issue(session_key)})


class FakeInstanceIdentity:
    """IMDS and federation for one instance, started together; what an instance principal talks to.

    ``oci_principal("InstancePrincipal", **identity.principal_kwargs())`` signs as this instance;
    ``key_lookup`` resolves the session tokens it obtains.
    """

    def __init__(
        self, tenancy: str = "ocid1.tenancy.oc1..faketenancy", region: str = "phx", *, token_lifetime: float = 1200.0
    ) -> None:
        self.certificates = IdentityCertificates.generate(tenancy)
        self.metadata = FakeInstanceMetadata(self.certificates, region)
        self.federation = FakeFederation(self.certificates, token_lifetime=token_lifetime)

    @property
    def tenancy(self) -> str:
        return self.certificates.tenancy

    @property
    def metadata_url(self) -> str:
        return self.metadata.url

    @property
    def federation_url(self) -> str:
        return self.federation.url

    @property
    def url(self) -> str:
        return self.metadata.url

    def key_lookup(self, key_id: str) -> RSAPublicKey | None:
        return self.federation.key_lookup(key_id)

    def principal_kwargs(self) -> dict[str, str]:
        return {"metadata_endpoint": self.metadata_url, "federation_endpoint": self.federation_url}

    def env(self) -> dict[str, str]:
        """The environment variables pointing an agent at these fakes."""
        return {"OCI_METADATA_BASE_URL": self.metadata_url, "OCI_FEDERATION_ENDPOINT": self.federation_url}

    def start(self) -> FakeInstanceIdentity:
        self.metadata.start()
        try:
            self.federation.start()
        except BaseException:
            self.metadata.stop()
            raise
        return self

    def stop(self) -> None:
        self.federation.stop()
        self.metadata.stop()

    def __enter__(self) -> FakeInstanceIdentity:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------------
# OKE workload identity


class FakeOkeProxymux(_FakeServer):
    """The OKE proxymux over HTTPS at ``url`` (``https://127.0.0.1:<port>/resourcePrincipalSessionTokens``).

    Generates a CA and a server certificate for 127.0.0.1 and writes, under `directory`, the files a pod
    has: ``ca.crt`` (``ca_path``) and the service-account ``token`` (``token_path``). Requests must carry
    ``Authorization: Bearer <that token>`` and ``{"podKey": <base64 DER public key>}``; the answer is
    base64 of ``{"token": "ST$<jwt>"}``.
    """

    name = "fake OKE proxymux"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        tenancy: str = "ocid1.tenancy.oc1..faketenancy",
        *,
        token_lifetime: float = 1200.0,
        port: int = 0,
    ) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        ca_key, server_key = generate_rsa_key(), generate_rsa_key()
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelagent fake OKE cluster CA")])
        ca = _issue_cert(ca_name, ca_key.public_key(), ca_name, ca_key, ca=True)
        server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        server_cert = _issue_cert(server_name, server_key.public_key(), ca_name, ca_key, ca=False, san_ip="127.0.0.1")
        self.ca_path = directory / "ca.crt"
        self.ca_path.write_text(_cert_pem(ca))
        chain = directory / "proxymux.pem"
        chain.write_text(_cert_pem(server_cert) + private_key_pem(server_key))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain)
        super().__init__(port=port, tls=context)
        claims = _b64url(json.dumps({"sub": "system:serviceaccount:ns:sa"}).encode())
        self.sa_token = f"eyJhbGciOiJSUzI1NiJ9.{claims}.sig"
        self.token_path = directory / "token"
        self.token_path.write_text(self.sa_token)
        self.issuer = TokenIssuer(tenancy, token_lifetime)
        self.fail_status: int | None = None

    @property
    def url(self) -> str:
        return self.base_url + "/resourcePrincipalSessionTokens"

    @property
    def token_requests(self) -> int:
        return self.counters["POST /resourcePrincipalSessionTokens"]

    def key_lookup(self, key_id: str) -> RSAPublicKey | None:
        return self.issuer.key_lookup(key_id)

    def principal_kwargs(self) -> dict[str, str]:
        return {"oke_endpoint": self.url, "oke_token_path": str(self.token_path), "oke_ca_path": str(self.ca_path)}

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Reply:
        if self.fail_status is not None:
            return _error(self.fail_status, "NotAuthenticated", "scripted proxymux failure")
        if method != "POST" or target != "/resourcePrincipalSessionTokens":
            return _error(404, "NotFound", f"{method} {target}")
        if headers.get("authorization") != f"Bearer {self.sa_token}":
            return _error(401, "NotAuthenticated", "service-account token missing or wrong")
        try:
            pod_key = serialization.load_der_public_key(base64.b64decode(json.loads(body)["podKey"]))
        except (ValueError, KeyError, TypeError) as exc:
            return _error(400, "InvalidParameter", f"podKey is not a base64 DER public key: {exc!r}")
        assert isinstance(pod_key, RSAPublicKey)
        token = self.issuer.issue(pod_key, subject="ocid1.workload.oc1..fake")
        return _Reply(200, base64.b64encode(json.dumps({"token": "ST$" + token}).encode()), "application/json")


# --------------------------------------------------------------------------------------------------
# Resource principal and user principal credentials


class ResourcePrincipalCredentials:
    """A version 2.2 resource principal: a session token and its private key, as environment variables.

    ``env(inline=False)`` points the variables at files written under `directory`; ``inline=True`` puts
    the token and PEM in the variables themselves.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        tenancy: str = "ocid1.tenancy.oc1..faketenancy",
        region: str = "us-ashburn-1",
        *,
        passphrase: str | None = None,
        token_lifetime: float = 1200.0,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.region = region
        self.passphrase = passphrase
        self.key = generate_rsa_key()
        self.issuer = TokenIssuer(tenancy, token_lifetime)
        self.token = self.issuer.issue(self.key.public_key(), subject="ocid1.fnfunc.oc1..fake")
        self.key_pem = private_key_pem(self.key, passphrase=passphrase, pkcs8=True)
        self.token_path = self.directory / "rpst"
        self.key_path = self.directory / "private.pem"
        self.token_path.write_text(self.token)
        self.key_path.write_text(self.key_pem)

    def rotate(self) -> str:
        """Issues a new token (same key) and writes it to the token file; returns it."""
        self.token = self.issuer.issue(self.key.public_key(), subject="ocid1.fnfunc.oc1..fake")
        self.token_path.write_text(self.token)
        return self.token

    def env(self, *, inline: bool = False) -> dict[str, str]:
        env = {
            "OCI_RESOURCE_PRINCIPAL_VERSION": "2.2",
            "OCI_RESOURCE_PRINCIPAL_RPST": self.token if inline else str(self.token_path),
            "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM": self.key_pem if inline else str(self.key_path),
            "OCI_RESOURCE_PRINCIPAL_REGION": self.region,
        }
        if self.passphrase:
            env["OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM_PASSPHRASE"] = self.passphrase
        return env

    def key_lookup(self, key_id: str) -> RSAPublicKey | None:
        return self.issuer.key_lookup(key_id)


@dataclasses.dataclass
class OciUserCredentials:
    """What :func:`write_oci_config` wrote: the config file, the API key and the keyId it signs with."""

    config_file: Path
    key_file: Path
    profile: str
    tenancy: str
    user: str
    region: str
    private_key: RSAPrivateKey
    passphrase: str | None

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.private_key)

    @property
    def key_id(self) -> str:
        return user_key_id(self.tenancy, self.user, self.private_key)

    def key_lookup(self, key_id: str) -> RSAPublicKey | None:
        return self.private_key.public_key() if key_id == self.key_id else None


def write_oci_config(
    directory: str | os.PathLike[str],
    *,
    profile: str = "DEFAULT",
    tenancy: str = "ocid1.tenancy.oc1..faketenancy",
    user: str = "ocid1.user.oc1..fakeuser",
    region: str = "us-phoenix-1",
    passphrase: str | None = None,
    pkcs8: bool = False,
    inherit: Sequence[str] = (),
) -> OciUserCredentials:
    """Writes ``config`` and an API key ``<profile>.pem`` under `directory`, as ``oci setup config`` would.

    The profile holds user, fingerprint, key_file, tenancy, region (and pass_phrase); the keys named in
    `inherit` go to a ``[DEFAULT]`` section instead (for inheritance tests, when `profile` is not DEFAULT).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = generate_rsa_key()
    key_file = directory / f"{profile.lower()}.pem"
    key_file.write_text(private_key_pem(key, passphrase=passphrase, pkcs8=pkcs8))
    key_file.chmod(0o600)
    values = {
        "user": user,
        "fingerprint": key_fingerprint(key),
        "key_file": str(key_file),
        "tenancy": tenancy,
        "region": region,
    }
    if passphrase:
        values["pass_phrase"] = passphrase
    sections: list[tuple[str, dict[str, str]]] = []
    if inherit and profile != "DEFAULT":
        sections.append(("DEFAULT", {k: v for k, v in values.items() if k in inherit}))
    sections.append((profile, {k: v for k, v in values.items() if profile == "DEFAULT" or k not in inherit}))
    config_file = directory / "config"
    text = "".join(f"[{name}]\n" + "".join(f"{k}={v}\n" for k, v in body.items()) + "\n" for name, body in sections)
    config_file.write_text(text)
    return OciUserCredentials(config_file, key_file, profile, tenancy, user, region, key, passphrase)
