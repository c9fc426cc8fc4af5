"""``model-agent download URI --dest DIR``: fetch a model (any registered source) with a live progress display."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from modelagent import _core
from modelagent.download import DownloadResult, download
from modelagent.progress import format_bytes

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "download",
        help="download a model (hf://, oci://, s3://, or a plug-in's scheme) into a directory and verify it",
        description=(
            "Download a model into DIR, verifying every file against the source's digests. Files land at their "
            "paths under DIR (repository paths; object names without the prefix); re-running on a complete "
            "directory only checks that nothing changed. Hugging Face: duplicate weight formats (*.bin beside "
            "*.safetensors, original/, ...) are skipped unless --all-files or an --include pattern asks for them. "
            "Installed plug-ins add schemes (entry-point group modelagent.sources)."
        ),
    )
    parser.add_argument(
        "uri",
        help="hf://org/name[@revision] (branch, tag, refs/pr/N or commit; default main), "
        "oci://n/NAMESPACE/b/BUCKET/o/PREFIX, s3://BUCKET[@REGION]/PREFIX, or a plug-in's URI",
    )
    parser.add_argument("--dest", "-d", required=True, type=Path, metavar="DIR", help="destination directory")
    parser.add_argument(
        "--include", action="append", default=[], metavar="GLOB",
        help="download only paths matching GLOB ('*' stays in a directory, '**' crosses); repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB", help="skip paths matching GLOB; repeatable"
    )
    parser.add_argument(
        "--all-files", action="store_true", help="disable the source's default exclusions (duplicate weight formats)"
    )
    parser.add_argument(
        "--connections", "--concurrency", type=int, metavar="N", dest="connections",
        help="maximum parallel connections across all files (--concurrency is OME's name for it)",
    )  # fmt: skip
    parser.add_argument(
        "--multipart-concurrency", type=int, metavar="N",
        help="maximum parallel byte ranges of one file (default: the engine's)",
    )  # fmt: skip
    token = parser.add_mutually_exclusive_group()
    token.add_argument("--token", help="Hugging Face token (default: HF_TOKEN, then $HF_HOME/token)")
    token.add_argument("--token-file", type=Path, metavar="FILE", help="read the Hugging Face token from FILE")
    parser.add_argument(
        "--endpoint",
        help="service URL: the hub for hf:// (default: HF_ENDPOINT or https://huggingface.co), the object store "
        "for oci:// and s3:// (same as --param endpoint=URL)",
    )
    parser.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE",
        help="a source parameter (as spec.storage.parameters: auth, region, profile, path_style, ...); repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--credentials-file", type=Path, metavar="FILE",
        help="source credentials (as the model's Secret): KEY=VALUE lines or a JSON object of strings",
    )  # fmt: skip
    parser.add_argument(
        "--prune", action="store_true", help="remove files of an earlier download that are no longer part of it"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.set_defaults(func=run)


class _UsageError(Exception):
    pass


def _parameters(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _UsageError(f"--param expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


def _credentials(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (blank lines and '#' comments ignored) or a JSON object of strings."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise _UsageError(f"cannot read credentials file {path}: {getattr(e, 'strerror', None) or e}") from e
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise _UsageError(f"credentials file {path} is not valid JSON: {e}") from e
        bad = [k for k, v in data.items() if not isinstance(v, str)]
        if bad:
            raise _UsageError(f"credentials file {path}: value of {bad[0]!r} is not a string")
        return dict(data)
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise _UsageError(f"credentials file {path}, line {number}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"model-agent download: error: {' '.join(message.split())}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    token = args.token
    if args.token_file is not None:
        try:
            token = args.token_file.read_text(encoding="utf-8").strip()
        except OSError as e:
            return _fail(f"cannot read token file {args.token_file}: {e.strerror or e}", EXIT_USAGE)
        if not token:
            return _fail(f"token file {args.token_file} is empty", EXIT_USAGE)
    if args.connections is not None and args.connections < 1:
        return _fail(f"--connections must be at least 1, got {args.connections}", EXIT_USAGE)
    if args.multipart_concurrency is not None and args.multipart_concurrency < 1:
        return _fail(f"--multipart-concurrency must be at least 1, got {args.multipart_concurrency}", EXIT_USAGE)
    try:
        parameters = _parameters(args.param)
        credentials = _credentials(args.credentials_file) if args.credentials_file is not None else None
    except _UsageError as e:
        return _fail(str(e), EXIT_USAGE)
    options = None
    if args.multipart_concurrency is not None:
        options = _core.DownloadOptions()
        options.connections_per_file = args.multipart_concurrency
    try:
        result = download(
            args.uri,
            args.dest,
            token=token,
            include=args.include or None,
            exclude=args.exclude or None,
            all_files=args.all_files,
            connections=args.connections,
            progress=not args.no_progress,
            prune=args.prune,
            options=options,
            endpoint=args.endpoint,
            parameters=parameters or None,
            credentials=credentials,
        )
    except KeyboardInterrupt:
        print(
            "model-agent download: interrupted; finished files are kept and a new run resumes the rest",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except (_core.InvalidStorageUri, ValueError) as e:
        return _fail(str(e), EXIT_USAGE)
    except _core.ModelAgentError as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"{e.filename or args.dest}: {e.strerror or e}")

    for path, reason in result.unverified:
        print(f"model-agent download: warning: {path} is not verified (size checked only): {reason}", file=sys.stderr)
    if args.json:
        payload = {
            "uri": result.uri,
            "source": result.source,
            "label": result.label,
            "snapshot": result.snapshot,
            "dest": str(result.dest),
            "repo_id": result.repo_id,
            "revision": result.revision,
            "commit": result.commit,
            "files": [
                {
                    "path": f.path,
                    "size": f.size,
                    "digest_kind": f.digest_kind,
                    "digest": f.digest,
                    "downloaded": f.downloaded,
                }
                for f in result.files
            ],  # fmt: skip
            "bytes": result.bytes,
            "bytes_fetched": result.bytes_fetched,
            "seconds": round(result.seconds, 3),
            "excluded": [{"path": p, "reason": r} for p, r in result.excluded],
            "stale": result.stale,
            "removed": result.removed,
            "unverified": [{"path": p, "reason": r} for p, r in result.unverified],
        }
        print(json.dumps(payload, indent=2))
        return 0

    fetched = len(result.downloaded)
    print(
        f"{_heading(result)} -> {result.dest}: {len(result.files)} files, "
        f"{format_bytes(result.bytes)} ({fetched} downloaded, {format_bytes(result.bytes_fetched)} fetched, "
        f"{len(result.skipped)} already present) in {result.seconds:.1f} s"
    )
    if result.excluded:
        print(f"skipped {len(result.excluded)} listed files (see --include/--exclude/--all-files)")
    for path in result.removed:
        print(f"removed {path} (no longer part of the download)")
    if result.stale:
        print(
            f"{len(result.stale)} files from an earlier download are no longer part of it "
            f"(kept; --prune removes them): {', '.join(result.stale)}"
        )
    return 0


def _heading(result: DownloadResult) -> str:
    if result.source == "hf":
        return f"{result.repo_id}@{result.commit[:12]}"
    return f"{result.label} ({result.snapshot[:12]})" if result.snapshot else result.label
