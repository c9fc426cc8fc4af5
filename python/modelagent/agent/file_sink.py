"""The standalone status sink: model entries in ``<models_root>/.modelagent/status.json``.

The file holds exactly what the node's ConfigMap ``data`` would hold: ``{ConfigMap key: entry JSON
string}``, each string byte-identical to what the Kubernetes sink writes. Labels are kept in memory and
mirrored to ``labels.json`` next to it (for ``model-agent status``). Files are replaced atomically
(temporary file, fsync, rename, fsync of the directory), so a reader never sees a torn file.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from modelagent._core import ModelEntry
from modelagent.agent.model_ref import ModelRef
from modelagent.agent.status_sink import (
    check_status,
    entry_json,
    label_key_for,
    parse_entry,
    with_config,
    with_progress,
    with_status,
)

_log = logging.getLogger("modelagent.agent.file_sink")

STATE_DIR = ".modelagent"
STATUS_FILE = "status.json"
LABELS_FILE = "labels.json"


def atomic_write_json(path: Path, value: Any) -> None:
    """Replace ``path`` with ``value`` as JSON: temp file in the same directory, fsync, rename, fsync dir."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(value, handle, indent=2, sort_keys=True, ensure_ascii=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class FileStatusSink:
    """:class:`~modelagent.agent.status_sink.StatusSink` writing ``<models_root>/.modelagent/status.json``.

    A missing file starts empty; an unreadable one (not JSON, not an object of strings) is renamed to
    ``status.json.corrupt-<unix time>`` with a log line and the sink starts empty. Single entries that do
    not parse are dropped with a log line. Thread-safe.
    """

    def __init__(self, models_root: str | os.PathLike[str]) -> None:
        self.models_root = Path(models_root)
        self.state_dir = self.models_root / STATE_DIR
        self.status_path = self.state_dir / STATUS_FILE
        self.labels_path = self.state_dir / LABELS_FILE
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = self._load()
        self._labels: dict[str, str] = {}

    # ---------------------------------------------------------------------------------------------- writes

    def set_status(self, ref: ModelRef, status: str, *, reason: str | None = None) -> None:
        """Set the entry's status and the in-memory label (see :class:`StatusSink`)."""
        status = check_status(status)
        with self._lock:
            self._labels[ref.label_key] = status
            self._change(ref, lambda entry: with_status(entry, ref, status, reason))
            self._save_labels()

    def set_config(self, ref: ModelRef, config: Mapping[str, Any]) -> None:
        """Set the entry's ``config`` (a new entry is ``Ready``)."""
        with self._lock:
            self._change(ref, lambda entry: with_config(entry, ref, config))

    def set_progress(self, ref: ModelRef, progress: Mapping[str, Any] | None) -> None:
        """Set or remove the entry's ``progress`` (ignored when the entry is missing or final)."""
        with self._lock:
            self._change(ref, lambda entry: with_progress(entry, ref, progress))

    def remove(self, ref: ModelRef) -> None:
        """Remove the model's label and entry."""
        with self._lock:
            label_gone = self._labels.pop(ref.label_key, None) is not None
            if self._entries.pop(ref.configmap_key, None) is not None:
                self._save()
            if label_gone:
                self._save_labels()

    def heal(self, live_keys: set[str] | None = None) -> None:
        """Drop entries (and labels) not in ``live_keys``, and rewrite the files when they no longer hold
        the sink's state (deleted or edited by hand)."""
        with self._lock:
            if live_keys is not None:
                for key in [k for k in self._entries if k not in live_keys]:
                    _log.info("removing status entry %r: no such model", key)
                    del self._entries[key]
                live_labels = {label_key_for(key) for key in live_keys}
                for label in [k for k in self._labels if k not in live_labels]:
                    del self._labels[label]
            if self._read_raw() != self._serialised():
                _log.info("restoring %s", self.status_path)
                self._save()
            try:
                on_disk = json.loads(self.labels_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                on_disk = None
            if on_disk != self._labels:
                self._save_labels()

    # ----------------------------------------------------------------------------------------------- reads

    def known(self) -> dict[str, ModelEntry]:
        """The entries, by ConfigMap key."""
        with self._lock:
            return {key: ModelEntry.from_dict(copy.deepcopy(entry), key=key) for key, entry in self._entries.items()}

    def labels(self) -> dict[str, str]:
        """The model labels this sink would have put on a node."""
        with self._lock:
            return dict(self._labels)

    # -------------------------------------------------------------------------------------------- internal

    def _change(self, ref: ModelRef, change: Callable[[dict[str, Any] | None], dict[str, Any] | None]) -> None:
        key = ref.configmap_key
        result = change(self._entries.get(key))
        if result is None:
            return
        entry_json(result, key)  # raises ModelEntryError naming the key before anything is stored
        if result == self._entries.get(key):
            return
        self._entries[key] = result
        self._save()

    def _serialised(self) -> dict[str, str]:
        return {key: entry_json(entry, key) for key, entry in self._entries.items()}

    def _save(self) -> None:
        atomic_write_json(self.status_path, self._serialised())

    def _save_labels(self) -> None:
        atomic_write_json(self.labels_path, self._labels)

    def _read_raw(self) -> Any:
        try:
            return json.loads(self.status_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            text = self.status_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as error:
            return self._set_aside(f"cannot be read: {error}")
        try:
            raw = json.loads(text)
        except ValueError as error:
            return self._set_aside(f"is not valid JSON: {error}")
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            return self._set_aside("is not a JSON object of entry strings")
        entries: dict[str, dict[str, Any]] = {}
        for key, value in raw.items():
            entry = parse_entry(value, key)
            if entry is None:
                _log.warning("%s: dropping unreadable entry %r", self.status_path, key)
                continue
            entries[key] = entry
        return entries

    def _set_aside(self, problem: str) -> dict[str, dict[str, Any]]:
        aside = self.status_path.with_name(f"{STATUS_FILE}.corrupt-{int(time.time())}")
        try:
            os.replace(self.status_path, aside)
            _log.error("%s %s; moved it to %s and starting with no entries", self.status_path, problem, aside)
        except OSError as error:
            _log.error("%s %s; starting with no entries (cannot move it aside: %s)", self.status_path, problem,
                       error)
        return {}


__all__ = ["FileStatusSink", "atomic_write_json"]
