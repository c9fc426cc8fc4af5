"""Label and field selectors as the Kubernetes API server parses and applies them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from modelagent.testing._kube_validation import is_qualified_name, is_valid_label_value


class SelectorError(ValueError):
    """A selector that does not parse; the message is what the API server reports."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if not present:
            return False
        try:
            have = int(value or "")
        except ValueError:
            return False
        want = int(self.values[0])
        return have > want if self.op == "gt" else have < want


_SPECIAL = set("!=,()<> \t\n")


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in " \t\n":
            i += 1
        elif text.startswith("==", i) or text.startswith("!=", i):
            tokens.append(text[i : i + 2])
            i += 2
        elif ch in "!=,()<>":
            tokens.append(ch)
            i += 1
        else:
            j = i
            while j < len(text) and text[j] not in _SPECIAL:
                j += 1
            tokens.append(text[i:j])
            i = j
    return tokens


def _is_identifier(token: str | None) -> bool:
    return token is not None and token not in ("==", "!=") and token not in set("!=,()<>")


class LabelSelector:
    """A parsed ``labelSelector`` query value (``a=b,c!=d,e in (x,y),f notin (z),g,!h``)."""

    def __init__(self, requirements: Iterable[Requirement] = ()) -> None:
        self.requirements = tuple(requirements)

    @classmethod
    def parse(cls, text: str | None) -> "LabelSelector":
        if not text or not text.strip():
            return cls()
        tokens = _tokenize(text)
        pos = 0
        reqs: list[Requirement] = []

        def peek() -> str | None:
            return tokens[pos] if pos < len(tokens) else None

        while True:
            negate = False
            if peek() == "!":
                negate = True
                pos += 1
            key = peek()
            if not _is_identifier(key):
                raise SelectorError(f"found '{key or ''}', expected: identifier")
            assert key is not None
            pos += 1
            _check_key(key)
            if negate:
                reqs.append(Requirement(key, "!"))
            else:
                op = peek()
                if op is None or op == ",":
                    reqs.append(Requirement(key, "exists"))
                elif op in ("=", "==", "!="):
                    pos += 1
                    value = peek()
                    if value is None or value == ",":
                        value = ""
                    elif not _is_identifier(value):
                        raise SelectorError(f"found '{value}', expected: identifier")
                    else:
                        pos += 1
                    _check_values(key, [value])
                    reqs.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
                elif op in ("in", "notin"):
                    pos += 1
                    if peek() != "(":
                        raise SelectorError(f"found '{peek() or ''}', expected: '('")
                    pos += 1
                    values: list[str] = []
                    while True:
                        tok = peek()
                        if tok == ")":
                            pos += 1
                            break
                        if tok == ",":
                            values.append("")
                            pos += 1
                            continue
                        if not _is_identifier(tok):
                            raise SelectorError(f"found '{tok or ''}', expected: ',', ')' or identifier")
                        assert tok is not None
                        values.append(tok)
                        pos += 1
                        if peek() == ",":
                            pos += 1
                            if peek() == ")":
                                values.append("")
                        elif peek() != ")":
                            raise SelectorError(f"found '{peek() or ''}', expected: ',' or ')'")
                    if not values:
                        raise SelectorError("for 'in', 'notin' operators, values set can't be empty")
                    _check_values(key, values)
                    reqs.append(Requirement(key, op, tuple(values)))
                elif op in ("<", ">"):
                    pos += 1
                    value = peek()
                    if not _is_identifier(value):
                        raise SelectorError(f"found '{value or ''}', expected: identifier")
                    assert value is not None
                    pos += 1
                    try:
                        int(value)
                    except ValueError:
                        raise SelectorError(
                            "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer"
                        ) from None
                    reqs.append(Requirement(key, "gt" if op == ">" else "lt", (value,)))
                else:
                    raise SelectorError(f"found '{op}', expected: in, notin, =, ==, !=, gt, lt")
            tok = peek()
            if tok is None:
                break
            if tok != ",":
                raise SelectorError(f"found '{tok}', expected: ',' or 'end of string'")
            pos += 1
        return cls(reqs)

    def matches(self, labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def empty(self) -> bool:
        return not self.requirements


def _check_key(key: str) -> None:
    errs = is_qualified_name(key)
    if errs:
        raise SelectorError(f'unable to parse requirement: key: Invalid value: "{key}": {errs[0]}')


def _check_values(key: str, values: list[str]) -> None:
    for i, value in enumerate(values):
        errs = is_valid_label_value(value)
        if errs:
            raise SelectorError(
                f'unable to parse requirement: values[{i}][{key}]: Invalid value: "{value}": {errs[0]}'
            )


class FieldSelector:
    """A parsed ``fieldSelector`` (``metadata.name=x,metadata.namespace!=y``); ``\\`` escapes."""

    def __init__(self, requirements: Iterable[tuple[str, str, str]] = ()) -> None:
        self.requirements = tuple(requirements)

    @classmethod
    def parse(cls, text: str | None) -> "FieldSelector":
        if not text or not text.strip():
            return cls()
        reqs = []
        for part in _split_unescaped(text, ","):
            part = part.strip()
            if not part:
                continue
            for op in ("!=", "==", "="):
                idx = _find_unescaped(part, op)
                if idx >= 0:
                    field = part[:idx].strip()
                    value = _unescape(part[idx + len(op) :].strip())
                    reqs.append((field, "!=" if op == "!=" else "=", value))
                    break
            else:
                raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        return cls(reqs)

    def fields(self) -> set[str]:
        return {f for f, _, _ in self.requirements}

    def matches(self, values: dict[str, str]) -> bool:
        for field, op, want in self.requirements:
            have = values.get(field, "")
            if (have == want) != (op == "="):
                return False
        return True

    def empty(self) -> bool:
        return not self.requirements


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, cur, i = [], "", 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            cur += text[i : i + 2]
            i += 2
        elif text[i] == sep:
            parts.append(cur)
            cur = ""
            i += 1
        else:
            cur += text[i]
            i += 1
    parts.append(cur)
    return parts


def _find_unescaped(text: str, token: str) -> int:
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text.startswith(token, i):
            return i
        i += 1
    return -1


def _unescape(text: str) -> str:
    out, i = "", 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out += text[i + 1]
            i += 2
        else:
            out += text[i]
            i += 1
    return out
