"""The one judge: every verdict comes from an explicit list of gates, each recorded with its outcome.

It sits beside the metrics it reads but runs after the stages, not inside `verify`, so a new limit re-judges
cached results: the report calls `judge_variant` (judge.py, which adds int8_mixed's search gate and the stability
agreement), and the int8_mixed search judges its trials with `judge` here. A variant is `passed` only when at
least one *quality* gate (accuracy, agreement, an error bound, a detection match) was evaluated and every evaluated
gate held; when no quality gate could be evaluated it is `unverified`, never `passed`. A configured gate whose
metric is missing is recorded as not evaluated, with the reason.

Each output is judged by the metric of its kind (`metrics.output_kinds`, stages/verify/output_kinds.py): the
error gates read the outputs of element-wise kinds (class scores, multi-label scores, regression, a YOLO head's
per-anchor tensor) and never padded or packed detections, whose rows reorder; `min_label_agreement` reads the
multi-label outputs; argmax agreement exists only for the class-score output, and `min_argmax_agreement` also reads
the per-position argmax agreement of a softmax at every position. Scores at every position of [N, T..., C]
(`metrics.per_position`: per-step posteriors, a per-step softmax) are judged by those decisions alone: a relative
RMSE over cells that are mostly near zero reads their small spread, not their quality; on `dataset=random`, where
decisions are not evaluated, the error gates read them as before. Metrics without `output_kinds`
(recorded before kinds existed) are judged as they were.

The per-output error gates (`max_rmse`, `max_relative_rmse`, `max_abs_err`) allow for the original model's own
rounding noise (`stages/verify/reference.py: rounding_noise`): an output passes when its error is within the
limit, or within `rounding_noise_factor` times how far the original moves when its inputs move by one float
step (never more than `NOISE_CAP` times the limit). A gate passed that way records the allowance it used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stages.verify.output_kinds import ELEMENTWISE_KINDS, RELATIVE_ERROR_KINDS


@dataclass(frozen=True)
class Gate:
    """A configured limit: which metric it reads and in which direction it must hold."""

    name: str
    higher_is_better: bool
    what: str  # the metric, in words, for reasons and messages


QUALITY_GATES = (
    Gate("max_accuracy_drop", False, "accuracy drop against the original model"),
    Gate("min_argmax_agreement", True, "argmax agreement with the original model (per position for per-step scores)"),
    Gate("min_label_agreement", True, "per-label decision agreement (score >= 0.5) on multi-label outputs"),
    Gate("max_rmse", False, "RMSE per output"),
    Gate("max_relative_rmse", False, "RMSE per output over the reference's spread"),
    Gate("max_abs_err", False, "max absolute error per output"),
    Gate("min_detection_match", True, "fraction of the original model's detections matched"),
    Gate("max_unmatched_fraction", False, "unmatched confident detections per reference detection"),
)


# Error gates and the per-output metric each reads (the same key in `rounding_noise`).
ERROR_METRICS = {"max_rmse": "rmse", "max_relative_rmse": "relative_rmse", "max_abs_err": "max_abs_err"}
# However noisy the original model, an error gate never allows more than this multiple of its limit: a model
# whose output jumps on a one-step input change (a threshold, a sort) must not wave every error through.
NOISE_CAP = 10.0


# Gates that can fail a variant but say nothing of its quality, so they cannot pass it alone: finite outputs,
# and int8_mixed's search having passed within its budget.
PROCESS_GATES = ("finite_outputs", "mixed_search_within_budget")


def worst(values: Iterable[float], higher_is_better: bool = False) -> float | None:
    """The worst of several figures, NaN-safe: a NaN anywhere is the worst value (Python's max keeps the
    first element when a later one is NaN, so the verdict would depend on the order of the outputs)."""
    items = [float(v) for v in values]
    if not items:
        return None
    if any(math.isnan(v) for v in items):
        return math.nan
    return min(items) if higher_is_better else max(items)


def _record(limit: Any, value: float | None, higher_is_better: bool, reason: str | None) -> dict[str, Any]:
    if value is None:
        return {"limit": limit, "value": None, "passed": None, "evaluated": False, "reason": reason}
    held = value >= limit if higher_is_better else value <= limit  # False for NaN: every comparison fails
    shown = value if math.isnan(value) else round(value, 6)
    return {"limit": limit, "value": shown, "passed": bool(held), "evaluated": True, "reason": None}


def _values(metrics: dict[str, Any], random_data: bool) -> dict[str, tuple[float | None, str]]:
    """Each quality gate's value (or None) and, when None, why it could not be evaluated."""
    detection = metrics.get("detection")
    elementwise = _elementwise(metrics, random_data)
    delta = metrics.get("accuracy_delta")
    agreements = [metrics["argmax_agreement"]] if metrics.get("argmax_agreement") is not None else []
    agreement = worst([*agreements, *(metrics.get("step_argmax_agreement") or {}).values()], higher_is_better=True)
    no_errors = (
        "no output is judged element-wise (detections are judged by IoU matching, per-position scores by their "
        "decisions)"
        if metrics.get("output_kinds")
        else "the model has no outputs that could be compared element-wise"
    )
    multilabel = metrics.get("label_agreement") or {}
    values: dict[str, tuple[float | None, str]] = {
        "max_accuracy_drop": (
            None if delta is None else -float(delta),
            "no accuracy: the evaluation data has no labels or the model has no class-score output",
        ),
        "min_argmax_agreement": (
            None if random_data else agreement,
            "dataset=random: the argmax of class scores for noise is arbitrary"
            if random_data
            else "no classifier-like output to compare argmaxes on",
        ),
        "min_label_agreement": (
            None if random_data or not multilabel else worst(multilabel.values(), higher_is_better=True),
            "dataset=random: the decisions of multi-label scores for noise are arbitrary"
            if random_data and multilabel
            else "no multi-label output",
        ),
        "max_rmse": (worst((elementwise.get("rmse") or {}).values()), no_errors),
        "max_relative_rmse": (worst((elementwise.get("relative_rmse") or {}).values()), no_errors),
        "max_abs_err": (worst((elementwise.get("max_abs_err") or {}).values()), no_errors),
    }
    if detection:
        matched = detection.get("matched_fraction")
        values["min_detection_match"] = (matched, "the original model made no detections on the evaluation data")
        reference_count = detection.get("reference_detections") or 0
        unmatched = detection.get("unmatched_candidates")
        # Against an empty reference every confident candidate is a false positive: count them as such. When
        # neither model detects anything, "0 of 0" would be a hollow pass: not evaluated.
        nothing = reference_count == 0 and not unmatched
        values["max_unmatched_fraction"] = (
            None if unmatched is None or nothing else float(unmatched) / max(reference_count, 1),
            "neither the original nor the variant detected anything on the evaluation data (give data on which "
            "the model detects objects)"
            if nothing
            else "no detection comparison",
        )
    else:
        values["min_detection_match"] = (None, "not a detection model")
        values["max_unmatched_fraction"] = (None, "not a detection model")
    return values


def noise_allowance(
    limit: float, errors: dict[str, float], noise: dict[str, float], factor: float | None
) -> dict[str, Any] | None:
    """The limit each output is held to when the original model's rounding noise exceeds the configured one:
    `{"limits": {output: limit}, "noise": {output: noise}, "factor": f}` for those outputs, or None when the
    configured limit applies to every output (no noise measured, factor null, or noise below the limit)."""
    if not factor or not noise:
        return None
    limits, used = {}, {}
    for name in errors:
        measured = noise.get(name)
        if measured is None or not math.isfinite(measured):
            continue
        allowed = min(factor * measured, NOISE_CAP * limit)
        if allowed > limit:
            limits[name], used[name] = round(allowed, 9), round(measured, 9)
    return {"limits": limits, "noise": used, "factor": factor} if limits else None


def _error_record(limit: Any, errors: dict[str, float], allowance: dict[str, Any] | None) -> dict[str, Any]:
    """An error gate's record: value is the worst output's error; each output is held to its own limit."""
    record = _record(limit, worst(errors.values()), False, None)
    if allowance is None or not record["evaluated"] or record["passed"]:
        return record
    allowed = allowance["limits"]
    # False for NaN, as in _record.
    held = all(float(err) <= allowed.get(name, limit) for name, err in errors.items())
    if held:
        record.update(passed=True, allowance=allowance)
    return record


def evaluate_gates(
    gates: dict[str, Any],
    metrics: dict[str, Any],
    random_data: bool = False,
    noise: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """{gate: {limit, value, passed, evaluated, reason}} for finiteness and every configured gate; `noise` is
    the original model's `rounding_noise`, which the error gates allow for (module docstring)."""
    finite = bool(metrics.get("finite", True)) and bool((metrics.get("head") or {}).get("finite", True))
    results: dict[str, dict[str, Any]] = {
        "finite_outputs": {"limit": True, "value": finite, "passed": finite, "evaluated": True, "reason": None}
    }
    values = _values(metrics, random_data)
    for gate in QUALITY_GATES:
        limit = gates.get(gate.name)
        if limit is None:
            continue
        value, reason = values[gate.name]
        errors = _errors(metrics, gate.name, random_data)
        if errors:
            metric = ERROR_METRICS[gate.name]
            allowance = noise_allowance(
                float(limit), errors, (noise or {}).get(metric) or {}, gates.get("rounding_noise_factor")
            )
            results[gate.name] = _error_record(limit, errors, allowance)
        else:
            results[gate.name] = _record(limit, value, gate.higher_is_better, reason)
    return results


def _elementwise(metrics: dict[str, Any], random_data: bool = False) -> dict[str, Any]:
    """The per-output errors the error gates read: for a cut detection model the converted head's cut tensors
    (padded detections swap places when scores nearly tie); else the final outputs of element-wise kinds (and a
    YOLO head's, for the relative error only), less per-position scores judged by their decisions."""
    if metrics.get("detection") and metrics.get("head"):
        return dict(metrics["head"])
    kinds = metrics.get("output_kinds")
    if kinds is None:
        return metrics
    chosen = {}
    decided = set() if random_data else set(metrics.get("per_position") or ())
    for key in ERROR_METRICS.values():
        read = RELATIVE_ERROR_KINDS if key == "relative_rmse" else ELEMENTWISE_KINDS
        keep = {name for name, kind in kinds.items() if kind in read and name not in decided}
        chosen[key] = {n: v for n, v in (metrics.get(key) or {}).items() if n in keep}
    return chosen


def _errors(metrics: dict[str, Any], gate: str, random_data: bool = False) -> dict[str, float]:
    """An error gate's per-output errors, which the rounding-noise allowance reads; empty for other gates and
    for detection models judged on the head's cut tensors or recorded before output kinds (the rounding noise
    is measured on the final outputs)."""
    if gate not in ERROR_METRICS:
        return {}
    if metrics.get("detection") and (metrics.get("head") or "output_kinds" not in metrics):
        return {}
    return dict(_elementwise(metrics, random_data).get(ERROR_METRICS[gate]) or {})


def verdict(results: dict[str, dict[str, Any]]) -> str:
    """passed | failed | unverified, from the gate records of `evaluate_gates`."""
    evaluated = [r for r in results.values() if r["evaluated"]]
    if any(not r["passed"] for r in evaluated):
        return "failed"
    quality = [name for name, r in results.items() if r["evaluated"] and name not in PROCESS_GATES]
    return "passed" if quality else "unverified"


def judge(
    gates: dict[str, Any], metrics: dict[str, Any], random_data: bool = False, noise: dict[str, Any] | None = None
) -> tuple[str, dict[str, dict[str, Any]]]:
    """The verdict and the gate records it rests on."""
    results = evaluate_gates(gates, metrics, random_data, noise)
    return verdict(results), results


def unverified_reason(results: dict[str, dict[str, Any]]) -> str:
    """Why a variant could not be verified, for the table's notes and the MLflow summary."""
    reasons = sorted({r["reason"] for name, r in results.items() if not r["evaluated"] and r["reason"]})
    configured = "; ".join(reasons) if reasons else "no quality gate is configured for this variant"
    return f"no quality gate could be evaluated ({configured})"
