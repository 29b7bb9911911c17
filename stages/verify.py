"""Verify stage: a variant's end-to-end outputs against the original model's, by output name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stages.calibrate import load_samples
from stages.metrics import compare
from stages.reference import load_reference
from stages.result import StageError, StageResult


def verify(
    cfg: dict[str, Any],
    out_dir: str,
    load: StageResult,
    split: StageResult,
    calibrate: StageResult,
    reference: StageResult,
    convert: StageResult,
) -> StageResult:
    from stages.litert_runtime import SignatureModel
    from stages.split import run_tail

    feeds, labels = load_samples(calibrate.path("eval"))
    model = SignatureModel(convert.path("tflite"), convert.meta["names"])
    final = run_tail(split, model(feeds), feeds)
    expected = load_reference(reference)
    try:
        metrics = compare(expected, final, labels, reference.meta["label_output"])
    except ValueError as err:
        raise StageError(f"Verification of '{cfg['variant']['name']}' failed: {err}.") from None
    if "accuracy" in metrics and "accuracy" in reference.metrics:
        metrics["accuracy_delta"] = round(metrics["accuracy"] - reference.metrics["accuracy"], 6)
    details = {"samples": len(next(iter(feeds.values()))), "metrics": metrics}
    (Path(out_dir) / "verification.json").write_text(json.dumps(details, indent=2))
    return StageResult(files={"details": "verification.json"}, metrics=metrics)
