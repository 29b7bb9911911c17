"""Split stage: decide where (if anywhere) the graph is cut before ops TFLite cannot run.

With nothing to cut, the head is the whole model and there is no tail.
"""

from __future__ import annotations

from typing import Any

from stages.result import StageResult


def split(cfg: dict[str, Any], out_dir: str, load: StageResult) -> StageResult:
    mode = cfg["split"]["mode"]
    meta = {"mode": mode, "unsupported_ops": [], "cut_tensors": [], "postprocess": None, "head_outputs": None}
    return StageResult(meta=meta)


def head_handle(load: StageResult, split: StageResult) -> Any:
    """The part of the model that is converted: the whole model, or the head up to the cut tensors."""
    from stages.load import model_path
    from stages.tf_model import load_handle

    return load_handle({**load.meta["model"], "path": model_path(load)})


def full_model_outputs(
    load: StageResult, split: StageResult, feeds: dict[str, Any]
) -> tuple[dict[str, Any], Any]:
    """The original (uncut) model's outputs on `feeds`, and a callable that runs it (for latency)."""
    from stages.load import model_path
    from stages.tf_model import load_handle

    handle = load_handle({**load.meta["model"], "path": model_path(load)})
    return handle.run(feeds), handle.run


def run_tail(split: StageResult, head_outputs: dict[str, Any], feeds: dict[str, Any]) -> dict[str, Any]:
    """Turn the converted head's outputs into the model's final outputs (identity when nothing was cut)."""
    return head_outputs
