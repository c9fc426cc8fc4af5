"""``model-agent version``."""

from __future__ import annotations

import argparse
from typing import Any

from modelagent import __version__


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("version", help="print the version and exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(f"model-agent {__version__}")
    return 0
