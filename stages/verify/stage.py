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
from stages.verify.budget import rows, run_within_budget
from stages.verify.candidate import candidate_metrics
from stages.verify.detection_metrics import nms_settings
from stages.verify.metrics import accuracy
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
    from stages.litert_runtime import SignatureModel, runtime_refusal
    from stages.load.batch_axis import axes_of
    from stages.split.stage import run_tail

    if convert.meta.get("skipped"):
        return StageResult(meta={"skipped": convert.meta["skipped"]})
    feeds, labels = load_samples(calibrate.path("eval"))
    axes = axes_of(load.meta["model"])

    def open_model() -> SignatureModel:
        return SignatureModel(convert.path("tflite"), convert.meta["names"], axes=axes)

    try:
        head, shortened, interpreters = run_within_budget(
            open_model, feeds, cfg.get("verify") or {}, cfg["variant"]["name"]
        )
    except RuntimeError as err:  # LiteRT refused to prepare or invoke the model
        raise StageError(runtime_refusal(cfg["variant"], str(err))) from None
    expected, expected_head = load_reference(reference), load_reference(reference, "head/")
    reference_accuracy = reference.metrics.get("accuracy")
    if shortened:  # the same first samples of everything, and the original's accuracy on just those
        keep = shortened["samples"]
        feeds, expected, expected_head = (rows(a, 0, keep) for a in (feeds, expected, expected_head))
        labels = None if labels is None else labels[:keep]
        label_output = reference.meta["label_output"]
        if reference_accuracy is not None and label_output and labels is not None:
            reference_accuracy = accuracy(expected[label_output], labels)
    final = run_tail(split, head, feeds, load)
    try:
        metrics = candidate_metrics(
            expected,
            final,
            labels,
            reference.meta["label_output"],
            reference_accuracy,
            expected_head,
            head,
            kinds_of(reference),
            nms_settings(split.meta.get("postprocess_config")),
        )
    except ValueError as err:
        raise StageError(f"Verification of '{cfg['variant']['name']}' failed: {err}.") from None
    samples = len(next(iter(feeds.values())))
    details = {"samples": samples, "interpreters": interpreters, "metrics": metrics, "shortened": shortened}
    (Path(out_dir) / "verification.json").write_text(json.dumps(details, indent=2))
    meta = {"shortened": shortened} if shortened else {}
    return StageResult(files={"details": "verification.json"}, metrics=metrics, meta=meta)


def kinds_of(reference: StageResult) -> dict[str, str] | None:
    """{output: kind} as the reference stage classified them (None from a reference cached before kinds, which
    `candidate_metrics` then classifies itself)."""
    kinds = reference.meta.get("output_kinds")
    return {name: item["kind"] for name, item in kinds.items()} if kinds else None
