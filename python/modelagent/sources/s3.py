"""The ``s3://bucket[@region]/prefix`` source: Amazon S3 and S3-compatible stores (MinIO, OCI's S3
compatibility endpoint, moto...).

Listing (ListObjectsV2), SigV4 signing and the credential chain live in the C++ core
(``modelagent._core.s3_plan``); this module adapts them to the :class:`~modelagent.sources.base.Source`
interface. Operator documentation: ``docs/s3.md``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from modelagent.sources.base import SourcePlan, SourceRequest

__all__ = ["S3Source", "s3_snapshot"]

PARAMETERS = ("region", "endpoint", "path_style", "profile", "max_keys", "verify_etag")
"""``spec.storage.parameters`` keys the S3 source reads (others are ignored)."""


def _parameter_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def s3_snapshot(objects: list[tuple[str, int, str]]) -> str:
    """Identity of a listing: SHA-256 (hex) over the sorted ``(key, size, etag)`` triples."""
    digest = hashlib.sha256()
    for key, size, etag in sorted(objects):
        digest.update(f"{key}\0{size}\0{etag}\n".encode())
    return digest.hexdigest()


class S3Source:
    """Plans downloads from ``s3://`` URIs.

    Parameters (``SourceRequest.parameters``): ``region``, ``endpoint`` (custom S3-compatible endpoint),
    ``path_style`` (``true``/``false``; default true with a custom endpoint), ``profile`` (AWS shared
    config/credentials profile), ``max_keys`` (listing page size, 1-1000) and ``verify_etag`` (``false`` for
    stores whose ETags are not MD5s: sizes are checked only). Credentials
    (``SourceRequest.credentials``, the model's Secret): ``aws_access_key_id``, ``aws_secret_access_key``,
    ``aws_session_token`` (upper-case ``AWS_...`` names too); without them the environment, web identity
    and the shared files are used.
    """

    scheme = "s3"

    def plan(self, request: SourceRequest) -> SourcePlan:
        """List the objects under the URI's prefix and plan them (HEAD each for its encryption)."""
        from modelagent import _core

        parameters = {k: _parameter_text(v) for k, v in _as_mapping(request.parameters).items() if k in PARAMETERS}
        credentials = {str(k): str(v) for k, v in _as_mapping(request.credentials).items()}
        result = _core.s3_plan(
            request.uri,
            parameters=parameters,
            credentials=credentials,
            include=list(request.include),
            exclude=list(request.exclude),
            options=request.options,
            cancel=request.cancel,
            progress=request.progress,
        )
        objects = [(str(k), int(s), str(e)) for k, s, e in result["objects"]]
        bucket, prefix = result["bucket"], result["prefix"]
        return SourcePlan(
            files=list(result["files"]),
            snapshot=s3_snapshot(objects),
            label=f"{bucket}/{prefix}" if prefix else bucket,
            excluded=[(str(k), str(r)) for k, r in result["excluded"]],
            unverifiable=[(str(p), str(r)) for p, r in result["unverifiable"]],
            details={
                "bucket": bucket,
                "prefix": prefix,
                "region": result["region"],
                "endpoint": result["endpoint"],
                "path_style": "true" if result["path_style"] else "false",
                "credentials": result["credentials"],
            },
        )

    def explain_failure(self, error: BaseException, request: SourceRequest, plan: SourcePlan) -> None:
        """Engine errors already name the object URL and S3 error code; nothing to add."""
        return None


def _as_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return value if value is not None else {}
