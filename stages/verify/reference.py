"""Reference stage: the original model's outputs on the evaluation set, its accuracy and latency.

Computed once per model and shared by every variant's verification.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import numpy as np

from stages.benchmark.timing import summarize
from stages.result import InputError, StageResult
from stages.samples import load_samples
from stages.verify.metrics import accuracy, choose_label_output, compare
from stages.verify.output_kinds import DETECTION_KINDS, classify


def reference(
    cfg: dict[str, Any], out_dir: str, load: StageResult, split: StageResult, calibrate: StageResult
) -> StageResult:
    from stages.load.model.access import full_model_outputs, head_handle, source_handle
    from stages.split.tail_check import check_tail
    from stages.verify.detection_metrics import find_detection_outputs, match_detections, nms_settings
    from stages.verify.output_ops import handle_final_ops

    feeds, labels = load_samples(calibrate.path("eval"))
    outputs, run = full_model_outputs(load, split, feeds)  # the one pass over the evaluation set, batched
    check_finite(outputs)
    # The probes and the latency share single-sample runs of the same function (batch 1, traced once): the first
    # PROBE_SAMPLES samples alone (against the batch: does the model disagree with itself?), then nudged by one
    # float step (against themselves alone: its rounding noise); every one of those runs is also a latency sample.
    timed = TimedRuns(run)
    probe = {k: v[:PROBE_SAMPLES] for k, v in feeds.items()}
    alone = timed.singly(probe)
    batch_vs_single = disagreement(alone, {k: v[:PROBE_SAMPLES] for k, v in outputs.items()})
    noise = rounding_noise(timed.singly, probe, alone)
    arrays = {f"output/{k}": v for k, v in outputs.items()}
    tail_check = None
    if split.meta.get("head_outputs"):
        # The TF head on the same inputs: what each variant's converted head is compared against.
        head = head_handle(load, split).run(feeds)
        # A numpy tail that does not reproduce the original's detections stops here (exit 2), naming the setting.
        nms = nms_settings(split.meta.get("postprocess_config"))  # the ties as verify reads them
        match = functools.partial(match_detections, nms=nms)
        tail_check = check_tail(load, split, head, feeds, outputs, find_detection_outputs(outputs), match)
        arrays |= {f"head/{k}": v for k, v in head.items()}
    np.savez(Path(out_dir) / "reference.npz", **arrays)
    ops = handle_final_ops(source_handle(load))  # the op that makes each output: what it holds, by the graph
    kinds = output_kinds(outputs, labels, cfg, ops)
    detections = find_detection_outputs({n: outputs[n] for n, k in kinds.items() if k["kind"] == "boxes"})
    label_output, label_choice = class_output(outputs, kinds, labels, cfg.get("label_output"))
    metrics: dict[str, Any] = {"batch_vs_single": batch_vs_single, "rounding_noise": noise}
    if tail_check:
        metrics["tail_check"] = tail_check
    if label_output is not None and labels is not None:
        metrics["accuracy"] = accuracy(outputs[label_output], labels)
    bench = cfg["benchmark"]
    if bench["enabled"]:
        # One evaluation sample at a time, cycled: data-dependent work (NMS, sequence length) is timed as real.
        metrics["latency_ms"] = summarize(timed.latency(feeds, bench["min_seconds"]))
    meta = {
        "label_output": label_output,
        "label_output_choice": label_choice,
        "outputs": sorted(outputs),
        "detections": detections,
        # What each output holds and why: the metric and gates each is judged by (stages/verify/output_kinds.py).
        "output_kinds": kinds,
    }
    return StageResult(files={"outputs": "reference.npz"}, meta=meta, metrics=metrics)


def output_kinds(
    outputs: dict[str, np.ndarray], labels: np.ndarray | None, cfg: dict[str, Any], ops: dict[str, str] | None = None
) -> dict[str, Any]:
    """Each output's kind from the op that makes it and the reference values, `dataset.output_kinds` overriding;
    InputError when an override names no output of the model."""
    try:
        return classify(outputs, labels, cfg.get("label_output"), cfg.get("output_kinds"), ops)
    except ValueError as err:
        raise InputError(f"{err}. Fix `dataset.output_kinds` (a map from output name to kind) or drop it.") from None


def class_output(
    outputs: dict[str, np.ndarray], kinds: dict[str, Any], labels: np.ndarray | None, preferred: str | None
) -> tuple[str | None, str]:
    """The class-score output accuracy and argmax agreement read, and how it was chosen: `dataset.label_output`
    when it holds class scores (InputError otherwise), else among the `class_scores` outputs the one whose width
    fits the labels. Detections, multi-label scores and regression have no argmax that means anything."""
    if preferred:
        label_output, label_choice = choose_label_output(outputs, preferred, labels)
        if label_output is None:
            raise InputError(f"{label_choice}. Set `dataset.label_output` to one of {sorted(outputs)} or drop it.")
        kind = kinds[preferred]
        if kind["kind"] != "class_scores":
            raise InputError(
                f"dataset.label_output={preferred} is a {kind['kind']} output ({kind['why']}), not class scores, "
                f"so it has no accuracy or argmax agreement. Drop `dataset.label_output`, or set "
                f"`dataset.output_kinds.{preferred}=class_scores` if it does hold class scores."
            )
        return label_output, label_choice
    scores = {n: outputs[n] for n, k in kinds.items() if k["kind"] == "class_scores"}
    if scores:
        return choose_label_output(scores, None, labels)
    if any(k["kind"] in DETECTION_KINDS for k in kinds.values()):
        return None, "detection outputs: judged by IoU-matched detections"
    return None, "no output holds class scores (" + ", ".join(f"{n}: {k['kind']}" for n, k in kinds.items()) + ")"


class TimedRuns:
    """The original model run one sample at a time, every call timed: the probes' runs are latency samples too,
    so the reference stage runs the model once over the evaluation set plus about 20 single samples."""

    WARMUP = 1  # the first call traces the function for batch 1: not a latency sample
    MIN_RUNS = 20
    MAX_RUNS = 500

    def __init__(self, run: Any) -> None:
        self.run = run
        self.ms: list[float] = []

    def one(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        result = self.run(feeds)
        self.ms.append((time.perf_counter() - start) * 1e3)
        return result

    def singly(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """`feeds` run one sample at a time, the outputs concatenated as a batch run gives them."""
        count = len(next(iter(feeds.values())))
        parts = [self.one({k: v[i : i + 1] for k, v in feeds.items()}) for i in range(count)]
        return {name: np.concatenate([np.asarray(p[name]) for p in parts]) for name in parts[0]} if parts else {}

    def latency(self, feeds: dict[str, np.ndarray], min_seconds: float) -> list[float]:
        """The timed runs so far, topped up with more single samples (cycled) until there are MIN_RUNS and
        `min_seconds` of them (at most MAX_RUNS)."""
        count = len(next(iter(feeds.values())))
        i = 0
        while len(self.ms) < self.WARMUP + self.MIN_RUNS or sum(self.ms[self.WARMUP :]) < min_seconds * 1e3:
            if len(self.ms) >= self.WARMUP + self.MAX_RUNS:
                break
            self.one({k: v[i % count : i % count + 1] for k, v in feeds.items()})
            i += 1
        return self.ms[self.WARMUP :]


def self_disagreement(run: Any, feeds: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> dict[str, float]:
    """Per float output, max |difference| between the batch outputs and the same first samples run one at a
    time. Why: a numerically sensitive model (deep, unnormalised: EfficientNetV2M with random weights differs
    by 1.0) disagrees with itself by more than any float conversion's gate; the report then says so instead of
    letting fp32 look mis-converted. Four samples: a few single-sample runs of the original model."""
    count = min(4, len(next(iter(feeds.values()))))
    if count < 2:
        return {}
    try:
        alone = TimedRuns(run).singly({k: v[:count] for k, v in feeds.items()})
    except Exception:  # noqa: BLE001 - a diagnostic: a model that cannot run one sample fails its timing instead
        return {}
    return disagreement(alone, {k: v[:count] for k, v in outputs.items()})


def disagreement(alone: dict[str, np.ndarray], batch: dict[str, np.ndarray]) -> dict[str, float]:
    """Per float output, max |difference| between samples run alone and the same samples in a batch."""
    if len(next(iter(batch.values()), [])) < 2:
        return {}
    return {
        name: float(np.max(np.abs(alone[name].astype(np.float64) - values)))
        for name, values in batch.items()
        if values.dtype.kind == "f" and name in alone and alone[name].shape == values.shape
    }


PROBE_SAMPLES = 8  # evaluation samples the probes run alone, then nudged: 16 single-sample runs


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
    count = len(next(iter(feeds.values())))
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
