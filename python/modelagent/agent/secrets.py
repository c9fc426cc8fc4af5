"""A model's credentials: the Hugging Face token (its Secret first, then ``spec.storage.parameters.token``)
and, for object stores, the whole decoded Secret named by ``spec.storage.key``."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Mapping
from typing import Any

from modelagent._core import CredentialsError
from modelagent.agent.model_ref import ModelRef

SecretReader = Callable[[str, str], "Mapping[str, str] | None"]
"""``read(namespace, name)`` -> the Secret's ``data`` map (base64 values as the API returns them), or None
when the Secret does not exist. Other failures raise."""

_log = logging.getLogger("modelagent.agent.secrets")


def _storage(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    storage = spec.get("storage") if isinstance(spec, Mapping) else None
    return storage if isinstance(storage, Mapping) else {}


def _parameters(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    params = _storage(obj).get("parameters")
    return params if isinstance(params, Mapping) else {}


def hf_token(
    obj: Mapping[str, Any],
    ref: ModelRef,
    *,
    read_secret: SecretReader | None,
    cluster_namespace: str,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> str | None:
    """The model's Hugging Face token, or None (the downloader then falls back to ``HF_TOKEN``).

    1. The Secret named ``spec.storage.key`` in the model's namespace (ClusterBaseModels: ``cluster_namespace``,
       the agent's ``--namespace``), data key ``parameters.secretKey`` or ``token``, base64-decoded.
    2. ``spec.storage.parameters.token``.

    A missing or unreadable Secret or data key is logged as a warning and the lookup goes on.
    """
    log = log or _log
    params = _parameters(obj)
    secret_name = _storage(obj).get("key")
    if isinstance(secret_name, str) and secret_name:
        namespace = ref.namespace or cluster_namespace
        data_key = params.get("secretKey") or "token"
        if read_secret is None:
            log.warning("secret %s/%s named by spec.storage.key cannot be read in this mode", namespace, secret_name)
        else:
            try:
                data = read_secret(namespace, secret_name)
            except Exception as error:  # noqa: BLE001 - a failed lookup must not stop the download
                log.warning("cannot read secret %s/%s: %s", namespace, secret_name, error)
                data = None
            else:
                if data is None:
                    log.warning("secret %s/%s named by spec.storage.key does not exist", namespace, secret_name)
            if data is not None:
                value = data.get(str(data_key))
                if value is None:
                    log.warning("secret %s/%s has no data key %r", namespace, secret_name, data_key)
                else:
                    try:
                        token = base64.b64decode(value, validate=True).decode("utf-8").strip()
                    except (binascii.Error, UnicodeDecodeError, ValueError):
                        log.warning("secret %s/%s key %r is not valid base64 UTF-8", namespace, secret_name, data_key)
                    else:
                        if token:
                            return token
    token = params.get("token")
    if isinstance(token, str) and token.strip():
        return token.strip()
    return None


def storage_credentials(
    obj: Mapping[str, Any],
    ref: ModelRef,
    *,
    read_secret: SecretReader | None,
    cluster_namespace: str,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> dict[str, str]:
    """The decoded data of the Secret named by ``spec.storage.key`` (object-store credentials such as
    ``aws_access_key_id``), or ``{}`` when the model names no Secret.

    The Secret is read from the model's namespace (ClusterBaseModels: ``cluster_namespace``, the agent's
    ``--namespace``). Without a way to read Secrets (standalone) a named Secret is logged as a warning and
    ``{}`` returned, so the source falls back to its environment and files. Values lose surrounding
    whitespace (a key written with `echo` ends in a newline). Raises
    :class:`~modelagent.CredentialsError` naming the Secret (and data key) when the Secret does not exist,
    cannot be read, or holds a value that is not base64 UTF-8: a model whose credentials are named but
    unusable must not be fetched anonymously.
    """
    log = log or _log
    secret_name = _storage(obj).get("key")
    if not isinstance(secret_name, str) or not secret_name:
        return {}
    namespace = ref.namespace or cluster_namespace
    if read_secret is None:
        log.warning("secret %s/%s named by spec.storage.key cannot be read in this mode", namespace, secret_name)
        return {}
    try:
        data = read_secret(namespace, secret_name)
    except Exception as error:  # noqa: BLE001 - reported as a credentials failure naming the Secret
        raise CredentialsError(f"cannot read secret {namespace}/{secret_name} named by spec.storage.key: "
                               f"{' '.join(str(error).split())}") from error
    if data is None:
        raise CredentialsError(f"secret {namespace}/{secret_name} named by spec.storage.key does not exist")
    decoded: dict[str, str] = {}
    for key, value in data.items():
        try:
            decoded[str(key)] = base64.b64decode(value or "", validate=True).decode("utf-8").strip()
        except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
            raise CredentialsError(
                f"secret {namespace}/{secret_name} key {key!r} is not valid base64 UTF-8"
            ) from None
    return decoded


def kubernetes_secret_reader(core_api: Any) -> SecretReader:
    """A :data:`SecretReader` over a ``kubernetes.client.CoreV1Api`` (only ``get`` on Secrets)."""

    def read(namespace: str, name: str) -> Mapping[str, str] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            secret = core_api.read_namespaced_secret(name, namespace, _request_timeout=10)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return dict(secret.data or {})

    return read


__all__ = ["SecretReader", "hf_token", "kubernetes_secret_reader", "storage_credentials"]
