"""An example modelagent source plug-in: ``mirror+https://host/path/manifest.json``."""

from __future__ import annotations

from modelagent_mirror.source import BearerSigner, MirrorSource

__all__ = ["BearerSigner", "MirrorSource"]
