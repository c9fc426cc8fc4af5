"""Reading samples out of a Prometheus text exposition in tests."""

from __future__ import annotations


def metric(text: str, family: str, /, **labels: str) -> float:
    """The value of the first sample of ``family`` whose labels include ``labels`` (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(family + "{") and not line.startswith(family + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    return 0.0
