"""``model-agent run``: the agent itself, on Kubernetes (DaemonSet) or standalone (``--standalone FILE``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from modelagent.agent.config import ConfigError, add_arguments, resolve


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the agent: watch models, download them, report their status",
        description="Run the model agent. On Kubernetes it watches BaseModels/ClusterBaseModels and reports "
        "through node labels and the node's ConfigMap; with --standalone it reads models from a YAML file "
        "and writes the same entries to <models-root-dir>/.modelagent/status.json. Every flag can also "
        "be set with the environment variable shown. Exit status 2 for bad settings.",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from modelagent.agent.logging import configure_logging
    from modelagent.agent.runner import AgentRunner

    options = {k: v for k, v in vars(args).items() if k not in ("func", "command")}
    try:
        settings = resolve(options)
    except ConfigError as error:
        print(f"model-agent run: error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format, stream=sys.stderr if settings.once else None)
    runner = AgentRunner(settings)
    runner.install_signal_handlers()
    return runner.run()
