"""Every OCI principal end to end against the fake identity services on 127.0.0.1: the principal is built
through ``_core.oci_principal`` exactly as a source builds it, signs real requests, and a server verifies
them the way OCI does (modelagent.testing._oci_signature)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

import modelagent
from modelagent import _core
from modelagent.testing._oci_signature import SignatureError, verify_request
from modelagent.testing.oci_identity import (
    FakeFederation,
    FakeInstanceIdentity,
    FakeOkeProxymux,
    ResourcePrincipalCredentials,
    _FakeServer,
    _Reply,
    write_oci_config,
)

BODY = b"model weights " * 1000
OCI_ENV = (
    "OCI_CONFIG_FILE",
    "OCI_CONFIG_PATH",
    "OCI_CLI_PROFILE",
    "PROFILE",
    "USE_SESSION_TOKEN",
    "OCI_METADATA_BASE_URL",
    "OCI_FEDERATION_ENDPOINT",
    "OCI_RESOURCE_PRINCIPAL_VERSION",
    "OCI_RESOURCE_PRINCIPAL_RPST",
    "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM",
    "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM_PASSPHRASE",
    "OCI_RESOURCE_PRINCIPAL_REGION",
    "KUBERNETES_SERVICE_HOST",
)


@pytest.fixture(autouse=True)
def _clean_oci_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OCI_ENV:
        monkeypatch.delenv(name, raising=False)


class SignedOrigin(_FakeServer):
    """Serves BODY at any path, but only to requests whose OCI signature verifies (else 401)."""

    name = "signed origin"

    def __init__(self, key_lookup: Callable[[str], RSAPublicKey | None]) -> None:
        super().__init__()
        self.key_lookup = key_lookup
        self.key_ids: list[str] = []
        self.rejections: list[str] = []

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Reply:
        try:
            self.key_ids.append(verify_request(method, target, headers, body, self.key_lookup))
        except SignatureError as exc:
            self.rejections.append(exc.message)
            return _Reply(exc.status, exc.message.encode(), "text/plain")
        return _Reply(200, BODY if method == "GET" else b"{}", "application/octet-stream")


def _sign_and_check(
    principal: _core.OciPrincipal, lookup: Callable[[str], RSAPublicKey | None], method: str = "GET"
) -> str:
    url = "https://objectstorage.us-phoenix-1.oraclecloud.com/n/ns/b/bucket/o/dir%2Fw.bin?fields=name"
    body = b'{"a": 1}' if method in ("POST", "PUT") else b""
    headers = dict(principal.sign(method, url, body.decode(), []))
    target = urlsplit(url).path + "?" + urlsplit(url).query
    return verify_request(method, target, headers, body, lookup)


def _download_through_engine(principal: _core.OciPrincipal, origin: SignedOrigin, dest: Path) -> None:
    plan = [
        {
            "path": "dir/w.bin",
            "url": origin.base_url + "/n/ns/b/bucket/o/dir%2Fw.bin",
            "size": len(BODY),
            "digest": {"kind": "sha256", "value": hashlib.sha256(BODY).hexdigest()},
            "signer": principal,
        }
    ]
    modelagent.run_download(plan, dest, modelagent.DownloadOptions())
    assert (dest / "dir" / "w.bin").read_bytes() == BODY


# ---------------------------------------------------------------------------------------------------
# User principal


def test_user_principal_from_a_written_config_file(tmp_path: Path) -> None:
    creds = write_oci_config(tmp_path / "oci", profile="dev", region="eu-frankfurt-1", inherit=("tenancy", "region"))
    assert "[DEFAULT]" in creds.config_file.read_text()
    principal = _core.oci_principal("UserPrincipal", config_file=str(creds.config_file), profile="dev")
    assert isinstance(principal, modelagent.RequestSigner)
    assert (principal.auth, principal.region, principal.tenancy) == ("UserPrincipal", "eu-frankfurt-1", creds.tenancy)
    for method in ("GET", "HEAD", "POST", "PUT"):
        assert _sign_and_check(principal, creds.key_lookup, method) == creds.key_id
    with SignedOrigin(creds.key_lookup) as origin:
        _download_through_engine(principal, origin, tmp_path / "dest")
        assert origin.key_ids and set(origin.key_ids) == {creds.key_id}
    override = _core.oci_principal("UserPrincipal", config_file=str(creds.config_file), profile="dev", region="ap-tokyo-1")
    assert override.region == "ap-tokyo-1"


def test_user_principal_config_and_profile_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = write_oci_config(tmp_path, profile="team", passphrase="correct horse", pkcs8=True)
    monkeypatch.setenv("OCI_CONFIG_PATH", str(creds.config_file))
    monkeypatch.setenv("PROFILE", "team")
    principal = _core.oci_principal("UserPrincipal")
    assert _sign_and_check(principal, creds.key_lookup) == creds.key_id
    monkeypatch.setenv("OCI_CLI_PROFILE", "other")
    with pytest.raises(modelagent.CredentialsError, match=r"has no profile \[other\] \(profiles: team\)"):
        _core.oci_principal("UserPrincipal")


def test_user_principal_failures_name_file_profile_and_key(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "config"
    with pytest.raises(modelagent.CredentialsError, match=f"OCI config file {missing} does not exist"):
        _core.oci_principal("UserPrincipal", config_file=str(missing))

    creds = write_oci_config(tmp_path / "a", passphrase="right")
    with pytest.raises(modelagent.CredentialsError, match=r"has no profile \[prod\]"):
        _core.oci_principal("UserPrincipal", config_file=str(creds.config_file), profile="prod")

    text = creds.config_file.read_text()
    creds.config_file.write_text(text.replace("pass_phrase=right", "pass_phrase=wrong"))
    wrong = rf"profile \[DEFAULT\]: key_file: private key {creds.key_file}: wrong passphrase"
    with pytest.raises(modelagent.CredentialsError, match=wrong):
        _core.oci_principal("UserPrincipal", config_file=str(creds.config_file))

    creds.config_file.write_text(text)
    creds.key_file.unlink()
    with pytest.raises(modelagent.CredentialsError, match=f"cannot read private key file {creds.key_file}"):
        _core.oci_principal("UserPrincipal", config_file=str(creds.config_file))


def test_unknown_auth_is_rejected_with_the_allowed_values() -> None:
    allowed = "InstancePrincipal, UserPrincipal, ResourcePrincipal, OkeWorkloadIdentity"
    with pytest.raises(modelagent.CredentialsError, match=f"'instance'.*{allowed}"):
        _core.oci_principal("instance")


# ---------------------------------------------------------------------------------------------------
# Instance principal


def test_instance_principal_region_tenancy_and_signed_download(tmp_path: Path) -> None:
    with FakeInstanceIdentity(region="phx") as identity:
        principal = _core.oci_principal("InstancePrincipal", **identity.principal_kwargs())
        assert principal.auth == "InstancePrincipal"
        assert principal.region == "us-phoenix-1"
        assert principal.tenancy == identity.tenancy
        assert identity.federation.token_requests == 1
        assert identity.metadata.counters["GET /opc/v2/instance/region"] == 1
        key_id = _sign_and_check(principal, identity.key_lookup)
        assert key_id == "ST$" + identity.federation.issuer.issued[-1]
        assert _sign_and_check(principal, identity.key_lookup, "POST") == key_id
        with SignedOrigin(identity.key_lookup) as origin:
            _download_through_engine(principal, origin, tmp_path)
        # The token lives 20 minutes: nothing was fetched again.
        assert identity.federation.token_requests == 1
        assert not identity.federation.errors and not identity.metadata.errors


def test_instance_principal_takes_endpoints_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeInstanceIdentity(region="us-ashburn-1") as identity:
        for name, value in identity.env().items():
            monkeypatch.setenv(name, value)
        principal = _core.oci_principal()
        assert principal.region == "us-ashburn-1"
        _sign_and_check(principal, identity.key_lookup)
        assert _core.oci_principal(region="eu-zurich-1").region == "eu-zurich-1"


def test_instance_principal_renews_a_token_close_to_expiry() -> None:
    # Tokens living 60 s are always inside the 5-minute renewal margin: every signature needs a new one.
    with FakeInstanceIdentity(token_lifetime=60) as identity:
        principal = _core.oci_principal("InstancePrincipal", **identity.principal_kwargs())
        assert identity.federation.token_requests == 1
        first = _sign_and_check(principal, identity.key_lookup)
        second = _sign_and_check(principal, identity.key_lookup)
        assert identity.federation.token_requests == 3
        assert first != second
        # Each renewal fetched the identity again (certificates rotate on real instances).
        assert identity.metadata.counters["GET /opc/v2/identity/cert.pem"] >= 3
        # Each token came with a fresh session key.
        assert len({k.public_numbers().n for k in identity.federation.session_keys}) == 3


def test_instance_principal_refresh_on_demand() -> None:
    with FakeInstanceIdentity() as identity:
        principal = _core.oci_principal("InstancePrincipal", **identity.principal_kwargs())
        before = _sign_and_check(principal, identity.key_lookup)
        principal.refresh()
        assert identity.federation.token_requests == 2
        after = _sign_and_check(principal, identity.key_lookup)
        assert after != before


def test_instance_principal_metadata_down_names_the_url(refused_port: int) -> None:
    url = f"http://127.0.0.1:{refused_port}/opc/v2"
    with pytest.raises(modelagent.CredentialsError, match=f"{url}/instance/region"):
        _core.oci_principal("InstancePrincipal", metadata_endpoint=url, federation_endpoint="http://127.0.0.1:1")


def test_instance_principal_federation_401_names_the_url() -> None:
    with FakeInstanceIdentity() as identity:
        identity.federation.fail_status = 401
        with pytest.raises(modelagent.CredentialsError, match=rf"{identity.federation_url}/v1/x509 answered 401"):
            _core.oci_principal("InstancePrincipal", **identity.principal_kwargs())


def test_federation_rejects_a_request_not_signed_by_the_leaf_key() -> None:
    other = FakeInstanceIdentity()
    with FakeInstanceIdentity() as identity:
        # IMDS of one instance, federation trusting another instance's certificate.
        impostor = FakeFederation(other.certificates)
        with impostor:
            with pytest.raises(modelagent.CredentialsError, match="answered 401"):
                _core.oci_principal(
                    "InstancePrincipal", metadata_endpoint=identity.metadata_url, federation_endpoint=impostor.url
                )


def test_metadata_requires_the_oracle_bearer_header() -> None:
    import urllib.error
    import urllib.request

    with FakeInstanceIdentity() as identity:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(identity.metadata_url + "/instance/region", timeout=10)
        assert err.value.code == 401


# ---------------------------------------------------------------------------------------------------
# Resource principal


@pytest.mark.parametrize("inline", [False, True])
def test_resource_principal_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inline: bool) -> None:
    rp = ResourcePrincipalCredentials(tmp_path, region="us-ashburn-1", passphrase="pp")
    for name, value in rp.env(inline=inline).items():
        monkeypatch.setenv(name, value)
    principal = _core.oci_principal("ResourcePrincipal")
    assert principal.auth == "ResourcePrincipal"
    assert (principal.region, principal.tenancy) == ("us-ashburn-1", rp.issuer.tenancy)
    assert _sign_and_check(principal, rp.key_lookup) == "ST$" + rp.token
    with SignedOrigin(rp.key_lookup) as origin:
        _download_through_engine(principal, origin, tmp_path / "dest")


def test_resource_principal_rereads_a_rotated_token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rp = ResourcePrincipalCredentials(tmp_path)
    for name, value in rp.env().items():
        monkeypatch.setenv(name, value)
    principal = _core.oci_principal("ResourcePrincipal")
    old = rp.token
    new = rp.rotate()
    assert _sign_and_check(principal, rp.key_lookup) == "ST$" + old
    principal.refresh()
    assert _sign_and_check(principal, rp.key_lookup) == "ST$" + new


def test_resource_principal_errors_name_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(modelagent.CredentialsError, match="OCI_RESOURCE_PRINCIPAL_VERSION is not set"):
        _core.oci_principal("ResourcePrincipal")
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_VERSION", "1.1")
    with pytest.raises(modelagent.CredentialsError, match="'1.1'; only version 2.2"):
        _core.oci_principal("ResourcePrincipal")
    rp = ResourcePrincipalCredentials(tmp_path, passphrase="pp")
    for name, value in rp.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM_PASSPHRASE", "wrong")
    with pytest.raises(modelagent.CredentialsError, match=f"{rp.key_path}: wrong passphrase"):
        _core.oci_principal("ResourcePrincipal")


# ---------------------------------------------------------------------------------------------------
# OKE workload identity


@pytest.fixture
def proxymux(tmp_path: Path) -> Iterator[FakeOkeProxymux]:
    with FakeOkeProxymux(tmp_path / "sa") as fake:
        yield fake


def test_oke_workload_identity_over_https(proxymux: FakeOkeProxymux, tmp_path: Path) -> None:
    principal = _core.oci_principal("OkeWorkloadIdentity", region="us-ashburn-1", **proxymux.principal_kwargs())
    assert (principal.auth, principal.region, principal.tenancy) == (
        "OkeWorkloadIdentity",
        "us-ashburn-1",
        proxymux.issuer.tenancy,
    )
    assert proxymux.token_requests == 1
    assert _sign_and_check(principal, proxymux.key_lookup) == "ST$" + proxymux.issuer.issued[-1]
    with SignedOrigin(proxymux.key_lookup) as origin:
        _download_through_engine(principal, origin, tmp_path / "dest")
    assert proxymux.token_requests == 1
    principal.refresh()
    assert proxymux.token_requests == 2
    assert not proxymux.errors


def test_oke_region_from_environment_and_renewal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_REGION", "fra")
    with FakeOkeProxymux(tmp_path, token_lifetime=60) as fake:
        principal = _core.oci_principal("OkeWorkloadIdentity", **fake.principal_kwargs())
        assert principal.region == "eu-frankfurt-1"
        _sign_and_check(principal, fake.key_lookup)
        assert fake.token_requests == 2


def test_oke_rejects_a_server_outside_the_service_account_ca(proxymux: FakeOkeProxymux, tmp_path: Path) -> None:
    other = FakeOkeProxymux(tmp_path / "other")  # a different CA, never started
    kwargs = proxymux.principal_kwargs() | {"oke_ca_path": str(other.ca_path)}
    with pytest.raises(modelagent.CredentialsError, match=f"proxymux unreachable: POST {proxymux.url}"):
        _core.oci_principal("OkeWorkloadIdentity", region="us-ashburn-1", **kwargs)
    assert proxymux.token_requests == 0


def test_oke_wrong_service_account_token_is_a_401(proxymux: FakeOkeProxymux, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("someone-elses-token")
    kwargs = proxymux.principal_kwargs() | {"oke_token_path": str(token)}
    with pytest.raises(modelagent.CredentialsError, match=f"{proxymux.url} answered 401"):
        _core.oci_principal("OkeWorkloadIdentity", region="us-ashburn-1", **kwargs)
    missing = tmp_path / "missing-token"
    kwargs["oke_token_path"] = str(missing)
    with pytest.raises(modelagent.CredentialsError, match=f"cannot read the service-account token {missing}"):
        _core.oci_principal("OkeWorkloadIdentity", region="us-ashburn-1", **kwargs)
