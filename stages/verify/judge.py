"""A variant's verdict as the report records it: its gates (gates.py), int8_mixed's search gate, the
calibration-stability agreement, and the run's overall status. The report formats these and decides nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stages.verify.gates import judge, verdict


@dataclass(frozen=True)
class VariantVerdict:
    """The status, the gate records it rests on, and whether the two calibration subsets' verdicts agree (None
    when the variant had no stability check)."""

    status: str
    gates: dict[str, dict[str, Any]]
    stability_agrees: bool | None


def judge_variant(
    gates: dict[str, Any],
    metrics: dict[str, Any],
    random_data: bool = False,
    noise: dict[str, Any] | None = None,
    quantization: dict[str, Any] | None = None,
) -> VariantVerdict:
    """Judge the verify stage's `metrics` by today's `gates`; `quantization` is the convert stage's record, whose
    stability metrics are judged by the same gates and whose search adds `mixed_search_within_budget`."""
    status, records = judge(gates, metrics, random_data, noise)
    stability = (quantization or {}).get("stability")
    agrees = None
    if stability and "metrics" in stability:  # the two calibration subsets, judged by today's limits
        first, second = stability["metrics"]
        agrees = judge(gates, first, random_data, noise)[0] == judge(gates, second, random_data, noise)[0]
    searched = search_gate(quantization or {})
    if searched is not None:  # int8_mixed: its search must have passed within its budget
        records["mixed_search_within_budget"] = searched
        status = verdict(records)
    return VariantVerdict(status, records, agrees)


def search_gate(quantization: dict[str, Any]) -> dict[str, Any] | None:
    """int8_mixed: a gate that fails when the search spent its budget without passing on its own samples."""
    search = quantization.get("search")
    if not search:
        return None
    return {
        "limit": search["max_trials"],
        "value": len(quantization.get("trials") or []),
        "passed": bool(search["passed"]),
        "evaluated": True,
        "reason": None,
    }


def overall_status(statuses: list[str]) -> str:
    """passed when every variant that applies passed; failed on any failure or error; else unverified."""
    if any(s in ("failed", "error") for s in statuses):
        return "failed"
    applied = [s for s in statuses if s != "skipped"]
    return "passed" if applied and all(s == "passed" for s in applied) else "unverified"
