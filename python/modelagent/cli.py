"""The ``model-agent`` command line: one module per subcommand under ``modelagent.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module defines add_parser(subparsers) which registers its subcommand and sets func=run.
_COMMAND_MODULES = [
    "modelagent.commands.version",
    "modelagent.commands.inspect",
    "modelagent.commands.download",
    "modelagent.commands.verify",
    "modelagent.commands.run",
    "modelagent.commands.status",
    "modelagent.commands.manifests",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="model-agent",
        description="Per-node model agent for LLM serving: download, verify, inspect and report models.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
