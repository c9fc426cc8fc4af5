"""Field validation of the fake Kubernetes API server, with the real API server's messages.

The checks and the wording follow ``k8s.io/apimachinery/pkg/util/validation`` and the core
validators (labels, annotations, object names, ConfigMap and Secret data), so that a client
sees the same ``422 Invalid`` Status from the fake as from a real cluster.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
QUALIFIED_NAME_MAX = 63
LABEL_VALUE_FMT = f"({QUALIFIED_NAME_FMT})?"
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, "
    "'-', '_' or '.', and must start and end with an alphanumeric character"
)
LABEL_VALUE_MAX = 63
DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + r"(\." + DNS1123_LABEL_FMT + ")*"
DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
DNS1123_SUBDOMAIN_MAX = 253
CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
MAX_DATA_SIZE = 1024 * 1024
MAX_ANNOTATIONS_SIZE = 256 * 1024

_QUALIFIED_NAME_RE = re.compile(f"^{QUALIFIED_NAME_FMT}$")
_LABEL_VALUE_RE = re.compile(f"^{LABEL_VALUE_FMT}$")
_DNS1123_LABEL_RE = re.compile(f"^{DNS1123_LABEL_FMT}$")
_DNS1123_SUBDOMAIN_RE = re.compile(f"^{DNS1123_SUBDOMAIN_FMT}$")
_CONFIG_KEY_RE = re.compile(f"^{CONFIG_KEY_FMT}$")


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """Build the apimachinery ``RegexError`` text (the double space before "or" is real)."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    out = msg + " (e.g. "
    for i, example in enumerate(examples):
        if i > 0:
            out += " or "
        out += f"'{example}', "
    return out + f"regex used for validation is '{fmt}')"


def max_len_error(length: int) -> str:
    return f"must be no more than {length} bytes"


def is_dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        errs.append(regex_error(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1123_label(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_LABEL_MAX:
        errs.append(max_len_error(DNS1123_LABEL_MAX))
    if not _DNS1123_LABEL_RE.match(value):
        errs.append(regex_error(DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    """Label/annotation key check: optional DNS-subdomain prefix, '/', 63-char name part."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return [
            "a qualified name "
            + regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > QUALIFIED_NAME_MAX:
        errs.append("name part " + max_len_error(QUALIFIED_NAME_MAX))
    if not _QUALIFIED_NAME_RE.match(name):
        errs.append(
            "name part "
            + regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def is_valid_label_value(value: str) -> list[str]:
    errs = []
    if len(value) > LABEL_VALUE_MAX:
        errs.append(max_len_error(LABEL_VALUE_MAX))
    if not _LABEL_VALUE_RE.match(value):
        errs.append(regex_error(LABEL_VALUE_MSG, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def is_config_map_key(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _CONFIG_KEY_RE.match(value):
        errs.append(regex_error(CONFIG_KEY_MSG, CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


_CAUSE_REASONS = {
    "Invalid value": "FieldValueInvalid",
    "Required value": "FieldValueRequired",
    "Too long": "FieldValueTooLong",
    "Forbidden": "FieldValueForbidden",
    "Duplicate value": "FieldValueDuplicate",
}


@dataclass
class FieldError:
    """One ``field.Error``: its type ("Invalid value", "Too long", ...), path, value and detail."""

    type: str
    field: str
    detail: str
    value: Any = None
    show_value: bool = True

    def body(self) -> str:
        text = self.type
        if self.show_value and self.type in ("Invalid value", "Duplicate value"):
            text += ": " + _go_quote(self.value)
        if self.detail:
            text += ": " + self.detail
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"

    def cause(self) -> dict[str, str]:
        return {"reason": _CAUSE_REASONS[self.type], "message": self.body(), "field": self.field}


def _go_quote(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def invalid(field: str, value: Any, detail: str) -> FieldError:
    return FieldError("Invalid value", field, detail, value)


def validate_labels(labels: dict[str, str], field: str = "metadata.labels") -> list[FieldError]:
    errs = []
    for key in sorted(labels):
        errs.extend(invalid(field, key, msg) for msg in is_qualified_name(key))
        errs.extend(invalid(field, labels[key], msg) for msg in is_valid_label_value(labels[key]))
    return errs


def validate_annotations(annotations: dict[str, str], field: str = "metadata.annotations") -> list[FieldError]:
    errs = []
    total = 0
    for key in sorted(annotations):
        errs.extend(invalid(field, key, msg) for msg in is_qualified_name(key.lower()))
        total += len(key.encode()) + len(annotations[key].encode())
    if total > MAX_ANNOTATIONS_SIZE:
        errs.append(FieldError("Too long", field, f"may not be more than {MAX_ANNOTATIONS_SIZE} bytes"))
    return errs


def validate_name(name: str | None, generate_name: str | None, dns_label: bool) -> list[FieldError]:
    """``metadata.name`` (or ``generateName``) check; namespaces use DNS labels, others subdomains."""
    check = is_dns1123_label if dns_label else is_dns1123_subdomain
    if not name:
        if not generate_name:
            return [FieldError("Required value", "metadata.name", "name or generateName is required")]
        return [invalid("metadata.generateName", generate_name, m) for m in check(generate_name + "a")]
    return [invalid("metadata.name", name, m) for m in check(name)]


def _data_keys(data: dict[str, Any], path: str) -> list[FieldError]:
    errs = []
    for key in sorted(data):
        errs.extend(invalid(f"{path}[{key}]", key, m) for m in is_config_map_key(key))
    return errs


def validate_config_map(obj: dict[str, Any]) -> list[FieldError]:
    """Keys of ``data``/``binaryData`` and the 1 MiB total size limit."""
    data: dict[str, str] = obj.get("data") or {}
    binary: dict[str, str] = obj.get("binaryData") or {}
    errs = _data_keys(data, "data") + _data_keys(binary, "binaryData")
    for key in sorted(set(data) & set(binary)):
        errs.append(invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
    total = sum(len(v.encode()) for v in data.values())
    total += sum(len(base64.b64decode(v)) for v in binary.values())
    if total > MAX_DATA_SIZE:
        errs.append(FieldError("Too long", "[]", f"may not be more than {MAX_DATA_SIZE} bytes"))
    return errs


def validate_secret(obj: dict[str, Any]) -> list[FieldError]:
    data: dict[str, str] = obj.get("data") or {}
    errs = _data_keys(data, "data")
    total = sum(len(base64.b64decode(v)) for v in data.values())
    if total > MAX_DATA_SIZE:
        errs.append(FieldError("Too long", "data", f"may not be more than {MAX_DATA_SIZE} bytes"))
    return errs


_B64_ALPHABET = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def base64_error(value: str) -> str | None:
    """None when ``value`` is standard padded base64, else Go's "illegal base64 data" message."""
    stripped = value.rstrip("=")
    pad = len(value) - len(stripped)
    for i, ch in enumerate(stripped):
        if ch not in _B64_ALPHABET:
            return f"illegal base64 data at input byte {i}"
    if pad > 2 or len(value) % 4 != 0:
        return f"illegal base64 data at input byte {len(value) - pad if pad else len(value) - len(value) % 4}"
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error:
        return f"illegal base64 data at input byte {len(stripped)}"
    return None
