"""The comparison table users read: on the console, in report.md and in MLflow's run description."""

from __future__ import annotations

from typing import Any

from pipelines.output.quantization_report import summary_lines
from stages.verify.gates import worst


def split_notes(split: dict[str, Any]) -> list[str]:
    """What the table's reader must know about a cut graph: where it was cut and what runs the tail."""
    if not split.get("cut_tensors"):
        return []
    notes = [
        f"Split: cut at {split['cut_tensors']} before ops TFLite cannot run {split.get('unsupported_ops')}; "
        f"tail: {split.get('postprocess') or split.get('tail')}."
    ]
    return notes + ([split["note"]] if split.get("note") else [])


def _fmt(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """Reference row, then one row per variant: the comparison table's cells."""
    ref = report["reference"]["metrics"]
    rows = [
        [
            "reference",
            "-",
            "-",
            _fmt(ref.get("accuracy")),
            "-",
            "-",
            _fmt(ref.get("latency_ms", {}).get("p50"), ".4g"),
            _fmt((report["model"].get("size_bytes") or 0) / 1024, ".1f"),
            "-",
        ]
    ]
    detection = _is_detection(report)
    for name, v in report["variants"].items():
        m = v["metrics"]
        errors = m["head"] if detection and m.get("head") else m  # reordered detections: compare heads
        rmse = worst((errors.get("rmse") or {}).values())
        quality = (m.get("detection") or {}).get("matched_fraction") if detection else m.get("accuracy")
        rows.append(
            [
                name,
                v.get("backend", "converter"),
                v["status"],
                _fmt(quality),
                _fmt(m.get("accuracy_delta"), "+.4f"),
                _fmt(rmse, ".2e"),
                _fmt(m.get("latency_ms", {}).get("p50"), ".4g") + (" !" if _slower(report, name) else ""),
                _fmt(v["size_bytes"] / 1024 if v["size_bytes"] else None, ".1f"),
                _fmt(v.get("size_ratio"), ".3f"),
            ]
        )
    return rows


def _slower(report: dict[str, Any], name: str) -> bool:
    return any(w.startswith(f"{name} is slower than") for w in report.get("warnings", []))


HEADER = ["variant", "backend", "status", "accuracy", "Δ accuracy", "max RMSE", "p50 ms", "size KiB", "size ratio"]
DETECTION_HEADER = [
    "variant",
    "backend",
    "status",
    "det. match",
    "Δ accuracy",
    "head RMSE",
    "p50 ms",
    "size KiB",
    "size ratio",
]


def _is_detection(report: dict[str, Any]) -> bool:
    """Detection outputs: quality is the IoU-matched fraction, errors are the converted head's."""
    return any(v["metrics"].get("detection") for v in report["variants"].values())


def header(report: dict[str, Any]) -> list[str]:
    return DETECTION_HEADER if _is_detection(report) else HEADER


def format_table(report: dict[str, Any]) -> str:
    rows = [header(report), *table_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    problems = [f"  {n}: {v['error']}" for n, v in report["variants"].items() if v.get("error")]
    failed_gates = [
        f"  {n}: gate {g} = {r['value']} (limit {r['limit']})"
        for n, v in report["variants"].items()
        for g, r in v["gates"].items()
        if r.get("evaluated", True) and not r["passed"]
    ]
    unverified = [f"  {n}: {v['reason']}" for n, v in report["variants"].items() if v["status"] == "unverified"]
    skipped = [f"  {n}: {v['reason']}" for n, v in report["variants"].items() if v["status"] == "skipped"]
    warnings = [f"  {w}" for w in report.get("warnings", [])]
    notes = [f"  {n}" for n in [*split_notes(report.get("split") or {}), *report.get("notes", [])]]
    quantization = [f"  {line}" for line in summary_lines(report)]
    return "\n".join(
        lines
        + (["", "Quantization:", *quantization] if quantization else [])
        + (["", "Notes:", *notes] if notes else [])
        + (["", "Warnings (! in the table):", *warnings] if warnings else [])
        + (["", "Errors:", *problems] if problems else [])
        + (["", "Failed gates:", *failed_gates] if failed_gates else [])
        + (["", "Unverified (not passed: nothing could check them):", *unverified] if unverified else [])
        + (["", "Skipped (does not apply to this model):", *skipped] if skipped else [])
    )


def format_markdown(report: dict[str, Any]) -> str:
    rows = table_rows(report)
    lines = [
        f"# tflite-pipeline report: {report['model']['name']}",
        "",
        f"Status: **{report['status']}**. Size ratio is relative to the {report['size_baseline']}.",
        "",
        "| " + " | ".join(header(report)) + " |",
        "|" + "|".join("---" for _ in HEADER) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    details = format_table(report).split("\n\n", 1)
    if len(details) > 1:
        lines += ["", "```", details[1], "```"]
    if report.get("plot"):
        lines += ["", f"![accuracy and error against size and latency]({report['plot']})"]
    return "\n".join(lines) + "\n"
