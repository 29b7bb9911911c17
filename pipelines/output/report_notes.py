"""The report's notes and warnings that read the assembled variants and the reference's metrics: a model that
disagrees with itself, gates passed on rounding noise, timing cut short, a reduced-precision variant slower than
fp32. Plain data in, sentences out (pipelines/output/report.py puts them in report.json and report.md)."""

from __future__ import annotations

from typing import Any

# fp32's strictest gate is max_rmse 1e-4; a model that disagrees with itself by a tenth of that is worth a note.
SENSITIVE_DIFF = 1e-5


def sensitivity_notes(reference_metrics: dict[str, Any]) -> list[str]:
    """A note when the original model disagrees with itself (batch vs one sample at a time): float variants
    cannot match it more closely than that, and fp32's error should be read against this figure."""
    diffs = reference_metrics.get("batch_vs_single") or {}
    worst = max(diffs, key=lambda n: diffs[n], default=None)
    if worst is None or diffs[worst] < SENSITIVE_DIFF:
        return []
    return [
        f"The original model disagrees with itself: output '{worst}' differs by up to {diffs[worst]:.1e} between "
        "a batch and the same samples run one at a time (float rounding that the model amplifies). No float "
        "variant can match it more closely than that; an fp32 error of this size is the model's, not the "
        "conversion's."
    ]


def noise_notes(variants: dict[str, Any]) -> list[str]:
    """A note per error gate that passed only on the original model's rounding noise: the configured limit, the
    error, and the noise it was allowed against, so a reader never takes the pass for a match within the limit."""
    notes = []
    for name, entry in variants.items():
        for gate, record in (entry.get("gates") or {}).items():
            allowance = record.get("allowance")
            if not allowance:
                continue
            output = max(allowance["noise"], key=lambda o: allowance["noise"][o])
            notes.append(
                f"{name}: {gate} passed on the original model's rounding noise, not within its limit: the worst "
                f"error is {record['value']:.2g} against a limit of {record['limit']:g}, but the original model's "
                f"output '{output}' itself moves by {allowance['noise'][output]:.2g} when its inputs move by one "
                f"float32 step (rounding the model amplifies), so a float conversion is not expected to match it "
                f"more closely. Allowed: {allowance['factor']:g}x that noise (gates.rounding_noise_factor; null holds "
                "the limit as configured)."
            )
    return notes


SLOWER_MARGIN = 1.05  # p50 more than 5% above fp32's: beyond run-to-run noise on a quiet host


def latency_warnings(cfg: dict[str, Any], variants: dict[str, Any]) -> list[str]:
    """A line per reduced-precision variant slower than the fp32 variant here, and per capped benchmark."""
    modes = {name: str((v or {}).get("mode", name)) for name, v in cfg["variants"].items()}
    fp32 = next((n for n in sorted(variants, key=lambda n: n != "fp32") if modes.get(n) == "fp32"), None)
    base = (variants[fp32]["metrics"].get("latency_ms") or {}).get("p50") if fp32 else None
    warnings = []
    for name, entry in variants.items():
        p50 = (entry["metrics"].get("latency_ms") or {}).get("p50")
        if base and p50 and modes.get(name) != "fp32" and p50 > base * SLOWER_MARGIN:
            cpu = ((entry.get("benchmark") or {}).get("environment") or {}).get("cpu", "this host")
            warnings.append(
                f"{name} is slower than {fp32} on this host: p50 {p50:.3f} ms vs {base:.3f} ms "
                f"({p50 / base:.1f}x, {cpu}); it saves size, not time, here."
            )
        if (entry.get("benchmark") or {}).get("capped"):
            warnings.append(
                f"{name}: timing stopped at benchmark.max_seconds before benchmark.min_runs; "
                "its percentiles rest on few samples."
            )
    return warnings


def timing_notes(variants: dict[str, Any]) -> list[str]:
    """A line per variant whose timing ended early on the confidence target: fewer runs, a steady mean."""
    notes = []
    for name, entry in variants.items():
        stopped = (entry.get("benchmark") or {}).get("stopped") or {}
        if "target_ci" in stopped.values():
            runs = (entry["metrics"].get("latency_ms") or {}).get("count")
            notes.append(
                f"{name}: timed {runs} invokes, stopping once the mean latency was known to the confidence "
                "target (benchmark.target_ci) before benchmark.min_runs: a slow variant's figure is steady sooner."
            )
    return notes
