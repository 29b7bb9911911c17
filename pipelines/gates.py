"""Gates: limits a variant's verification metrics must meet. Evaluated by the engine, not by `verify`,
so changing a limit re-judges cached results instead of recomputing them."""

from __future__ import annotations

from typing import Any


def evaluate_gates(
    gates: dict[str, Any], metrics: dict[str, Any], random_data: bool = False
) -> dict[str, dict[str, Any]]:
    """{gate: {limit, value, passed}} for every enabled gate whose metric exists, plus finiteness.

    On `dataset=random` the argmax agreement is reported but not gated: noise in, near-uniform class scores
    out, and their argmax is arbitrary (an int8 softmax rounds them all to the same value).
    """
    results: dict[str, dict[str, Any]] = {}
    if "finite" in metrics:
        results["finite_outputs"] = {
            "limit": True,
            "value": metrics["finite"],
            "passed": bool(metrics["finite"]),
        }

    def check(name: str, value: float | None, higher_is_better: bool) -> None:
        limit = gates.get(name)
        if limit is None or value is None:
            return
        passed = value >= limit if higher_is_better else value <= limit
        results[name] = {"limit": limit, "value": round(float(value), 6), "passed": bool(passed)}

    delta = metrics.get("accuracy_delta")
    check("max_accuracy_drop", None if delta is None else -delta, higher_is_better=False)
    if not random_data:
        check("min_argmax_agreement", metrics.get("argmax_agreement"), higher_is_better=True)
    detection = metrics.get("detection")
    if detection:
        check("min_detection_match", detection.get("matched_fraction"), higher_is_better=True)
    # Padded detections swap places when scores nearly tie, so element-wise errors on them mean nothing:
    # for a detection model the error gates apply to the converted head's cut tensors instead.
    elementwise = metrics["head"] if detection and metrics.get("head") else metrics
    check("max_rmse", max(elementwise["rmse"].values()) if elementwise.get("rmse") else None, False)
    relative = elementwise.get("relative_rmse")
    check("max_relative_rmse", max(relative.values()) if relative else None, higher_is_better=False)
    errors = elementwise.get("max_abs_err")
    check("max_abs_err", max(errors.values()) if errors else None, higher_is_better=False)
    return results
