"""Verify stage: a variant's end-to-end outputs against the original model's, by output name.

For a cut graph it checks two levels: the converted head against the TF head per cut tensor (`metrics.head`),
and TFLite head + host tail against the original full graph per final output (the top-level figures);
detection outputs also get an IoU-matched comparison (`metrics.detection`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stages.result import StageError, StageResult
from stages.samples import load_samples
from stages.verify.candidate import candidate_metrics
from stages.verify.reference import load_reference


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
    from stages.load.batch_axis import axes_of
    from stages.split.stage import run_tail

    if convert.meta.get("skipped"):
        return StageResult(meta={"skipped": convert.meta["skipped"]})
    feeds, labels = load_samples(calibrate.path("eval"))
    model = SignatureModel(convert.path("tflite"), convert.meta["names"], axes=axes_of(load.meta["model"]))
    head = model(feeds)
    final = run_tail(split, head, feeds, load)
    expected = load_reference(reference)
    try:
        metrics = candidate_metrics(
            expected,
            final,
            labels,
            reference.meta["label_output"],
            reference.meta.get("detections"),
            reference.metrics.get("accuracy"),
            load_reference(reference, "head/"),
            head,
            kinds_of(reference),
        )
    except ValueError as err:
        raise StageError(f"Verification of '{cfg['variant']['name']}' failed: {err}.") from None
    details = {"samples": len(next(iter(feeds.values()))), "metrics": metrics}
    (Path(out_dir) / "verification.json").write_text(json.dumps(details, indent=2))
    return StageResult(files={"details": "verification.json"}, metrics=metrics)


def kinds_of(reference: StageResult) -> dict[str, str] | None:
    """{output: kind} as the reference stage classified them (None from a reference cached before kinds, which
    `candidate_metrics` then classifies itself)."""
    kinds = reference.meta.get("output_kinds")
    return {name: item["kind"] for name, item in kinds.items()} if kinds else None
