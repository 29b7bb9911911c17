"""The quantization part of a variant's report entry: per-layer table, search trials, stability spread.

Kept apart from pipelines/output/report.py so the report only calls three functions: `attach` (entry + files in the
run directory), `summary_lines` (the terminal table's "Quantization:" section) and `trial_rows` (MLflow table).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from stages.result import StageResult


def attach(entry: dict[str, Any], name: str, converted: StageResult, run_dir: Path) -> None:
    """Copy the layers CSV next to the variant's model and put `quantization` into its entry."""
    info = converted.meta.get("quantization")
    if not info:
        return
    info = dict(info)
    if "layers" in converted.files:
        target = run_dir / "variants" / name / "layers.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(converted.path("layers"), target)
        info["layers_csv"] = str(target.relative_to(run_dir))
    entry["quantization"] = info


def summary_lines(report: dict[str, Any]) -> list[str]:
    """One line per variant with a search or a stability check, plus the advice of a failed search."""
    lines = []
    for name, entry in report["variants"].items():
        info = entry.get("quantization") or {}
        if info.get("search"):
            kept = info.get("float_tensors") or []
            others = [m for m in info.get("moves") or [] if not m.endswith("-> float")]
            lines.append(
                f"{name}: {'passed' if info['search']['passed'] else 'did not pass'} its search after "
                f"{len(info.get('trials') or [])} trials ({info['search']['seconds']:.1f}s, "
                f"{info['search']['strategy']}, winner from {info.get('backend', 'converter')}); float: "
                f"{len(info.get('float_ops') or [])} ops ({info.get('float_weight_fraction', 0):.1%} of weights)"
                + (f" around {', '.join(_short(t) for t in kept)}" if kept else ", nothing kept in float")
                + (f"; {', '.join(_short(m) for m in others)}" if others else "")
            )
            if info.get("advice"):
                lines.append(f"  {info['advice']}")
        stability = info.get("stability")
        if stability:
            spread = ", ".join(f"{k} ±{v:g}" for k, v in stability["spread"].items())
            agree = "gates agree" if stability["gates_agree"] else "GATES DISAGREE: the result depends on the subset"
            lines.append(f"{name}: calibration stability over two disjoint subsets: {spread}; {agree}")
    return lines


def repair_notes(report: dict[str, Any]) -> list[str]:
    """One note per variant whose convert stage moved ops without a kernel to another precision (per-op repair)."""
    return [
        f"{name}: repaired, {len(info['repaired'])} op(s) moved off its precision so that it runs: "
        + "; ".join(f"{r['op']} '{_short(r['node'])}' {r['from']} -> {r['to']}" for r in info["repaired"])
        + f" ({info['repair']['rebuilds']} rebuild(s), {info['repair']['seconds']:.1f}s)"
        for name, entry in report["variants"].items()
        for info in [entry.get("quantization") or {}]
        if info.get("repaired") and info.get("repair")
    ]


def _short(tensor: str) -> str:
    """The first op name of a fused tensor name ('m/conv1/Relu;m/conv1/BiasAdd' -> 'm/conv1/Relu')."""
    head, _, rest = tensor.partition(";")
    arrow = rest.rpartition(" -> ")[2] if " -> " in rest else ""
    return f"{head} -> {arrow}" if arrow else head


def trial_rows(entry: dict[str, Any]) -> dict[str, list[Any]] | None:
    """The search's trials as columns for `mlflow.log_table`."""
    trials = (entry.get("quantization") or {}).get("trials")
    if not trials:
        return None
    keys = sorted({k for t in trials for k in t["metrics"]})
    columns: dict[str, list[Any]] = {
        "trial": [t["trial"] for t in trials],
        "backend": [t["backend"] for t in trials],
        "moves": [" | ".join(_short(m) for m in t.get("moves", [])) for t in trials],
        "float_tensors": [" | ".join(_short(x) for x in t["float_tensors"]) for t in trials],
        "float_ops": [len(t["float_ops"]) for t in trials],
        "float_weight_fraction": [t["float_weight_fraction"] for t in trials],
        "size_bytes": [t["size_bytes"] for t in trials],
        "passed": [t["passed"] for t in trials],
    }
    for key in keys:
        columns[key] = [t["metrics"].get(key) for t in trials]
    return columns
