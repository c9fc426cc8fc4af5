"""The Hugging Face source: ``hf://org/name[@revision]``.

The revision is resolved to a commit first (so a branch moving mid-download cannot mix versions); the
files of that commit are listed with the tree API, or taken from the previous download's record when it
was of the same commit; the selection (include/exclude, duplicate weight formats) and the plan come from
the C++ core. Sizes and digests come from the listing: SHA-256 for LFS files, git blob SHA-1 otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from modelagent import _core
from modelagent.sources.base import SourcePlan, SourceRequest

__all__ = ["HuggingFaceSource"]

_TOKEN_KEYS = ("token", "hf_token", "HF_TOKEN")


def _tree_from_state(tree: Iterable[Mapping[str, Any]]) -> list[_core.HfFile]:
    return [
        _core.HfFile(t["path"], size=t.get("size"), blob_id=t.get("blob_id", ""), lfs_sha256=t.get("lfs_sha256", ""))
        for t in tree
    ]


def _tree_to_state(files: Iterable[_core.HfFile]) -> list[dict[str, Any]]:
    out = []
    for f in files:
        entry: dict[str, Any] = {"path": f.path, "size": f.size}
        if f.blob_id:
            entry["blob_id"] = f.blob_id
        if f.lfs_sha256:
            entry["lfs_sha256"] = f.lfs_sha256
        out.append(entry)
    return out


def _reusable_tree(previous: Mapping[str, Any] | None, endpoint: str, repo_id: str, commit: str) -> list[Any] | None:
    """The recorded tree when the previous download was of exactly this commit of this repo on this hub."""
    if not previous:
        return None
    if previous.get("endpoint") != endpoint or previous.get("repo_id") != repo_id or previous.get("commit") != commit:
        return None
    tree = previous.get("tree")
    if not isinstance(tree, list) or not all(isinstance(t, dict) and isinstance(t.get("path"), str) for t in tree):
        return None
    return tree


class HuggingFaceSource:
    """Plans ``hf://`` downloads. Parameters: ``endpoint`` (hub URL; default ``HF_ENDPOINT`` or
    https://huggingface.co). Credentials: ``token`` (also ``hf_token`` / ``HF_TOKEN``), used when no
    explicit token is given."""

    scheme = "hf"

    def _client(self, request: SourceRequest) -> tuple[_core.HfClientOptions, str]:
        given = request.credentials
        explicit = request.token or next((given[k] for k in _TOKEN_KEYS if given.get(k)), None)
        token = _core.hf_token(explicit) or ""
        options = request.options if request.options is not None else _core.DownloadOptions()
        client = _core.HfClientOptions(
            endpoint=str(request.parameters.get("endpoint") or ""),
            token=token,
            verify_tls=options.verify_tls,
            ca_bundle=options.ca_bundle,
            user_agent=options.user_agent,
        )
        return client, token

    def plan(self, request: SourceRequest) -> SourcePlan:
        """Resolve the revision, list (or reuse the recorded listing of) the commit, select and plan."""
        repo_id, revision = _core.hf_parse_uri(request.uri)
        client, token = self._client(request)
        hub = client.endpoint
        if _core.hf_is_commit_hash(revision):
            commit = revision
        else:
            commit = _core.hf_resolve_commit(client, repo_id, revision, request.cancel, request.progress)

        recorded = _reusable_tree(request.previous, hub, repo_id, commit)
        if recorded is not None:
            tree = _tree_from_state(recorded)
        else:
            tree = _core.hf_list_files(client, repo_id, commit, request.cancel, request.progress)

        selected, excluded = _core.hf_select_files(
            tree, list(request.include), list(request.exclude), not request.all_files
        )
        files = _core.hf_build_plan(hub, repo_id, commit, selected, token)
        unverifiable = [
            (f.path, "the hub listed no blob id or LFS digest for it") for f in selected if f.digest_kind == "none"
        ]
        return SourcePlan(
            files=files,
            snapshot=commit,
            label=f"{repo_id}@{commit[:8]}",
            excluded=[(p, r) for p, r in excluded],
            unverifiable=unverifiable,
            state={"endpoint": hub, "repo_id": repo_id, "commit": commit, "tree": _tree_to_state(tree)},
            details={"repo_id": repo_id, "revision": revision, "commit": commit, "endpoint": hub},
            listed=recorded is None,
        )

    def explain_failure(self, error: BaseException, request: SourceRequest, plan: SourcePlan) -> None:
        """The engine reports a refused file as a plain HttpStatusError; ask the hub (one HEAD) for the
        typed error behind it (gated repository, missing entry, bad token) and raise that instead."""
        if type(error) is not _core.HttpStatusError or getattr(error, "status", 0) not in (401, 403, 404):
            return
        url = getattr(error, "url", None)
        path = next((entry["path"] for entry in plan.files if entry["url"] == url), None)
        if path is None:
            return
        client, _ = self._client(request)
        try:
            _core.hf_check_file(
                client, plan.details["repo_id"], plan.details["commit"], path, request.cancel, request.progress
            )
        except _core.HttpStatusError as typed:
            if type(typed) is not _core.HttpStatusError:
                raise typed from error
