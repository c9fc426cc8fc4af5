"""Settings of ``model-agent run``: every flag, its environment variable and its default.

Precedence: command-line flag, then environment variable, then default. Every flag ``--some-flag`` is
also read from ``MODEL_AGENT_SOME_FLAG``; ``--node-name`` also from ``NODE_NAME`` (the downward API
variable OME's manifests set) and ``--kubeconfig`` also from ``KUBECONFIG``.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

from modelagent.agent.logging import LOG_FORMATS, parse_level


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the flag and its environment variable."""


@dataclass(frozen=True)
class Option:
    """One ``model-agent run`` setting."""

    flag: str
    kind: str  # "int" | "float" | "str" | "bool"
    default: Any
    help: str
    env: tuple[str, ...] = ()
    minimum: float | None = None
    choices: tuple[str, ...] | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def env_names(self) -> tuple[str, ...]:
        return ("MODEL_AGENT_" + self.dest.upper(), *self.env)


OPTIONS: tuple[Option, ...] = (
    Option("--port", "int", 8080, "HTTP port for /metrics, /healthz, /livez, /readyz", minimum=0),
    Option("--models-root-dir", "str", "/mnt/models", "folder holding every model's files"),
    Option("--node-name", "str", None, "this node's name (required on Kubernetes; standalone: the host name)",
           env=("NODE_NAME",)),
    Option("--node-label-retry", "int", 5, "attempts for a node label write", minimum=1),
    Option("--download-retry", "int", 3, "attempts for one model download (transient failures)", minimum=1),
    Option("--concurrency", "int", 4, "parallel connections per model download", minimum=1),
    Option("--multipart-concurrency", "int", 4, "parallel ranged parts per large file", minimum=1),
    Option("--num-download-worker", "int", 5, "models downloaded at the same time", minimum=1),
    Option("--namespace", "str", "ome", "namespace of the node's ConfigMap and of ClusterBaseModel Secrets"),
    Option("--log-level", "str", "info", "debug, info, warn, error"),
    Option("--log-format", "str", "json", "json (one object per line) or text", choices=LOG_FORMATS),
    Option("--standalone", "str", None, "run without Kubernetes, reading models from this YAML file"),
    Option("--kubeconfig", "str", None, "kubeconfig file (default: in-cluster, then ~/.kube/config)",
           env=("KUBECONFIG",)),
    Option("--reconcile-interval", "float", 300.0, "seconds between self-healing passes over labels and entries",
           minimum=1.0),
    Option("--progress-interval", "float", 5.0, "seconds between progress updates of a downloading model",
           minimum=0.1),
    Option("--instance-type-map", "str", None, "TensorRT-LLM shapes: JSON object of instance type -> shape alias "
           "added to OME's table, or the path of a file holding it (e.g. a mounted ConfigMap key)",
           env=("INSTANCE_TYPE_MAP",)),
    Option("--once", "bool", False, "standalone: process every model to a final state, print the table, exit"),
    Option("--demo-hub", "bool", False, "standalone: serve the bundled example model as hf://modelagent/tiny-llama "
           "from a local fake hub on 127.0.0.1 (offline demo)"),
)

_BY_DEST = {o.dest: o for o in OPTIONS}


@dataclass(frozen=True)
class Settings:
    """Resolved settings (see :data:`OPTIONS`)."""

    port: int = 8080
    models_root_dir: str = "/mnt/models"
    node_name: str = ""
    node_label_retry: int = 5
    download_retry: int = 3
    concurrency: int = 4
    multipart_concurrency: int = 4
    num_download_worker: int = 5
    namespace: str = "ome"
    log_level: str = "info"
    log_format: str = "json"
    standalone: str | None = None
    kubeconfig: str | None = None
    reconcile_interval: float = 300.0
    progress_interval: float = 5.0
    instance_type_map: str | None = None
    once: bool = False
    demo_hub: bool = False
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def is_standalone(self) -> bool:
        """True when models come from a file instead of a cluster."""
        return self.standalone is not None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every :data:`OPTIONS` flag to ``parser`` (defaults left to :func:`resolve`)."""
    for option in OPTIONS:
        envs = ", ".join(option.env_names)
        shown = "" if option.default in (None, False) else f"; default {option.default}"
        text = f"{option.help} (env {envs}{shown})"
        if option.kind == "bool":
            parser.add_argument(option.flag, action="store_true", default=None, help=text)
        else:
            parser.add_argument(option.flag, default=None, metavar=option.dest.upper(), help=text)


def _convert(option: Option, raw: Any, origin: str) -> Any:
    if option.kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{origin} must be true or false, got {raw!r}")
    if option.kind == "str":
        value = str(raw)
        if option.choices is not None and value not in option.choices:
            raise ConfigError(f"{origin} must be one of {', '.join(option.choices)}, got {value!r}")
        return value
    cast: Callable[[str], Any] = int if option.kind == "int" else float
    try:
        value = cast(str(raw).strip())
    except ValueError:
        raise ConfigError(f"{origin} must be {'an integer' if option.kind == 'int' else 'a number'}, "
                          f"got {raw!r}") from None
    if option.minimum is not None and value < option.minimum:
        raise ConfigError(f"{origin} must be at least {option.minimum:g}, got {value}")
    if option.flag == "--port" and value > 65535:
        raise ConfigError(f"{origin} must be at most 65535, got {value}")
    return value


def resolve(args: argparse.Namespace | Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Combine parsed flags with the environment and defaults; :class:`ConfigError` for a bad value.

    Also enforces: ``--node-name``/``NODE_NAME`` required unless ``--standalone`` (standalone defaults it to
    the host name); ``--once`` only with ``--standalone``; a valid ``--log-level``; a readable, well-formed
    ``--instance-type-map``/``INSTANCE_TYPE_MAP``.
    """
    env = os.environ if environ is None else environ
    given = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in OPTIONS:
        raw = given.get(option.dest)
        if raw is not None:
            values[option.dest] = _convert(option, raw, option.flag)
            sources[option.dest] = "flag"
            continue
        for name in option.env_names:
            if env.get(name, "") != "":
                values[option.dest] = _convert(option, env[name], f"{option.flag} (from ${name})")
                sources[option.dest] = f"env {name}"
                break
        else:
            values[option.dest] = option.default
            sources[option.dest] = "default"
    try:
        parse_level(values["log_level"])
    except ValueError as error:
        raise ConfigError(str(error)) from None
    for flag in ("once", "demo_hub"):
        if values[flag] and values["standalone"] is None:
            raise ConfigError(f"--{flag.replace('_', '-')} needs --standalone MODELS.yaml")
    if values["instance_type_map"] is not None:
        from modelagent.agent.shape_filter import InstanceTypeMapError, load_instance_type_map

        origin = "--instance-type-map" if sources["instance_type_map"] == "flag" else \
            f"--instance-type-map (from ${sources['instance_type_map'].removeprefix('env ')})"
        try:
            load_instance_type_map(values["instance_type_map"], origin=origin)
        except InstanceTypeMapError as error:
            raise ConfigError(str(error)) from None
    if not values["node_name"]:
        if values["standalone"] is None:
            raise ConfigError(
                "the node name is required: set NODE_NAME (e.g. from the downward API, fieldRef spec.nodeName) "
                "or pass --node-name"
            )
        values["node_name"] = socket.gethostname() or "standalone"
        sources["node_name"] = "host name"
    return Settings(**values, sources=sources)


def describe(settings: Settings) -> dict[str, Any]:
    """The settings as a dict for the start-up log line (no secrets are among them)."""
    return {o.dest: getattr(settings, o.dest) for o in OPTIONS}


__all__ = ["OPTIONS", "ConfigError", "Option", "Settings", "add_arguments", "describe", "resolve"]
