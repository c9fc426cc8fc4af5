"""Type stubs for the private C++ extension ``modelagent._core``. Keep in step with cpp/bindings/."""

from __future__ import annotations

__version__: str

class ModelAgentError(Exception): ...
class InvalidStorageUri(ModelAgentError): ...
class ModelConfigError(ModelAgentError): ...
class SafetensorsError(ModelAgentError): ...
class ModelEntryError(ModelAgentError): ...
class DownloadError(ModelAgentError): ...

class HttpStatusError(DownloadError):
    status: int
    url: str
    retry_after: float

class RateLimitedError(HttpStatusError): ...
class RepositoryNotFoundError(HttpStatusError): ...
class GatedRepoError(RepositoryNotFoundError): ...
class RevisionNotFoundError(HttpStatusError): ...
class EntryNotFoundError(HttpStatusError): ...
class UnauthorizedError(HttpStatusError): ...
class VerificationError(DownloadError): ...
class DiskSpaceError(DownloadError): ...
class UnsafePathError(DownloadError): ...
class CancelledError(DownloadError): ...
class CredentialsError(DownloadError): ...

# --- storage_uri ---

from typing import Any as _Any
from typing import ClassVar as _ClassVar
from typing import Literal as _Literal
from typing import Mapping as _Mapping
from typing import Sequence as _Sequence
from typing import overload as _overload

class StorageUri:
    """A parsed storage URI; the concrete subclass depends on the scheme."""

    scheme: _ClassVar[str]
    @property
    def uri(self) -> str: ...

class OciStorageUri(StorageUri):
    def to_dict(self) -> dict[str, str]: ...
    def __hash__(self) -> int: ...
    @property
    def namespace(self) -> str: ...
    @property
    def bucket(self) -> str: ...
    @property
    def prefix(self) -> str: ...
    @property
    def region(self) -> str: ...

class HuggingFaceStorageUri(StorageUri):
    def to_dict(self) -> dict[str, str]: ...
    def __hash__(self) -> int: ...
    @property
    def repo_id(self) -> str: ...
    @property
    def revision(self) -> str: ...

class PvcStorageUri(StorageUri):
    def to_dict(self) -> dict[str, str]: ...
    def __hash__(self) -> int: ...
    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def subpath(self) -> str: ...

class LocalStorageUri(StorageUri):
    def to_dict(self) -> dict[str, str]: ...
    def __hash__(self) -> int: ...
    @property
    def path(self) -> str: ...

class VendorStorageUri(StorageUri):
    def to_dict(self) -> dict[str, str]: ...
    def __hash__(self) -> int: ...
    @property
    def vendor(self) -> str: ...
    @property
    def resource_type(self) -> str: ...
    @property
    def resource_path(self) -> str: ...

class S3StorageUri(StorageUri):
    def to_dict(self) -> dict[str, str]: ...
    def __hash__(self) -> int: ...
    @property
    def bucket(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def prefix(self) -> str: ...

class GcsStorageUri(StorageUri):
    def to_dict(self) -> dict[str, str]: ...
    def __hash__(self) -> int: ...
    @property
    def bucket(self) -> str: ...
    @property
    def prefix(self) -> str: ...

class AzureStorageUri(StorageUri):
    def to_dict(self) -> dict[str, str]: ...
    def __hash__(self) -> int: ...
    @property
    def account(self) -> str: ...
    @property
    def container(self) -> str: ...
    @property
    def path(self) -> str: ...

class GitHubStorageUri(StorageUri):
    def to_dict(self) -> dict[str, str]: ...
    def __hash__(self) -> int: ...
    @property
    def owner(self) -> str: ...
    @property
    def repo(self) -> str: ...
    @property
    def tag(self) -> str: ...

def parse_storage_uri(
    uri: str,
) -> (
    OciStorageUri
    | HuggingFaceStorageUri
    | PvcStorageUri
    | LocalStorageUri
    | VendorStorageUri
    | S3StorageUri
    | GcsStorageUri
    | AzureStorageUri
    | GitHubStorageUri
):
    """Parse a storage URI; raises InvalidStorageUri naming the URI and the fault."""

# --- naming ---

def node_label_key(
    kind: _Literal["BaseModel", "ClusterBaseModel"], name: str, namespace: str | None = None
) -> str:
    """OME's node label key for a model; raises ValueError for a bad kind or namespace."""

def configmap_key(
    kind: _Literal["BaseModel", "ClusterBaseModel"], name: str, namespace: str | None = None
) -> str:
    """OME's per-node ConfigMap data key for a model; raises ValueError for a bad kind or namespace."""

def parse_configmap_key(
    key: str,
) -> tuple[_Literal["BaseModel", "ClusterBaseModel"], str | None, str] | None: ...
def node_label_value(status: str) -> str | None: ...
def truncate_with_hash(s: str, max_len: int) -> str: ...
def is_valid_label_key(key: str) -> bool: ...
def is_valid_label_value(value: str) -> bool: ...
def is_valid_configmap_key(key: str) -> bool: ...
def label_key_problem(key: str) -> str | None: ...
def label_value_problem(value: str) -> str | None: ...
def configmap_key_problem(key: str) -> str | None: ...

# --- model_entry ---

MODEL_STATUSES: tuple[str, str, str, str]

class NameVersion:
    """modelFramework / modelFormat: a name and an optional version (immutable)."""

    def __init__(self, name: str, version: str | None = None) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str | None: ...
    def __hash__(self) -> int: ...

class ModelConfig:
    """The 'config' object of a ConfigMap entry; empty fields are omitted when written."""

    model_type: str
    model_architecture: str
    model_framework: NameVersion | None
    model_format: NameVersion | None
    model_parameter_size: str
    max_tokens: int
    quantization: str
    def __init__(
        self,
        *,
        model_type: str = "",
        model_architecture: str = "",
        model_framework: NameVersion | None = None,
        model_format: NameVersion | None = None,
        model_parameter_size: str = "",
        max_tokens: int = 0,
        model_capabilities: _Sequence[str] = ...,
        decoded_model_configuration: dict[str, _Any] | None = None,
        quantization: str = "",
    ) -> None: ...
    @property
    def model_capabilities(self) -> tuple[str, ...]: ...
    @model_capabilities.setter
    def model_capabilities(self, value: _Sequence[str]) -> None: ...
    @property
    def decoded_model_configuration(self) -> _Mapping[str, _Any]: ...
    @decoded_model_configuration.setter
    def decoded_model_configuration(self, value: dict[str, _Any] | None) -> None: ...
    @property
    def extra(self) -> _Mapping[str, _Any]: ...
    def to_dict(self) -> dict[str, _Any]: ...

class ModelProgress:
    """The 'progress' object of a ConfigMap entry while the model downloads."""

    phase: str
    completed_bytes: int
    total_bytes: int
    completed_files: int
    total_files: int
    speed_bytes_per_sec: float
    last_updated: str
    def __init__(
        self,
        *,
        phase: str = "",
        completed_bytes: int = 0,
        total_bytes: int = 0,
        completed_files: int = 0,
        total_files: int = 0,
        speed_bytes_per_sec: float = 0.0,
        last_updated: str = "",
    ) -> None: ...
    def to_dict(self) -> dict[str, _Any]: ...

class ModelEntry:
    """One model's value in the per-node ConfigMap."""

    name: str
    status: str
    config: ModelConfig | None
    progress: ModelProgress | None
    @_overload
    def __init__(
        self,
        name: str,
        status: str,
        config: ModelConfig | None = None,
        progress: ModelProgress | None = None,
    ) -> None: ...
    @_overload
    def __init__(self, data: dict[str, _Any]) -> None: ...
    @staticmethod
    def from_json(text: str | bytes, key: str | None = None) -> ModelEntry: ...
    @staticmethod
    def from_dict(data: dict[str, _Any], key: str | None = None) -> ModelEntry: ...
    @property
    def extra(self) -> _Mapping[str, _Any]: ...
    def to_json(self) -> str: ...
    def to_dict(self) -> dict[str, _Any]: ...


# --- model_metadata ---

from os import PathLike as _PathLike
from pathlib import Path as _Path

class QuantizationInfo:
    """Detailed quantization of a model (method '' = none)."""

    @property
    def method(self) -> str: ...
    @property
    def scheme(self) -> str: ...
    @property
    def bits(self) -> int: ...
    @property
    def source(self) -> str: ...
    @property
    def quantized(self) -> bool: ...

class ModelMetadata:
    """Raw metadata from the C++ core; modelagent.inspect_model wraps it in a dataclass."""

    @property
    def model_type(self) -> str: ...
    @property
    def architecture(self) -> str: ...
    @property
    def framework(self) -> NameVersion: ...
    @property
    def format(self) -> NameVersion: ...
    @property
    def parameter_count(self) -> int: ...
    @property
    def parameter_size(self) -> str: ...
    @property
    def parameter_count_source(self) -> str: ...
    @property
    def context_length(self) -> int: ...
    @property
    def capabilities(self) -> list[str]: ...
    @property
    def has_vision(self) -> bool: ...
    @property
    def quantization(self) -> str: ...
    @property
    def quantization_detail(self) -> QuantizationInfo: ...
    @property
    def torch_dtype(self) -> str: ...
    @property
    def transformers_version(self) -> str: ...
    @property
    def model_size_bytes(self) -> int: ...
    @property
    def weight_files(self) -> list[_Path]: ...
    @property
    def config_path(self) -> _Path: ...
    @property
    def model_dir(self) -> _Path: ...
    def decoded_summary_json(self) -> str: ...
    def to_model_config(self) -> ModelConfig: ...

def inspect_model(path: str | _PathLike[str]) -> ModelMetadata: ...
def locate_model_config(path: str | _PathLike[str]) -> tuple[_Path, bool]: ...
def format_parameter_size(count: int) -> str: ...

# --- download ---

from collections.abc import Iterable, Mapping, Sequence
from os import PathLike
from typing import Literal, TypedDict

DigestKindName = Literal["none", "sha256", "git-blob-sha1", "md5", "md5-multipart"]

class PlanDigest(TypedDict, total=False):
    kind: DigestKindName  # required
    value: str  # hex, or base64 for md5 / md5-multipart; "<md5>-<parts>" accepted for md5-multipart
    parts: int
    part_size: int  # md5-multipart: size of every part but the last
    part_lengths: list[int]  # md5-multipart: every part's size in order, for parts that differ

class PlanEntry(TypedDict, total=False):
    path: str  # required: '/'-separated destination under the root
    url: str  # required
    size: int | None  # None = unknown (single stream)
    digest: PlanDigest | None
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None
    signer: RequestSigner | None  # signs every request to the URL's origin (fresh date per attempt)

class RequestSigner:
    """Authenticates each request of a plan. Subclass in Python and override :meth:`sign` (without
    calling the base) to sign with your own scheme; built-in signers come from the OCI and S3 sources."""

    def __init__(self) -> None: ...
    def sign(
        self, method: str, url: str, body: str = "", headers: Sequence[tuple[str, str]] = ...
    ) -> list[tuple[str, str]]: ...
    def describe(self) -> str: ...
    def renew_after_rejection(self, rejected: Sequence[tuple[str, str]] = ...) -> bool:
        """Called once per request after the server rejected this signer's credentials (HTTP 401, or S3's
        expired-token errors); ``rejected`` is the headers that request was sent with. Renew the
        credentials and return True to have the request tried once more; the default returns False (fixed
        keys). The built-in session-token signers (OCI instance, resource and OKE workload identity
        principals, S3 web identity) renew, once for all requests signed with the same rejected token."""

class DownloadOptions:
    max_connections: int
    connections_per_file: int
    chunk_size: int
    bandwidth_limit: int
    max_attempts: int
    retry_base_seconds: float
    retry_cap_seconds: float
    total_timeout_seconds: float
    connect_timeout_seconds: float
    low_speed_timeout_seconds: float
    verify_tls: bool
    ca_bundle: str
    user_agent: str
    def __init__(self, **kwargs: object) -> None: ...

class DownloadProgress:
    def __init__(self) -> None: ...
    @property
    def bytes_total(self) -> int: ...
    @property
    def bytes_done(self) -> int: ...
    @property
    def bytes_fetched(self) -> int: ...
    @property
    def files_total(self) -> int: ...
    @property
    def files_done(self) -> int: ...
    @property
    def bytes_per_second(self) -> float: ...
    @property
    def retries(self) -> int: ...
    @property
    def rate_limited(self) -> int: ...
    @property
    def rate_limit_wait_seconds(self) -> float: ...

class CancelToken:
    def __init__(self) -> None: ...
    def cancel(self) -> None: ...
    @property
    def cancelled(self) -> bool: ...

class FileResult:
    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def downloaded(self) -> bool: ...
    @property
    def verified(self) -> bool: ...
    @property
    def digest(self) -> str: ...
    @property
    def note(self) -> str: ...
    def to_dict(self) -> dict[str, object]: ...

class DownloadReport:
    @property
    def files(self) -> list[FileResult]: ...
    @property
    def bytes_fetched(self) -> int: ...
    @property
    def seconds(self) -> float: ...

def run_download(
    plan: Iterable[PlanEntry],
    root: str | PathLike[str],
    options: DownloadOptions | None = None,
    cancel: CancelToken | None = None,
    progress: DownloadProgress | None = None,
) -> DownloadReport: ...
def verify_files(plan: Iterable[PlanEntry], root: str | PathLike[str]) -> list[FileResult]: ...
def check_safe_relative_path(root: str | PathLike[str], relative_path: str) -> None: ...
def file_digest(path: str | PathLike[str], kind: str = "sha256") -> str: ...
def bytes_rehashed_from_disk() -> int: ...

# --- huggingface ---

def glob_match(pattern: str, path: str) -> bool:
    """Whole-path glob match: '*' and '?' stay in one segment, '**' crosses; ValueError if malformed."""

class HfFile:
    """One file of a Hugging Face repository at a commit."""

    def __init__(
        self, path: str, size: int | None = None, blob_id: str = "", lfs_sha256: str = ""
    ) -> None: ...
    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int | None: ...
    @property
    def blob_id(self) -> str: ...
    @property
    def lfs_sha256(self) -> str: ...
    @property
    def digest_kind(self) -> Literal["sha256", "git-blob-sha1", "none"]: ...
    @property
    def digest_value(self) -> str: ...
    def __eq__(self, other: object) -> bool: ...

class HfClientOptions:
    """Endpoint ('' = HF_ENDPOINT or https://huggingface.co), token, retries and TLS for hub API calls."""

    def __init__(
        self,
        *,
        endpoint: str = "",
        token: str = "",
        timeout: float = 60.0,
        verify_tls: bool = True,
        ca_bundle: str = "",
        max_attempts: int = 6,
        retry_base_seconds: float = 0.5,
        retry_cap_seconds: float = 30.0,
        max_retry_seconds: float = 300.0,
        user_agent: str = "",
    ) -> None: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def has_token(self) -> bool: ...

def hf_parse_uri(uri: str) -> tuple[str, str]:
    """hf://org/name[@revision] -> (repo_id, revision); raises InvalidStorageUri."""

def hf_is_commit_hash(revision: str) -> bool: ...
def hf_endpoint() -> str: ...
def hf_token(explicit_token: str | None = None) -> str | None: ...
def hf_resolve_url(endpoint: str, repo_id: str, commit: str, path: str) -> str: ...
def hf_resolve_commit(
    options: HfClientOptions,
    repo_id: str,
    revision: str,
    cancel: CancelToken | None = None,
    progress: DownloadProgress | None = None,
) -> str: ...
def hf_list_files(
    options: HfClientOptions,
    repo_id: str,
    commit: str,
    cancel: CancelToken | None = None,
    progress: DownloadProgress | None = None,
) -> list[HfFile]: ...
def hf_check_file(
    options: HfClientOptions,
    repo_id: str,
    commit: str,
    path: str,
    cancel: CancelToken | None = None,
    progress: DownloadProgress | None = None,
) -> None: ...
def hf_select_files(
    files: Sequence[HfFile],
    include: Sequence[str] = ...,
    exclude: Sequence[str] = ...,
    default_excludes: bool = True,
) -> tuple[list[HfFile], list[tuple[str, str]]]: ...
def hf_build_plan(
    endpoint: str, repo_id: str, commit: str, files: Sequence[HfFile], token: str = ""
) -> list[PlanEntry]: ...

# --- metrics ---

METRICS_FAILURE_REASONS: tuple[str, ...]
METRICS_PHASES: tuple[str, ...]

def metrics_buckets() -> dict[str, list[float]]:
    """Histogram family name -> bucket upper bounds in seconds (+Inf implied)."""

class MetricsRegistry:
    """The agent's Prometheus registry (C++, prometheus-cpp). Thread-safe; see docs/metrics.md."""

    def __init__(self, version: str | None = None) -> None: ...
    def download_succeeded(self, kind: str, namespace: str | None, name: str, seconds: float) -> None: ...
    def download_failed(self, kind: str, namespace: str | None, name: str, reason: str) -> None: ...
    def verification(self, kind: str, namespace: str | None, name: str, ok: bool, seconds: float) -> None: ...
    def md5_failed(self, kind: str, namespace: str | None, name: str) -> None: ...
    def rate_limited(self, kind: str, namespace: str | None, name: str, wait_seconds: float) -> None: ...
    def bytes_downloaded(self, kind: str, namespace: str | None, name: str, n: int) -> None: ...
    def phase(self, phase: str, seconds: float) -> None: ...
    def set_in_progress(self, n: int) -> None: ...
    def forget_model(self, kind: str, namespace: str | None, name: str) -> None: ...
    def exposition(self) -> str: ...

# --- oci_auth ---

class OciPrincipal(RequestSigner):
    """Signs OCI requests (signature version 1, rsa-sha256) as one principal."""

    @property
    def auth(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def tenancy(self) -> str: ...
    def refresh(self) -> None: ...

def oci_principal(
    auth: str = "InstancePrincipal",
    *,
    region: str = "",
    config_file: str = "",
    profile: str = "",
    metadata_endpoint: str = "",
    federation_endpoint: str = "",
    oke_endpoint: str = "",
    oke_token_path: str = "",
    oke_ca_path: str = "",
    verify_tls: bool = True,
    ca_bundle: str = "",
) -> OciPrincipal: ...
def oci_sign_request(
    method: str,
    url: str,
    headers: _Sequence[tuple[str, str]],
    body: bytes,
    key_id: str,
    private_key_pem: str,
    date: str,
    passphrase: str = "",
    *,
    body_headers: bool = True,
    host: bool = True,
) -> list[tuple[str, str]]: ...

# --- oci ---

def oci_parse_uri(uri: str) -> tuple[str, str, str, str]:
    """oci://... -> (namespace or '', bucket, prefix without trailing '/', region or '')."""

def oci_endpoint(endpoint: str = "", region: str = "") -> str:
    """`endpoint`, else OCI_OBJECT_STORAGE_ENDPOINT, else https://objectstorage.{region}.oraclecloud.com."""

def oci_object_url(endpoint: str, namespace: str, bucket: str, object_name: str) -> str: ...
def oci_head_object(
    endpoint: str,
    signer: RequestSigner,
    namespace: str,
    bucket: str,
    object_name: str,
    *,
    options: DownloadOptions | None = None,
    cancel: CancelToken | None = None,
    progress: DownloadProgress | None = None,
) -> dict[str, _Any]:
    """HEAD one object -> {size, etag, content_md5, multipart_md5, meta_md5, archival_state}."""

def oci_build_plan(
    uri: str,
    *,
    endpoint: str,
    signer: RequestSigner,
    include: Sequence[str] = ...,
    exclude: Sequence[str] = ...,
    options: DownloadOptions | None = None,
    page_size: int = 1000,
    timeout: float = 60.0,
    max_attempts: int = 6,
    max_retry_seconds: float = 300.0,
    head_concurrency: int = 8,
    cancel: CancelToken | None = None,
    progress: DownloadProgress | None = None,
) -> dict[str, _Any]:
    """List, select and plan -> {namespace, bucket, prefix, endpoint, files, objects, excluded, unverifiable}."""

# --- s3 ---

class S3Signer(RequestSigner):
    """AWS Signature Version 4 signer (AWS4-HMAC-SHA256) with fixed keys."""

    def __init__(
        self,
        access_key_id: str,
        secret_access_key: str,
        session_token: str = "",
        region: str = "us-east-1",
        service: str = "s3",
        unsigned_payload: bool = True,
    ) -> None: ...
    @property
    def region(self) -> str: ...
    def sign_at(
        self,
        method: str,
        url: str,
        body: str = "",
        headers: list[tuple[str, str]] = ...,
        *,
        amz_date: str,
    ) -> dict[str, object]: ...

def s3_plan(
    uri: str,
    parameters: dict[str, str] = ...,
    credentials: dict[str, str] = ...,
    include: list[str] = ...,
    exclude: list[str] = ...,
    options: DownloadOptions | None = None,
    cancel: CancelToken | None = None,
    progress: DownloadProgress | None = None,
) -> dict[str, object]: ...

# --- shape_filter ---

class ShapeFilterResult:
    @property
    def kept(self) -> list[str]: ...
    @property
    def dropped(self) -> list[tuple[str, str]]: ...
    @property
    def shape_matches(self) -> int: ...
    @property
    def other_shapes(self) -> list[str]: ...

def default_instance_type_table() -> dict[str, str]: ...
def parse_instance_type_map(text: str, origin: str) -> dict[str, str]: ...
def merge_instance_type_table(extension: dict[str, str]) -> dict[str, str]: ...
def shape_alias(instance_type: str, table: dict[str, str]) -> str: ...
def known_shape_aliases(table: dict[str, str]) -> list[str]: ...
def filter_by_shape(paths: list[str], alias: str, known_aliases: list[str]) -> ShapeFilterResult: ...
