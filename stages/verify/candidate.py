"""A candidate's metrics against the original model: the one comparison that `verify` and the int8_mixed search and
stability check (stages/convert/quantization/judge.py) both run, so every verdict reads the same figures.

Each output is judged by the metric of its kind (stages/verify/output_kinds.py, recorded in `output_kinds`):
argmax agreement and accuracy for the class-score output only, per-label decisions (`label_agreement`) for
multi-label scores (per cell at every position of [N, T..., C], active and inactive cells weighed alike),
per-position argmax agreement (`step_argmax_agreement`) for a softmax at every position, IoU-matched detections
(`detection`) for padded, packed and YOLO detections; the element-wise errors are computed for every output, and
the error gates read those of element-wise kinds only, never those of per-position scores (`per_position`; gates.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

from stages.verify.detection_metrics import find_detection_outputs, match_detections
from stages.verify.kind_metrics import (
    balanced_label_agreement,
    combine,
    detection_metrics,
    label_agreement,
    step_agreement,
    topk_agreement,
)
from stages.verify.metrics import choose_label_output, class_scores, compare
from stages.verify.output_kinds import classify, per_position

HEAD_METRICS = ("rmse", "relative_rmse", "max_abs_err", "finite")


def candidate_metrics(
    expected: dict[str, np.ndarray],
    final: dict[str, np.ndarray],
    labels: np.ndarray | None,
    label_output: str | None,
    reference_accuracy: float | None,
    expected_head: dict[str, np.ndarray] | None = None,
    head: dict[str, np.ndarray] | None = None,
    kinds: dict[str, str] | None = None,
    nms: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`compare` on the final outputs, then each kind's metric; for a cut graph the converted head against the TF
    head per cut tensor (`head`); the accuracy delta when both accuracies exist. `kinds` ({output: kind}, the
    reference stage's) is classified here from `expected` when not given; `nms` the model's NMS settings for the
    detection ties (detection_metrics.nms_settings). Raises ValueError on missing outputs."""
    if kinds is None:
        kinds = {n: k["kind"] for n, k in classify(expected, labels, label_output).items()}
    if label_output is not None and kinds.get(label_output) != "class_scores":
        label_output = None  # the search's Judge passes dataset.label_output through: the kind decides
    if label_output is None:
        scored = {
            n: expected[n] for n, k in kinds.items() if k == "class_scores" and class_scores(expected[n]) is not None
        }
        label_output = choose_label_output(scored, None, labels)[0] if scored else None
    metrics = compare(expected, final, labels, label_output)
    metrics["output_kinds"] = dict(kinds)
    if label_output is None:  # compare falls back to any (N, C) output: only class scores have an argmax
        metrics.pop("argmax_agreement", None)
        metrics.pop("accuracy", None)
    else:
        ref_view = class_scores(expected[label_output])
        got_view = class_scores(final[label_output].astype(np.float64).reshape(expected[label_output].shape))
        top = topk_agreement(ref_view, got_view) if ref_view is not None and got_view is not None else None
        if top is not None:
            metrics["top5_agreement"] = top
    # Scores at every position of [N, T..., C] are judged by their decisions, not element-wise (gates.py).
    stepwise = sorted(n for n, k in kinds.items() if k in ("class_scores", "multilabel") and per_position(expected[n]))
    multilabel = {
        n: (balanced_label_agreement if n in stepwise else label_agreement)(expected[n], final[n])
        for n, k in kinds.items()
        if k == "multilabel"
    }
    if multilabel:
        metrics["label_agreement"] = multilabel
    steps = {n: step_agreement(expected[n], final[n]) for n in stepwise if kinds[n] == "class_scores"}
    if steps:
        metrics["step_argmax_agreement"] = steps
    if stepwise:
        metrics["per_position"] = stepwise
    parts: dict[str, dict[str, Any]] = {}
    # The padded group as the kinds have it.
    detections = find_detection_outputs({n: expected[n] for n, k in kinds.items() if k == "boxes"})
    if detections:
        parts["+".join(sorted(detections.values()))] = match_detections(expected, final, detections, nms=nms)
    for name, kind in kinds.items():
        if kind in ("yolo", "packed_detections"):
            parts[name] = detection_metrics(kind, expected[name], final[name], nms)
    if parts:
        metrics["detection"] = combine(parts)
    if expected_head and head is not None and set(expected_head) <= set(head):  # in_graph: no cut tensors out
        head_metrics = compare(expected_head, head, None, None)
        metrics["head"] = {k: head_metrics[k] for k in HEAD_METRICS}
    if "accuracy" in metrics and reference_accuracy is not None:
        metrics["accuracy_delta"] = round(metrics["accuracy"] - reference_accuracy, 6)
    return metrics
