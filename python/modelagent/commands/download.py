"""``model-agent download URI --dest DIR``: fetch a model with a live progress display."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from modelagent import _core
from modelagent.download import download
from modelagent.progress import format_bytes

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "download",
        help="download a model (hf://org/name[@revision]) into a directory and verify it",
        description=(
            "Download a model into DIR, verifying every file against the hub's digests. Files land at their "
            "repository paths; re-running on a complete directory only checks the revision. Duplicate weight "
            "formats (*.bin beside *.safetensors, original/, ...) are skipped unless --all-files or an --include "
            "pattern asks for them."
        ),
    )
    parser.add_argument("uri", help="hf://org/name[@revision] (branch, tag, refs/pr/N or commit; default main)")
    parser.add_argument("--dest", "-d", required=True, type=Path, metavar="DIR", help="destination directory")
    parser.add_argument(
        "--include", action="append", default=[], metavar="GLOB",
        help="download only paths matching GLOB ('*' stays in a directory, '**' crosses); repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB", help="skip paths matching GLOB; repeatable"
    )
    parser.add_argument(
        "--all-files", action="store_true", help="also download duplicate weight formats (skipped by default)"
    )
    parser.add_argument("--connections", type=int, metavar="N", help="maximum parallel connections")
    token = parser.add_mutually_exclusive_group()
    token.add_argument("--token", help="Hugging Face token (default: HF_TOKEN, then $HF_HOME/token)")
    token.add_argument("--token-file", type=Path, metavar="FILE", help="read the Hugging Face token from FILE")
    parser.add_argument("--endpoint", help="hub URL (default: HF_ENDPOINT or https://huggingface.co)")
    parser.add_argument(
        "--prune", action="store_true", help="remove files of an earlier download that are no longer part of it"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.set_defaults(func=run)


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
            endpoint=args.endpoint,
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

    if args.json:
        payload = {
            "uri": result.uri,
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
        }
        print(json.dumps(payload, indent=2))
        return 0

    fetched = len(result.downloaded)
    print(
        f"{result.repo_id}@{result.commit[:12]} -> {result.dest}: {len(result.files)} files, "
        f"{format_bytes(result.bytes)} ({fetched} downloaded, {format_bytes(result.bytes_fetched)} fetched, "
        f"{len(result.skipped)} already present) in {result.seconds:.1f} s"
    )
    if result.excluded:
        print(f"skipped {len(result.excluded)} repository files (see --include/--exclude/--all-files)")
    for path in result.removed:
        print(f"removed {path} (no longer part of the download)")
    if result.stale:
        print(
            f"{len(result.stale)} files from an earlier download are no longer part of it "
            f"(kept; --prune removes them): {', '.join(result.stale)}"
        )
    return 0
