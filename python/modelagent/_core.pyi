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
    def to_dict(self) -> dict[str, str]: ...
    def __hash__(self) -> int: ...

class OciStorageUri(StorageUri):
    @property
    def namespace(self) -> str: ...
    @property
    def bucket(self) -> str: ...
    @property
    def prefix(self) -> str: ...
    @property
    def region(self) -> str: ...

class HuggingFaceStorageUri(StorageUri):
    @property
    def repo_id(self) -> str: ...
    @property
    def revision(self) -> str: ...

class PvcStorageUri(StorageUri):
    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def subpath(self) -> str: ...

class LocalStorageUri(StorageUri):
    @property
    def path(self) -> str: ...

class VendorStorageUri(StorageUri):
    @property
    def vendor(self) -> str: ...
    @property
    def resource_type(self) -> str: ...
    @property
    def resource_path(self) -> str: ...

class S3StorageUri(StorageUri):
    @property
    def bucket(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def prefix(self) -> str: ...

class GcsStorageUri(StorageUri):
    @property
    def bucket(self) -> str: ...
    @property
    def prefix(self) -> str: ...

class AzureStorageUri(StorageUri):
    @property
    def account(self) -> str: ...
    @property
    def container(self) -> str: ...
    @property
    def path(self) -> str: ...

class GitHubStorageUri(StorageUri):
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

# --- download ---

from collections.abc import Iterable, Mapping, Sequence
from os import PathLike
from typing import Literal, TypedDict

DigestKindName = Literal["none", "sha256", "git-blob-sha1", "md5", "md5-multipart"]

class PlanDigest(TypedDict, total=False):
    kind: DigestKindName  # required
    value: str  # hex, or base64 for md5 / md5-multipart; "<md5>-<parts>" accepted for md5-multipart
    parts: int
    part_size: int

class PlanEntry(TypedDict, total=False):
    path: str  # required: '/'-separated destination under the root
    url: str  # required
    size: int | None  # None = unknown (single stream)
    digest: PlanDigest | None
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None

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
    options: HfClientOptions, repo_id: str, revision: str, cancel: CancelToken | None = None
) -> str: ...
def hf_list_files(
    options: HfClientOptions, repo_id: str, commit: str, cancel: CancelToken | None = None
) -> list[HfFile]: ...
def hf_select_files(
    files: Sequence[HfFile],
    include: Sequence[str] = ...,
    exclude: Sequence[str] = ...,
    default_excludes: bool = True,
) -> tuple[list[HfFile], list[tuple[str, str]]]: ...
def hf_build_plan(
    endpoint: str, repo_id: str, commit: str, files: Sequence[HfFile], token: str = ""
) -> list[PlanEntry]: ...
