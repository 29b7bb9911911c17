"""Reference stage: the original model's outputs on the evaluation set, its accuracy and latency.

Computed once per model and shared by every variant's verification.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from stages.benchmark.timing import summarize
from stages.result import InputError, StageResult
from stages.samples import load_samples
from stages.verify.metrics import accuracy, choose_label_output, compare


def reference(
    cfg: dict[str, Any], out_dir: str, load: StageResult, split: StageResult, calibrate: StageResult
) -> StageResult:
    from stages.load.model.access import full_model_outputs, head_handle
    from stages.split.tail_check import check_tail
    from stages.verify.detection_metrics import find_detection_outputs, match_detections

    feeds, labels = load_samples(calibrate.path("eval"))
    outputs, latency_fn = full_model_outputs(load, split, feeds)
    check_finite(outputs)
    batch_vs_single = self_disagreement(latency_fn, feeds, outputs)
    noise = rounding_noise(latency_fn, feeds, outputs)
    arrays = {f"output/{k}": v for k, v in outputs.items()}
    tail_check = None
    if split.meta.get("head_outputs"):
        # The TF head on the same inputs: what each variant's converted head is compared against.
        head = head_handle(load, split).run(feeds)
        # A numpy tail that does not reproduce the original's detections stops here (exit 2), naming the setting.
        tail_check = check_tail(load, split, head, feeds, outputs, find_detection_outputs(outputs), match_detections)
        arrays |= {f"head/{k}": v for k, v in head.items()}
    np.savez(Path(out_dir) / "reference.npz", **arrays)
    detections = find_detection_outputs(outputs)
    # Padded detection scores are not class scores: no argmax agreement or accuracy on them.
    if detections:
        label_output, label_choice = None, "detection outputs: judged by IoU-matched detections"
    else:
        label_output, label_choice = choose_label_output(outputs, cfg.get("label_output"), labels)
    if cfg.get("label_output") and label_output is None:
        raise InputError(f"{label_choice}. Set `dataset.label_output` to one of {sorted(outputs)} or drop it.")
    metrics: dict[str, Any] = {"batch_vs_single": batch_vs_single, "rounding_noise": noise}
    if tail_check:
        metrics["tail_check"] = tail_check
    if label_output is not None and labels is not None:
        metrics["accuracy"] = accuracy(outputs[label_output], labels)
    bench = cfg["benchmark"]
    if bench["enabled"]:
        # One evaluation sample at a time, cycled: data-dependent work (NMS, sequence length) is timed as real.
        count = len(next(iter(feeds.values())))
        ones = [{k: v[i : i + 1] for k, v in feeds.items()} for i in range(min(count, 64))]
        for i in range(3):
            latency_fn(ones[i % len(ones)])
        samples: list[float] = []
        deadline = time.perf_counter() + bench["min_seconds"]
        while len(samples) < 20 or time.perf_counter() < deadline:
            one = ones[len(samples) % len(ones)]
            start = time.perf_counter()
            latency_fn(one)
            samples.append((time.perf_counter() - start) * 1e3)
            if len(samples) >= 500:
                break
        metrics["latency_ms"] = summarize(samples)
    meta = {
        "label_output": label_output,
        "label_output_choice": label_choice,
        "outputs": sorted(outputs),
        "detections": detections,
    }
    return StageResult(files={"outputs": "reference.npz"}, meta=meta, metrics=metrics)


def self_disagreement(run: Any, feeds: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> dict[str, float]:
    """Per float output, max |difference| between the batch outputs and the same first samples run one at a
    time. Why: a numerically sensitive model (deep, unnormalised: EfficientNetV2M with random weights differs
    by 1.0) disagrees with itself by more than any float conversion's gate; the report then says so instead of
    letting fp32 look mis-converted. Four samples: a few single-sample runs of the original model."""
    count = min(4, len(next(iter(feeds.values()))))
    if count < 2:
        return {}
    try:
        single = [run({k: v[i : i + 1] for k, v in feeds.items()}) for i in range(count)]
    except Exception:  # noqa: BLE001 - a diagnostic: a model that cannot run one sample fails its timing instead
        return {}
    diffs = {}
    for name, batch in outputs.items():
        if batch.dtype.kind != "f" or any(name not in one for one in single):
            continue
        alone = np.concatenate([np.asarray(one[name]) for one in single])
        if alone.shape == batch[:count].shape:
            diffs[name] = float(np.max(np.abs(alone.astype(np.float64) - batch[:count])))
    return diffs


NOISE_SAMPLES = 32  # evaluation samples nudged: one more batch run of the original model


def rounding_noise(run: Any, feeds: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """How far the original model's float outputs move when its float inputs move by one float step (each
    element to its neighbouring float32 value, in a random direction): `rmse`, `relative_rmse` and
    `max_abs_err` per output, as `compare` gives them.

    Why: a deep network amplifies rounding. Any float implementation rounds differently from the original
    (TFLite folds BatchNorm into the convolution weights), so it cannot agree with it more closely than the
    original agrees with itself on inputs one rounding step away. On ResNet152 with BatchNorm statistics
    from data, TensorFlow's own float32 output is 1.5e-4 RMSE from a float64 run of the same weights, LiteRT's
    1.4e-4, and this measure gives 1.2e-4. The error gates allow a multiple of it
    (`gates.rounding_noise_factor`, stages/verify/gates.py). Empty when no input is float or the run fails."""
    if not any(v.dtype.kind == "f" and len(v) for v in feeds.values()):
        return {}
    count = min(NOISE_SAMPLES, len(next(iter(feeds.values()))))
    rng = np.random.default_rng(0)
    nudged: dict[str, np.ndarray] = {}
    for name, values in feeds.items():
        part = values[:count]
        if part.dtype.kind == "f":
            towards = np.where(rng.random(part.shape) < 0.5, -np.inf, np.inf).astype(part.dtype)
            part = np.nextafter(part, towards)
        nudged[name] = part
    try:
        moved = run(nudged)
    except Exception:  # noqa: BLE001 - a diagnostic: without it the gates are applied as configured
        return {}
    base = {k: v[:count] for k, v in outputs.items() if v.dtype.kind == "f" and k in moved}
    if not base:
        return {}
    measured = compare(base, {k: np.asarray(moved[k]) for k in base}, None, None)
    return {k: measured[k] for k in ("rmse", "relative_rmse", "max_abs_err")}


def check_finite(outputs: dict[str, np.ndarray]) -> None:
    """The original model's own outputs must be finite on the evaluation data: every figure compares with them."""
    for name, values in outputs.items():
        if values.dtype.kind != "f" or not len(values):
            continue
        bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        if bad.any():
            raise InputError(
                f"The original model's output '{name}' is NaN or infinite for {int(bad.sum())} of {len(values)} "
                "samples of the evaluation data, so no variant can be compared with it. Check the model (an "
                "unguarded log, division or overflow) and that the data is scaled as in training."
            )


def load_reference(result: StageResult, prefix: str = "output/") -> dict[str, np.ndarray]:
    """The saved reference arrays: final outputs (`output/`) or, for a cut graph, the TF head's (`head/`)."""
    with np.load(result.path("outputs"), allow_pickle=False) as data:
        return {k.removeprefix(prefix): data[k] for k in data.files if k.startswith(prefix)}
