"""``model-agent status``: print a node's model table from its ConfigMap or the standalone status file."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelagent.status_table import render_table, rows_for

STATUS_FILE = Path(".modelagent") / "status.json"
DEFAULT_MODELS_ROOT = "/mnt/models"


class StatusError(Exception):
    """The status cannot be read; the message is the one line printed."""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="print a node's models: status, size, architecture, progress, failure reason",
        description="Print the models a node reports: on Kubernetes from the node's ConfigMap "
        "(<namespace>/<node name>), with --standalone from <models-root-dir>/.modelagent/status.json. "
        "--json prints the ConfigMap data map with each entry parsed (key -> entry object), the same in both "
        "modes. Exit status 2 when the status cannot be read.",
    )
    parser.add_argument("--node", default=None,
                        help="node name (default: $NODE_NAME); Kubernetes mode only")
    parser.add_argument("--namespace", default=None,
                        help="namespace of the node ConfigMaps (default: $MODEL_AGENT_NAMESPACE or ome)")
    parser.add_argument("--kubeconfig", default=None,
                        help="kubeconfig file (default: $KUBECONFIG, in-cluster, then ~/.kube/config)")
    parser.add_argument("--standalone", action="store_true",
                        help="read the standalone agent's status file instead of a ConfigMap")
    parser.add_argument("--models-root-dir", default=None,
                        help="with --standalone: the agent's models folder (default: "
                        "$MODEL_AGENT_MODELS_ROOT_DIR or /mnt/models)")
    parser.add_argument("--json", action="store_true",
                        help="print the data map as JSON (key -> entry object) instead of a table")
    parser.set_defaults(func=run)


# ------------------------------------------------------------------------------------------ sources

def read_status_file(models_root: str | os.PathLike[str]) -> tuple[str, dict[str, str]]:
    """``(description, data)`` from ``<models_root>/.modelagent/status.json``; :class:`StatusError` otherwise."""
    path = Path(models_root) / STATUS_FILE
    where = f"status file {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StatusError(f"no {where}: has `model-agent run --standalone` run with --models-root-dir "
                          f"{models_root}?") from None
    except (OSError, UnicodeDecodeError) as error:
        raise StatusError(f"cannot read {where}: {error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise StatusError(f"{where} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise StatusError(f"{where} must hold a JSON object (ConfigMap key -> entry JSON string), "
                          f"got {type(data).__name__}")
    for key, value in data.items():
        if not isinstance(value, str):
            raise StatusError(f"{where}: entry {key!r} must be a string holding the entry's JSON, "
                              f"got {type(value).__name__}")
    return where, data


def read_configmap(node: str, namespace: str, kubeconfig: str | None) -> tuple[str, dict[str, str]]:
    """``(description, data)`` of ConfigMap ``namespace/node``; :class:`StatusError` when it cannot be read."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    where = f"ConfigMap {namespace}/{node}"
    configuration = client.Configuration()
    try:
        if kubeconfig:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        else:
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                config.load_kube_config(client_configuration=configuration)
    except (config.ConfigException, OSError) as error:
        source = kubeconfig or "in-cluster configuration or ~/.kube/config"
        raise StatusError(f"cannot load Kubernetes credentials from {source}: {_one_line(error)}") from None
    with client.ApiClient(configuration) as api_client:
        core = client.CoreV1Api(api_client)
        try:
            configmap = core.read_namespaced_config_map(node, namespace, _request_timeout=15)
        except ApiException as error:
            if error.status == 404:
                raise StatusError(f"{where} not found: no agent has reported on node {node!r} "
                                  f"(check --node and --namespace)") from None
            raise StatusError(f"cannot read {where}: HTTP {error.status} {_api_message(error)}") from None
        except Exception as error:  # noqa: BLE001 - connection failures come in many urllib3 types
            raise StatusError(f"cannot read {where} from {configuration.host}: {_one_line(error)}") from None
    data = configmap.data or {}
    return where, dict(data)


def _api_message(error: Any) -> str:
    try:
        message = json.loads(error.body).get("message")
    except (TypeError, ValueError, AttributeError):
        message = None
    return _one_line(message or error.reason or "")


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


# ------------------------------------------------------------------------------------------ output

def parsed_data(where: str, data: Mapping[str, str]) -> dict[str, Any]:
    """The data map with each entry's JSON parsed, keys sorted; :class:`StatusError` for unparseable JSON."""
    out: dict[str, Any] = {}
    for key in sorted(data):
        try:
            out[key] = json.loads(data[key])
        except json.JSONDecodeError as error:
            raise StatusError(f"{where}: entry {key!r} is not valid JSON: {error}") from None
    return out


def _resolve(args: argparse.Namespace) -> tuple[str, dict[str, str]]:
    if args.standalone:
        for flag, value in (("--node", args.node), ("--namespace", args.namespace),
                            ("--kubeconfig", args.kubeconfig)):
            if value is not None:
                raise StatusError(f"{flag} has no effect with --standalone")
        root = args.models_root_dir or os.environ.get("MODEL_AGENT_MODELS_ROOT_DIR") or DEFAULT_MODELS_ROOT
        return read_status_file(root)
    if args.models_root_dir is not None:
        raise StatusError("--models-root-dir needs --standalone (on Kubernetes the status is in the ConfigMap)")
    node = args.node or os.environ.get("NODE_NAME", "")
    if not node:
        raise StatusError("the node name is required: pass --node NAME or set NODE_NAME")
    namespace = args.namespace or os.environ.get("MODEL_AGENT_NAMESPACE") or "ome"
    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG") or None
    return read_configmap(node, namespace, kubeconfig)


def run(args: argparse.Namespace) -> int:
    try:
        where, data = _resolve(args)
        if args.json:
            text = json.dumps(parsed_data(where, data), indent=2, ensure_ascii=False) + "\n"
        elif data:
            text = render_table(rows_for(data))
        else:
            text = f"no models in {where}\n"
    except StatusError as error:
        print(f"model-agent status: error: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0
