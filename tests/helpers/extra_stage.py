"""A stage added the way docs/architecture.md says: a function, plus an entry in the pipeline config."""

from __future__ import annotations

from collections import Counter
from typing import Any

from stages.result import StageResult


def op_census(cfg: dict[str, Any], out_dir: str, convert: StageResult) -> StageResult:
    """How many ops of each kind the converted variant holds (from the convert stage's own inspection)."""
    ops = Counter(convert.meta.get("contents", {}).get("ops", {}))
    return StageResult(metrics={"op_types": len(ops), "ops": sum(ops.values())})
