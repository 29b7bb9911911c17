"""Reference stage: the original model's outputs on the evaluation set, its accuracy and latency.

Computed once per model and shared by every variant's verification.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from stages.calibrate import load_samples
from stages.metrics import accuracy, classifier_output
from stages.result import StageResult
from stages.timing import summarize


def reference(
    cfg: dict[str, Any], out_dir: str, load: StageResult, split: StageResult, calibrate: StageResult
) -> StageResult:
    from stages.detection_metrics import find_detection_outputs
    from stages.split import full_model_outputs, head_handle

    feeds, labels = load_samples(calibrate.path("eval"))
    outputs, latency_fn = full_model_outputs(load, split, feeds)
    arrays = {f"output/{k}": v for k, v in outputs.items()}
    if split.meta.get("head_outputs"):
        # The TF head on the same inputs: what each variant's converted head is compared against.
        arrays |= {f"head/{k}": v for k, v in head_handle(load, split).run(feeds).items()}
    np.savez(Path(out_dir) / "reference.npz", **arrays)
    detections = find_detection_outputs(outputs)
    # Padded detection scores are not class scores: no argmax agreement or accuracy on them.
    label_output = None if detections else classifier_output(outputs, cfg.get("label_output"))
    metrics: dict[str, Any] = {}
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
    meta = {"label_output": label_output, "outputs": sorted(outputs), "detections": detections}
    return StageResult(files={"outputs": "reference.npz"}, meta=meta, metrics=metrics)


def load_reference(result: StageResult, prefix: str = "output/") -> dict[str, np.ndarray]:
    """The saved reference arrays: final outputs (`output/`) or, for a cut graph, the TF head's (`head/`)."""
    with np.load(result.path("outputs"), allow_pickle=False) as data:
        return {k.removeprefix(prefix): data[k] for k in data.files if k.startswith(prefix)}
