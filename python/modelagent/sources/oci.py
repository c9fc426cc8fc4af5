"""The OCI Object Storage source: ``oci://n/<namespace>/b/<bucket>/o/<prefix>``,
``oci://<namespace>@<region>/<bucket>[/<prefix>]`` and ``oci://<bucket>[/<prefix>]``.

Planning happens in the C++ core: the namespace is looked up when the URI has none, every object under
the prefix (a directory) is listed, names are mapped to destination paths (unsafe ones rejected), multipart
objects get a HEAD for their digest, and each planned file is a signed, ranged GET of the object. The
principal (``parameters["auth"]``, default ``InstancePrincipal`` as in OME) signs every request. See
docs/oci.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from modelagent import _core
from modelagent.sources.base import SourcePlan, SourceRequest

__all__ = ["OciSource"]

_AUTH_PARAMETERS = ("region", "config_file", "profile", "metadata_endpoint", "federation_endpoint")
_INT_PARAMETERS = {"list_page_size": (1, 1000), "head_concurrency": (1, 64)}


def _snapshot(objects: list[Mapping[str, Any]]) -> str:
    """SHA-256 over the sorted (name, size, etag) of the planned objects."""
    triples = sorted((str(o["name"]), int(o["size"]), str(o.get("etag", ""))) for o in objects)
    return hashlib.sha256(json.dumps(triples, separators=(",", ":")).encode()).hexdigest()


def _int_parameter(parameters: Mapping[str, str], name: str, default: int) -> int:
    text = parameters.get(name)
    if text is None or text == "":
        return default
    low, high = _INT_PARAMETERS[name]
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"OCI parameter {name}={text!r} is not an integer") from None
    if not low <= value <= high:
        raise ValueError(f"OCI parameter {name}={value} is outside {low}..{high}")
    return value


class OciSource:
    """Plans ``oci://`` downloads.

    Parameters (``spec.storage.parameters`` / ``--param``): ``auth`` (``InstancePrincipal`` default,
    ``UserPrincipal``, ``ResourcePrincipal``, ``OkeWorkloadIdentity``), ``region``, ``config_file``,
    ``profile``, ``endpoint`` (Object Storage base URL; default ``OCI_OBJECT_STORAGE_ENDPOINT`` or the
    region's), ``metadata_endpoint``, ``federation_endpoint``; tuning: ``list_page_size`` (1..1000),
    ``head_concurrency``. The region of the endpoint is ``region``, else the URI's ``@region``, else the
    principal's.
    """

    scheme = "oci"

    def principal(self, request: SourceRequest) -> _core.RequestSigner:
        """The principal (a request signer) the parameters select; raises CredentialsError."""
        parameters = request.parameters
        options = request.options
        kwargs: dict[str, Any] = {name: parameters.get(name, "") or "" for name in _AUTH_PARAMETERS}
        if options is not None:
            kwargs["verify_tls"] = bool(options.verify_tls)
            kwargs["ca_bundle"] = options.ca_bundle
        return _core.oci_principal(parameters.get("auth") or "InstancePrincipal", **kwargs)

    def plan(self, request: SourceRequest) -> SourcePlan:
        """List the objects under the URI's prefix and plan them (see the module docstring)."""
        namespace, bucket, prefix, uri_region = _core.oci_parse_uri(request.uri)
        parameters = request.parameters
        page_size = _int_parameter(parameters, "list_page_size", 1000)
        head_concurrency = _int_parameter(parameters, "head_concurrency", 8)
        principal = self.principal(request)
        region = parameters.get("region") or uri_region or str(getattr(principal, "region", "") or "")
        endpoint = _core.oci_endpoint(parameters.get("endpoint", "") or "", region)
        planned = _core.oci_build_plan(
            request.uri,
            endpoint=endpoint,
            signer=principal,
            include=list(request.include),
            exclude=list(request.exclude),
            options=request.options,
            page_size=page_size,
            head_concurrency=head_concurrency,
            cancel=request.cancel,
            progress=request.progress,
        )
        namespace = planned["namespace"]
        snapshot = _snapshot(planned["objects"])
        label = "/".join(part for part in (namespace, bucket, prefix) if part)
        return SourcePlan(
            files=planned["files"],
            snapshot=snapshot,
            label=label,
            excluded=[tuple(e) for e in planned["excluded"]],
            unverifiable=[tuple(u) for u in planned["unverifiable"]],
            state={"endpoint": endpoint, "namespace": namespace, "bucket": bucket, "prefix": prefix,
                   "snapshot": snapshot},
            details={
                "namespace": namespace,
                "bucket": bucket,
                "prefix": prefix,
                "endpoint": endpoint,
                "region": region,
                "principal": principal.describe(),
            },
        )

    def explain_failure(self, error: BaseException, request: SourceRequest, plan: SourcePlan) -> None:
        """Turn an object-level HTTP failure into what happened: the object was deleted (404) or replaced
        (412, the ETag the plan pinned with If-Match changed) during the download, or the credentials were
        rejected (401)."""
        status = getattr(error, "status", None)
        url = getattr(error, "url", "")
        entry = next((e for e in plan.files if e["url"] == url), None)
        if entry is None or status not in (401, 404, 412):
            return
        details = plan.details
        where = f"object '{self._object_name(details, entry['path'])}' in bucket '{details.get('bucket', '')}'"
        if status == 401:
            raise _core.CredentialsError(
                f"OCI Object Storage rejected the signature of {details.get('principal', 'the principal')} while "
                f"downloading {where} (check the key and the clock: a skew over 5 minutes is rejected): {error}"
            ) from error
        if status == 412:
            raise self._http_error(
                f"{where} was replaced while it was being downloaded (its ETag changed); run the download again "
                f"to fetch the new version", status, url, error
            )
        try:
            _core.oci_head_object(
                details["endpoint"], entry["signer"], details["namespace"], details["bucket"],
                self._object_name(details, entry["path"]), options=request.options, cancel=request.cancel,
                progress=request.progress,
            )
        except _core.HttpStatusError as head_error:
            if getattr(head_error, "status", None) == 404:
                raise self._http_error(f"{where} was deleted during the download", 404, url, error) from head_error
        return

    @staticmethod
    def _object_name(details: Mapping[str, str], path: str) -> str:
        prefix = details.get("prefix", "")
        return f"{prefix}/{path}" if prefix else path

    @staticmethod
    def _http_error(message: str, status: int, url: str, cause: BaseException) -> BaseException:
        err = _core.HttpStatusError(message)
        err.status = status
        err.url = url
        err.retry_after = 0.0
        err.__cause__ = cause
        return err
