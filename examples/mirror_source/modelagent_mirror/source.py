"""A source for plain HTTP(S) mirrors that publish a manifest of the files they hold.

URI: ``mirror+https://host[:port]/path/manifest.json`` (``mirror+http://`` for a mirror without TLS).
The manifest at ``https://host[:port]/path/manifest.json`` is a JSON list of files::

    [{"path": "config.json", "size": 683, "sha256": "9c1f..."},
     {"path": "model.safetensors", "size": 4965811896, "sha256": "1d2e...", "url": "blobs/1d2e..."}]

``url`` is optional (default: ``path``) and is resolved against the manifest's URL. ``sha256`` is
optional too; a file without it is downloaded with its size checked only and reported as unverified.
Credentials: ``token`` sends ``Authorization: Bearer <token>`` to the mirror (never to another host a
file redirects to). The snapshot is the SHA-256 of the manifest, so an unchanged manifest means an
unchanged model.
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from modelagent import CancelledError, CredentialsError, DownloadError, RequestSigner, SourcePlan, SourceRequest
from modelagent.sources import select_paths

__all__ = ["BearerSigner", "MirrorSource"]

_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_MAX_MANIFEST = 16 << 20


class BearerSigner(RequestSigner):
    """Adds a bearer token to each request the engine sends to the mirror."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token

    def sign(self, method: str, url: str, body: str, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [*headers, ("Authorization", f"Bearer {self._token}")]

    def describe(self) -> str:
        return "mirror bearer token"


class MirrorSource:
    """Plans downloads from a manifest-described HTTP(S) mirror."""

    scheme = "mirror+https"

    def plan(self, request: SourceRequest) -> SourcePlan:
        manifest_url = self._manifest_url(request.uri)
        token = request.credentials.get("token", "")
        raw = self._fetch(manifest_url, token, request)
        entries = self._parse(manifest_url, raw)

        kept, excluded = select_paths([e["path"] for e in entries], request.include, request.exclude)
        wanted = set(kept)
        signer = BearerSigner(token) if token else None
        files: list[Any] = []
        unverifiable: list[tuple[str, str]] = []
        for entry in entries:
            if entry["path"] not in wanted:
                continue
            planned: dict[str, Any] = {
                "path": entry["path"],
                "url": urllib.parse.urljoin(manifest_url, entry.get("url") or _quote(entry["path"])),
                "size": entry["size"],
            }
            if "sha256" in entry:
                planned["digest"] = {"kind": "sha256", "value": entry["sha256"]}
            else:
                unverifiable.append((entry["path"], f"the manifest {manifest_url} gives no sha256"))
            if signer is not None:
                planned["signer"] = signer
            files.append(planned)
        parts = urllib.parse.urlsplit(manifest_url)
        return SourcePlan(
            files=files,
            snapshot=hashlib.sha256(raw).hexdigest(),
            label=f"{parts.netloc}{parts.path.rsplit('/', 1)[0]}",
            excluded=excluded,
            unverifiable=unverifiable,
            details={"manifest": manifest_url},
        )

    def explain_failure(self, error: BaseException, request: SourceRequest, plan: SourcePlan) -> None:
        """A refused file is most likely a missing or wrong token: say so."""
        if getattr(error, "status", 0) in (401, 403):
            have = "the token was refused" if request.credentials.get("token") else "no token was given"
            raise CredentialsError(f"mirror refused {getattr(error, 'url', '')}: {have} (credentials key 'token')")

    @staticmethod
    def _manifest_url(uri: str) -> str:
        scheme, sep, rest = uri.partition("://")
        if scheme not in ("mirror+https", "mirror+http") or not sep or not rest or rest.startswith("/"):
            raise DownloadError(f"invalid mirror URI '{uri}': expected mirror+https://host/path/manifest.json")
        url = f"{scheme.removeprefix('mirror+')}://{rest}"
        if not urllib.parse.urlsplit(url).hostname:
            raise DownloadError(f"invalid mirror URI '{uri}': no host")
        return url

    @staticmethod
    def _fetch(url: str, token: str, request: SourceRequest) -> bytes:
        if request.cancel is not None and request.cancel.cancelled:
            raise CancelledError("download cancelled")
        options = request.options
        ca_bundle = (options.ca_bundle or None) if options else None
        try:
            context = ssl.create_default_context(cafile=ca_bundle)
        except (ssl.SSLError, OSError) as e:
            raise DownloadError(f"cannot load the CA bundle {ca_bundle} for {url}: {e}") from e
        if options is not None and not options.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        headers = {"User-Agent": (options.user_agent if options else "") or "modelagent-mirror-source"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            with urllib.request.urlopen(  # noqa: S310 - the scheme is checked to be http(s)
                urllib.request.Request(url, headers=headers), timeout=30, context=context
            ) as response:
                body = response.read(_MAX_MANIFEST + 1)
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                raise CredentialsError(f"mirror manifest {url}: HTTP {e.code} {e.reason} (credentials key 'token')")
            raise DownloadError(f"cannot fetch mirror manifest {url}: HTTP {e.code} {e.reason}") from e
        except (urllib.error.URLError, OSError) as e:
            raise DownloadError(f"cannot fetch mirror manifest {url}: {getattr(e, 'reason', e)}") from e
        if len(body) > _MAX_MANIFEST:
            raise DownloadError(f"mirror manifest {url} is larger than {_MAX_MANIFEST} bytes")
        return body

    @staticmethod
    def _parse(url: str, raw: bytes) -> list[dict[str, Any]]:
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DownloadError(f"mirror manifest {url} is not valid JSON: {e}") from e
        if not isinstance(data, list):
            raise DownloadError(f"mirror manifest {url} must be a JSON list of files, not {type(data).__name__}")
        seen: set[str] = set()
        for i, entry in enumerate(data):
            where = f"mirror manifest {url}, entry {i}"
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
                raise DownloadError(f"{where}: needs a non-empty string 'path'")
            size = entry.get("size")
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise DownloadError(f"{where} ({entry['path']}): 'size' must be a non-negative integer")
            if "sha256" in entry and not (isinstance(entry["sha256"], str) and _SHA256.match(entry["sha256"])):
                raise DownloadError(f"{where} ({entry['path']}): 'sha256' must be 64 lower-case hex digits")
            if "url" in entry and not isinstance(entry["url"], str):
                raise DownloadError(f"{where} ({entry['path']}): 'url' must be a string")
            if entry["path"] in seen:
                raise DownloadError(f"{where}: '{entry['path']}' is listed twice")
            seen.add(entry["path"])
        return data


def _quote(path: str) -> str:
    return urllib.parse.quote(path, safe="/")
