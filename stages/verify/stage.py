"""Verify stage: a variant's end-to-end outputs against the original model's, by output name.

For a cut graph it checks two levels: the converted head against the TF head per cut tensor (`metrics.head`),
and TFLite head + host tail against the original full graph per final output (the top-level figures);
detection outputs also get an IoU-matched comparison (`metrics.detection`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from stages.result import StageError, StageResult
from stages.samples import load_samples
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
    from stages.litert_runtime import SignatureModel
    from stages.load.batch_axis import axes_of
    from stages.split.stage import run_tail

    if convert.meta.get("skipped"):
        return StageResult(meta={"skipped": convert.meta["skipped"]})
    feeds, labels = load_samples(calibrate.path("eval"))
    model = SignatureModel(convert.path("tflite"), convert.meta["names"], axes=axes_of(load.meta["model"]))
    head, shortened = run_within_budget(model, feeds, cfg.get("verify") or {}, cfg["variant"]["name"])
    expected, expected_head = load_reference(reference), load_reference(reference, "head/")
    reference_accuracy = reference.metrics.get("accuracy")
    if shortened:  # the same first samples of everything, and the original's accuracy on just those
        keep = shortened["samples"]
        feeds, expected, expected_head = (_first(a, keep) for a in (feeds, expected, expected_head))
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
    details = {"samples": len(next(iter(feeds.values()))), "metrics": metrics, "shortened": shortened}
    (Path(out_dir) / "verification.json").write_text(json.dumps(details, indent=2))
    meta = {"shortened": shortened} if shortened else {}
    return StageResult(files={"details": "verification.json"}, metrics=metrics, meta=meta)


PROBE_SAMPLES = 16  # timed after one warm-up sample, to project the whole evaluation set's time


def run_within_budget(
    model: Any, feeds: dict[str, np.ndarray], budget: dict[str, Any], variant: str
) -> tuple[dict[str, np.ndarray], dict[str, Any] | None]:
    """The variant's outputs on the evaluation samples, or on the first of them when the whole set would take
    longer than `verify.max_seconds` (a variant on LiteRT's reference kernels, int16x8: 24-34x slower than fp32),
    but never fewer than `verify.min_samples`; then also what was shortened and why (None when nothing was)."""
    count = len(next(iter(feeds.values())))
    limit, floor = budget.get("max_seconds"), int(budget.get("min_samples", 200))
    if not limit or count <= max(floor, PROBE_SAMPLES + 1):
        return model(feeds), None
    first = model(_first(feeds, 1))
    started = time.perf_counter()
    probe = model({k: v[1 : PROBE_SAMPLES + 1] for k, v in feeds.items()})
    per_sample = (time.perf_counter() - started) / PROBE_SAMPLES
    keep = count if per_sample * count <= limit else min(count, max(floor, int(limit / per_sample)))
    rest = model({k: v[PROBE_SAMPLES + 1 : keep] for k, v in feeds.items()}) if keep > PROBE_SAMPLES + 1 else {}
    outputs = {n: np.concatenate([first[n], probe[n], *([rest[n]] if n in rest else [])]) for n in first}
    if keep == count:
        return outputs, None
    return outputs, {
        "samples": keep,
        "of": count,
        "ms_per_sample": round(per_sample * 1e3, 3),
        "why": (
            f"{variant} runs at {per_sample * 1e3:.3g} ms a sample, so the {count} evaluation samples would take "
            f"about {per_sample * count:.0f} s: verified on the first {keep} (verify.max_seconds={limit}, "
            f"verify.min_samples={floor}); with {keep} samples a share such as accuracy or agreement is known to "
            f"about ±{1.96 * (0.25 / keep) ** 0.5:.3f} at worst (95%)"
        ),
    }


def _first(arrays: dict[str, np.ndarray], count: int) -> dict[str, np.ndarray]:
    return {k: v[:count] for k, v in arrays.items()}


def kinds_of(reference: StageResult) -> dict[str, str] | None:
    """{output: kind} as the reference stage classified them (None from a reference cached before kinds, which
    `candidate_metrics` then classifies itself)."""
    kinds = reference.meta.get("output_kinds")
    return {name: item["kind"] for name, item in kinds.items()} if kinds else None
