"""The ``model-agent`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from modelagent import __version__


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"model-agent {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="model-agent", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p_version = sub.add_parser("version", help="print the version")
    p_version.set_defaults(func=_cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
