"""A candidate's metrics against the original model: the one comparison that `verify` and the int8_mixed search and
stability check (stages/convert/quantization/judge.py) both run, so every verdict reads the same figures."""

from __future__ import annotations

from typing import Any

import numpy as np

from stages.verify.detection_metrics import match_detections
from stages.verify.metrics import compare

HEAD_METRICS = ("rmse", "relative_rmse", "max_abs_err", "finite")


def candidate_metrics(
    expected: dict[str, np.ndarray],
    final: dict[str, np.ndarray],
    labels: np.ndarray | None,
    label_output: str | None,
    detections: dict[str, str] | None,
    reference_accuracy: float | None,
    expected_head: dict[str, np.ndarray] | None = None,
    head: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """`compare` on the final outputs; for detections the IoU-matched comparison instead of argmax agreement
    (padded detection scores are not class scores); for a cut graph the converted head against the TF head per
    cut tensor (`head`); the accuracy delta when both accuracies exist. Raises ValueError on missing outputs."""
    metrics = compare(expected, final, labels, label_output)
    if detections:
        metrics.pop("argmax_agreement", None)
        metrics["detection"] = match_detections(expected, final, detections)
    if expected_head and head is not None:
        head_metrics = compare(expected_head, head, None, None)
        metrics["head"] = {k: head_metrics[k] for k in HEAD_METRICS}
    if "accuracy" in metrics and reference_accuracy is not None:
        metrics["accuracy_delta"] = round(metrics["accuracy"] - reference_accuracy, 6)
    return metrics
