"""``model-agent inspect [PATH] [--json]``: print a model's metadata."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from modelagent._core import ModelAgentError
from modelagent.metadata import example_model_path, inspect_model


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="print a model's metadata (type, parameters, context length, capabilities, ...)",
        description="Read a model directory's config.json and safetensors headers and print its metadata. "
        "Exit status 2 when the model is missing or malformed.",
    )
    parser.add_argument(
        "path",
        nargs="?",
        help="model directory or config.json (default: the bundled example model)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: the ConfigMap config keys plus parameterCount, torchDtype, modelSizeBytes",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = args.path if args.path is not None else example_model_path()
    try:
        metadata = inspect_model(path)
    except (ModelAgentError, OSError) as error:
        message = " ".join(str(error).split())
        print(f"model-agent inspect: error: {message}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(metadata.to_dict()))
    else:
        rows = metadata.summary_rows()
        width = max(len(label) for label, _ in rows)
        for label, value in rows:
            print(f"{label:<{width}}  {value}")
    return 0
