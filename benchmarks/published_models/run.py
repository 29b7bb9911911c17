"""Run the pipeline's CLI on every prepared published model (prepare.py's DIR/manifest.json) with the default
variants, then print one row per (model, variant, output): status, the output's kind and the figure that kind
is judged by, and the min / median / max of each figure per variant and kind over the models. Offline.

    python -m benchmarks.published_models.run DIR OUT [--only NAME ...] [--table-only]

OUT/<model>/ is each run's Hydra directory (report.json); OUT/results.json holds the rows."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# The figure each kind is judged by (stages/verify/gates.py): agreement for decisions, relative RMSE for values,
# IoU matching for detections.
FIGURE = {
    "class_scores": "argmax agreement",
    "multilabel": "label agreement",
    "regression": "relative RMSE",
    "boxes": "detection match",
    "packed_detections": "detection match",
    "yolo": "detection match",
}


def run_one(entry: dict[str, Any], out: Path, samples: int) -> float:
    """The CLI as a user runs it (one process, the default variants); returns its wall time."""
    cmd = [sys.executable, "-m", "pipelines", f"model={entry['format']}", f"model.path={entry['path']}"]
    cmd += [f"model.name={entry['name']}", "dataset=npz", f"dataset.path={entry['data']}"]
    cmd += [f"calibrate.num_samples={samples}", "tracking.enabled=false", "benchmark.enabled=false"]
    # The per-layer debugger table (minutes on these models) and the latency play no part in the gate figures.
    cmd += ["quantization.debugger=false"]
    cmd += [f"hydra.run.dir={out}", *entry["overrides"]]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=out.parent, env=env, capture_output=True, text=True)
    (out.parent / f"{entry['name']}.log").write_text(done.stdout + done.stderr)
    return time.monotonic() - start


def rows(name: str, report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (variant, output): the kind and its figure; the relative RMSE of class scores as well."""
    kinds = {k: v["kind"] for k, v in (report["reference"].get("output_kinds") or {}).items()}
    label_output = report["reference"].get("label_output")
    found = []
    for variant, result in report["variants"].items():
        m = result.get("metrics") or {}
        failed = [g for g, v in (result.get("gates") or {}).items() if v.get("evaluated") and not v.get("passed")]
        base = {"model": name, "variant": variant, "status": result["status"], "failed_gates": failed}
        if result.get("error"):
            base["error"] = str(result["error"])[:300]
        detection = m.get("detection") or {}
        per_output = detection.get("outputs") or {}
        for output, kind in sorted(kinds.items()):
            # Scores at every position are judged by their decisions only (no relative-RMSE gate reads them).
            stepwise = output in (m.get("per_position") or [])
            row = {**base, "output": output, "kind": kind, "figure": None, "per_position": stepwise}
            if kind == "class_scores" and output == label_output:
                row["figure"] = m.get("argmax_agreement")
            elif kind == "class_scores" and stepwise:
                row["figure"] = (m.get("step_argmax_agreement") or {}).get(output)
            elif kind == "multilabel":
                row["figure"] = (m.get("label_agreement") or {}).get(output)
            elif kind in ("yolo", "packed_detections", "boxes"):
                part = per_output.get(output) or (detection if len(kinds) == 1 or not per_output else {})
                row["figure"] = part.get("matched_fraction")
                row["unmatched"] = part.get("unmatched_candidates")
                row["detections"] = part.get("reference_detections")
            if kind != "regression" or row["figure"] is None:
                row["relative_rmse"] = (m.get("relative_rmse") or {}).get(output)
            if kind == "regression":
                row["figure"] = (m.get("relative_rmse") or {}).get(output)
            found.append(row)
        if not kinds:
            found.append({**base, "output": None, "kind": None, "figure": None})
    return found


def summary(all_rows: list[dict[str, Any]]) -> list[str]:
    """min / median / max of each kind's figure per variant over the models (the worst output of each model)."""
    lines = ["| variant | kind (figure) | models | min | median | max |", "|---|---|---|---|---|---|"]
    worst: dict[tuple[str, str, str], float] = {}
    for r in all_rows:
        figures = [(r["kind"], r["figure"])]
        if r["kind"] in ("class_scores", "multilabel") and not r.get("per_position"):  # the relative-RMSE gate too
            figures.append((f"{r['kind']} relative RMSE", r.get("relative_rmse")))
        for kind, value in figures:
            if value is None or r["kind"] is None:
                continue
            key = (r["variant"], kind, r["model"])
            old = worst.get(key)
            lower_better = "regression" in kind or "RMSE" in kind
            worst[key] = value if old is None else (max if lower_better else min)(old, value)
    groups: dict[tuple[str, str], list[float]] = {}
    for (variant, kind, _), value in worst.items():
        groups.setdefault((variant, kind), []).append(value)
    order = {v: i for i, v in enumerate(VARIANTS)}
    for (variant, kind), values in sorted(groups.items(), key=lambda item: (order.get(item[0][0], 99), item[0][1])):
        lo, med, hi = min(values), statistics.median(values), max(values)
        shown = f"{kind} ({FIGURE[kind]})" if kind in FIGURE else kind
        lines.append(f"| {variant} | {shown} | {len(values)} | {lo:.4g} | {med:.4g} | {hi:.4g} |")
    return lines


VARIANTS = ("fp32", "fp16", "dynamic", "int8", "int8_io", "int16x8")


def per_model(all_rows: list[dict[str, Any]]) -> list[str]:
    """One row per model, one cell per variant: status, then each kind's worst figure (and the worst relative
    RMSE of the element-wise outputs), the figures the gates read."""
    lines = ["| model (output kinds) | " + " | ".join(VARIANTS) + " |", "|---" * (len(VARIANTS) + 1) + "|"]
    models = dict.fromkeys(r["model"] for r in all_rows)
    for model in models:
        mine = [r for r in all_rows if r["model"] == model]
        kinds = sorted({r["kind"] for r in mine if r["kind"]})
        counts = {k: sum(1 for r in mine if r["kind"] == k and r["variant"] == mine[0]["variant"]) for k in kinds}
        cells = []
        for variant in VARIANTS:
            rows_v = [r for r in mine if r["variant"] == variant]
            if not rows_v:
                cells.append("")
                continue
            parts = [rows_v[0]["status"]]
            for kind in kinds:
                figures = [r["figure"] for r in rows_v if r["kind"] == kind and r["figure"] is not None]
                if figures:
                    parts.append(f"{(max if kind == 'regression' else min)(figures):.3g}")
            rel: list[float] = [
                r["relative_rmse"]
                for r in rows_v
                if r["kind"] in ELEMENTWISE and "relative_rmse" in r and not r.get("per_position")
            ]
            rel = [v for v in rel if v is not None]
            if rel and any(k != "regression" for k in kinds):
                parts.append(f"rel {max(rel):.3g}")
            cells.append(" ".join(parts))
        shown = ", ".join(f"{k} x{counts[k]}" if counts[k] > 1 else k for k in kinds)
        lines.append(f"| {model} ({shown}) | " + " | ".join(cells) + " |")
    return lines


ELEMENTWISE = ("class_scores", "multilabel", "regression")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--samples", type=int, default=40, help="calibration samples (prepare's --samples / 2)")
    parser.add_argument("--table-only", action="store_true", help="read the existing reports, run nothing")
    args = parser.parse_args()
    manifest = json.loads((args.dir / "manifest.json").read_text())
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    all_rows: list[dict[str, Any]] = []
    for name, entry in manifest.items():
        if args.only and name not in args.only:
            continue
        if not args.table_only:
            seconds = run_one(entry, out / name, args.samples)
            print(f"# {name}: {seconds:.0f} s", file=sys.stderr, flush=True)
        report_path = out / name / "report.json"
        if not report_path.is_file():
            print(f"# {name}: no report.json (see {out / (name + '.log')})", file=sys.stderr)
            continue
        all_rows += rows(name, json.loads(report_path.read_text()))
    (out / "results.json").write_text(json.dumps(all_rows, indent=1))
    print("| model | variant | status | output | kind | figure | relative RMSE | failed gates / error |")
    print("|---|---|---|---|---|---|---|---|")
    for r in all_rows:
        fig = "" if r["figure"] is None else f"{r['figure']:.4g}"
        rel = "" if r.get("relative_rmse") is None else f"{r['relative_rmse']:.3g}"
        note = ", ".join(r["failed_gates"]) + (f" {r['error'][:120]}" if r.get("error") else "")
        cells = [r["model"], r["variant"], r["status"], r["output"], r["kind"], fig, rel, note]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    print()
    print("\n".join(per_model(all_rows)))
    print()
    print("\n".join(summary(all_rows)))


if __name__ == "__main__":
    main()
