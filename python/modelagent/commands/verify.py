"""``model-agent verify DIR``: re-check a downloaded model against its recorded digests."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from modelagent import _core
from modelagent.download import verify

EXIT_BAD_FILES = 1
EXIT_NO_RECORD = 2


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="re-hash a downloaded model and compare it with the digests recorded at download time",
        description=(
            "Re-read every file recorded in DIR/.modelagent/download.json and check its size and digest "
            "(whatever the source recorded: SHA-256 or git blob SHA-1 for Hugging Face, MD5 or multipart MD5 for "
            "object stores; size only for files recorded without a digest). Exits 1 naming the bad files."
        ),
    )
    parser.add_argument("dest", type=Path, metavar="DIR", help="a directory filled by model-agent download")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        result = verify(args.dest)
    except KeyboardInterrupt:
        print("model-agent verify: interrupted", file=sys.stderr)
        return 130
    except _core.ModelAgentError as e:
        print(f"model-agent verify: error: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_NO_RECORD
    if args.json:
        print(
            json.dumps(
                {
                    "dest": str(result.dest),
                    "uri": result.uri,
                    "source": result.source,
                    "commit": result.commit,
                    "ok": result.ok,
                    "unverified": result.unverified,
                    "files": [{"path": f.path, "ok": f.ok, "note": f.note} for f in result.files],
                },
                indent=2,
            )
        )
    else:
        for bad in result.bad:
            print(f"BAD {bad.path}: {bad.note or 'does not match its recorded digest'}")
        for path in result.unverified:
            print(f"warning: {path} has no recorded digest; only its size was checked")
        state = "OK" if result.ok else f"FAILED ({len(result.bad)} of {len(result.files)} files bad)"
        print(f"{result.dest}: {len(result.files)} files of {result.uri} at {result.commit[:12]}: {state}")
    if not result.ok:
        names = ", ".join(f.path for f in result.bad)
        print(f"model-agent verify: error: {len(result.bad)} bad files: {names}", file=sys.stderr)
        return EXIT_BAD_FILES
    return 0
