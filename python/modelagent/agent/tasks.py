"""The units of work the Gopher runs: download, re-download and delete one model."""

from __future__ import annotations

import copy
import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelagent.agent.model_ref import ModelRef


class TaskType(str, enum.Enum):
    """What to do with a model (OME's ``GopherTask`` types)."""

    DOWNLOAD = "Download"
    DOWNLOAD_OVERRIDE = "DownloadOverride"
    DELETE = "Delete"

    def __str__(self) -> str:
        return self.value


@dataclass
class GopherTask:
    """One task for one model.

    ``obj`` is a private deep copy of the BaseModel/ClusterBaseModel object (API JSON form) taken when the
    task was made, so later changes to an informer cache never reach a running task.
    """

    type: TaskType
    ref: ModelRef
    obj: dict[str, Any]
    enqueued_at: float = field(default_factory=time.monotonic)

    @classmethod
    def for_object(cls, task_type: TaskType | str, obj: Mapping[str, Any]) -> GopherTask:
        """Make a task from a model object; ``ValueError`` when the object has no usable identity."""
        return cls(TaskType(task_type), ModelRef.from_object(obj), copy.deepcopy(dict(obj)))

    @property
    def key(self) -> str:
        """The model's ConfigMap key: at most one task per key runs at a time."""
        return self.ref.configmap_key

    @property
    def is_download(self) -> bool:
        """True for Download and DownloadOverride."""
        return self.type is not TaskType.DELETE


__all__ = ["GopherTask", "TaskType"]
