"""The small value a stage returns: files it wrote, JSON-able metadata and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StageResult:
    """`files` maps a logical name to a path relative to `root` (the stage's output folder)."""

    files: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    root: str = ""

    def path(self, name: str) -> Path:
        """Absolute path of a file this stage wrote."""
        return Path(self.root) / self.files[name]

    def to_json(self) -> dict[str, Any]:
        return {"files": self.files, "meta": self.meta, "metrics": self.metrics}

    @classmethod
    def from_json(cls, data: dict[str, Any], root: Path) -> StageResult:
        return cls(files=data["files"], meta=data["meta"], metrics=data["metrics"], root=str(root))


class StageError(Exception):
    """A stage failed for a reason the user can act on; the message says what and how to fix it."""


class InputError(StageError):
    """The user's model, data or config is wrong (exit code 2 when found before any conversion)."""
