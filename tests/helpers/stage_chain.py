"""The stages called directly, as the runner calls them: load -> split -> calibrate, the upstream of a variant."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from stages.result import StageResult


def keras_model(path: Path) -> dict[str, Any]:
    """The `model` config of a .keras file."""
    return {"name": None, "format": "keras", "path": str(path), "safe_mode": True}


def run_stage(
    stage: Callable[..., StageResult], root: Path, name: str, cfg: dict[str, Any], *upstream: StageResult
) -> StageResult:
    """One stage into its own folder `root/name`, its result settled there (so its files resolve)."""
    out = root / name
    out.mkdir(parents=True, exist_ok=True)
    result = stage(cfg, str(out), *upstream)
    result.root = str(out)
    return result


def load_split_calibrate(
    root: Path, model: dict[str, Any], calibrate: dict[str, Any], split: dict[str, Any] | None = None
) -> dict[str, StageResult]:
    """The chain every variant reads (results by stage name); split is `auto` unless given."""
    from stages.calibrate.stage import calibrate as calibrate_stage
    from stages.load.stage import load
    from stages.split.stage import split as split_stage

    loaded = run_stage(load, root, "load", {"model": model})
    cut = run_stage(split_stage, root, "split", {"split": split or {"mode": "auto"}}, loaded)
    return {
        "load": loaded,
        "split": cut,
        "calibrate": run_stage(calibrate_stage, root, "calibrate", calibrate, loaded, cut),
    }
