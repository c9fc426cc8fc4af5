"""modelagent: the per-node model agent for LLM serving on Kubernetes.

The data path (downloads, verification, model metadata) is a C++ core in ``modelagent._core``;
this package is the public Python face of it and hosts the Kubernetes control loop.
"""

from __future__ import annotations

from modelagent._core import (
    CancelledError,
    DiskSpaceError,
    DownloadError,
    EntryNotFoundError,
    GatedRepoError,
    HttpStatusError,
    InvalidStorageUri,
    ModelAgentError,
    ModelConfigError,
    ModelEntryError,
    RateLimitedError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    SafetensorsError,
    UnauthorizedError,
    UnsafePathError,
    VerificationError,
    __version__,
)

# --- storage URIs, naming, model entries (area: storage_uri / naming / model_entry) ---
from modelagent._core import (  # noqa: E402
    MODEL_STATUSES,
    AzureStorageUri,
    GcsStorageUri,
    GitHubStorageUri,
    HuggingFaceStorageUri,
    LocalStorageUri,
    ModelConfig,
    ModelEntry,
    ModelProgress,
    NameVersion,
    OciStorageUri,
    PvcStorageUri,
    S3StorageUri,
    StorageUri,
    VendorStorageUri,
    configmap_key,
    configmap_key_problem,
    is_valid_configmap_key,
    is_valid_label_key,
    is_valid_label_value,
    label_key_problem,
    label_value_problem,
    node_label_key,
    node_label_value,
    parse_configmap_key,
    parse_storage_uri,
    truncate_with_hash,
)
from modelagent.storage import AnyStorageUri, ModelKind, ModelStatus  # noqa: E402
# --- model metadata (area: model_metadata) ---
from modelagent.metadata import (  # noqa: E402
    ModelMetadata,
    QuantizationDetail,
    example_model_path,
    format_parameter_size,
    inspect_model,
)
# --- downloads (area: download) ---
from modelagent._core import (  # noqa: E402
    CancelToken,
    DownloadOptions,
    DownloadProgress,
    DownloadReport,
    FileResult,
    run_download,
    verify_files,
)
# --- Hugging Face source (area: huggingface) ---
from modelagent._core import HfFile, glob_match  # noqa: E402
from modelagent.download import (  # noqa: E402
    DownloadedFile,
    DownloadResult,
    FileCheck,
    VerifyResult,
    download,
    read_record,
    verify,
)
# --- metrics (area: metrics) ---
from modelagent.health import LoopHeartbeat, ModelAgentHealthCheck  # noqa: E402
from modelagent.metrics import Metrics  # noqa: E402
from modelagent.server import AgentServer  # noqa: E402

__all__ = [
    "CancelledError",
    "DiskSpaceError",
    "DownloadError",
    "EntryNotFoundError",
    "GatedRepoError",
    "HttpStatusError",
    "InvalidStorageUri",
    "ModelAgentError",
    "ModelConfigError",
    "ModelEntryError",
    "RateLimitedError",
    "RepositoryNotFoundError",
    "RevisionNotFoundError",
    "SafetensorsError",
    "UnauthorizedError",
    "UnsafePathError",
    "VerificationError",
    "__version__",
]
