"""What MLflow's UI shows for a run, so that "which variant do I ship?" is answered without opening children.

The parent run's description is the comparison table (failed gates and warnings included), per-variant summary
metrics (`<variant>/size_ratio`, `<variant>/latency_ms_p50`, ...) feed the runs table and the chart views, and the
table and trade-off plot are a logged table and image; child runs get a one-paragraph description. Datasets are
pipelines/tracking/lineage.py, LoggedModels pipelines/tracking/logged_model.py. Text and metrics are built here
from the report (plain data, no MLflow import); `log_parent` takes the tracker's `MlflowClient`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipelines.output.table import format_table, header, table_rows

NOTE_TAG = "mlflow.note.content"  # what MLflow's run page renders as the run's description (markdown)
NOTE_LIMIT = 8000  # MLflow's maximum tag value length
VIEW = "workflowType=machine_learning"  # MLflow 3 opens experiments in GenAI mode; this selects model training


def summary_metrics(report: dict[str, Any]) -> dict[str, float]:
    """`<variant>/<figure>` for every variant: what the runs table and chart views compare across runs."""
    metrics: dict[str, float] = {}
    for name, entry in report["variants"].items():
        m = entry.get("metrics") or {}
        figures = {
            "passed": float(entry["status"] == "passed"),
            "size_bytes": entry.get("size_bytes"),
            "size_ratio": entry.get("size_ratio"),
            "accuracy": m.get("accuracy"),
            "accuracy_delta": m.get("accuracy_delta"),
            "argmax_agreement": m.get("argmax_agreement"),
            "max_rmse": max(m["rmse"].values()) if m.get("rmse") else None,
            "detection_match": (m.get("detection") or {}).get("matched_fraction"),
            "latency_ms_p50": (m.get("latency_ms") or {}).get("p50"),
            "latency_ms_p90": (m.get("latency_ms") or {}).get("p90"),
            "convert_s": m.get("convert_s"),
        }
        metrics.update({f"{name}/{k}": float(v) for k, v in figures.items() if v is not None})
    return metrics


def sweep_metrics(jobs: list[dict[str, Any]]) -> dict[str, float]:
    """The same figures per sweep job, `job<N>/<variant>/<figure>`, for the sweep's parent run."""
    return {
        f"job{job['num']}/{key}": value
        for job in jobs
        if job.get("report")
        for key, value in summary_metrics(job["report"]).items()
    }


def parent_note(report: dict[str, Any]) -> str:
    """The parent run's description: verdict, the comparison table, then the failed gates and warnings."""
    rows = table_rows(report)
    lines = [
        f"**{report['model']['name']}**: **{report['status']}**. Size ratio is relative to the "
        f"{report['size_baseline']}.{_pick(report)}",
        "",
        "| " + " | ".join(header(report)) + " |",
        "|" + "|".join("---" for _ in rows[0]) + "|",
        *("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows),
    ]
    sections = format_table(report).split("\n\n")[1:]  # Notes, Warnings, Errors, Failed gates
    for section in sections:
        title, *items = section.splitlines()
        lines += ["", f"**{title.rstrip(':')}**", "", *(f"- {item.strip()}" for item in items)]
    return fit_note("\n".join(lines), "report.md")


def _pick(report: dict[str, Any]) -> str:
    """One sentence naming the smallest and the fastest variant that passed, when any did."""
    from pipelines.tracking.registry import choose

    size, latency = choose(report, "size"), choose(report, "latency")
    if size is None:
        return " No variant passed its gates."
    fastest = f", fastest: **{latency}**" if latency and latency != size else ""
    return f" Smallest passing variant: **{size}**{fastest}."


def variant_note(name: str, entry: dict[str, Any]) -> str:
    """A child run's description: one paragraph with the variant's verdict and figures."""
    m = entry.get("metrics") or {}
    parts = [f"**{name}**: **{entry['status']}**."]
    if entry.get("size_bytes"):
        ratio = f" ({entry['size_ratio']:.3f} of the baseline)" if entry.get("size_ratio") is not None else ""
        parts.append(f"{entry['size_bytes'] / 1024:.1f} KiB{ratio}.")
    if "accuracy" in m:
        delta = f" (Δ {m['accuracy_delta']:+.4f})" if "accuracy_delta" in m else ""
        parts.append(f"Accuracy {m['accuracy']:.4f}{delta}.")
    if m.get("rmse"):
        parts.append(f"Max RMSE {max(m['rmse'].values()):.2e}.")
    if (m.get("latency_ms") or {}).get("p50") is not None:
        parts.append(f"Latency p50 {m['latency_ms']['p50']:.4g} ms, p90 {m['latency_ms'].get('p90', 0):.4g} ms.")
    gates = entry.get("gates") or {}
    failed = [f"{g} = {r['value']} (limit {r['limit']})" for g, r in gates.items() if not r.get("passed")]
    if failed:
        parts.append("Failed gates: " + "; ".join(failed) + ".")
    elif gates:
        parts.append("Gates held: " + ", ".join(gates) + ".")
    if entry.get("error"):
        parts.append(f"Error: {str(entry['error']).splitlines()[0]}")
    return fit_note(" ".join(parts), "verification.json")


def fit_note(text: str, where: str) -> str:
    """A description within MLflow's tag limit, saying where the rest is."""
    if len(text) <= NOTE_LIMIT:
        return text
    tail = f"\n\n… truncated; the whole text is in `{where}`."
    return text[: NOTE_LIMIT - len(tail)] + tail


def comparison_table(report: dict[str, Any]) -> dict[str, list[Any]]:
    """The comparison table as columns of numbers (MLflow's `log_table`), one row per variant."""
    names = list(report["variants"])
    metrics = summary_metrics(report)
    columns: dict[str, list[Any]] = {"variant": names, "status": [report["variants"][n]["status"] for n in names]}
    for figure in ("size_ratio", "size_bytes", "accuracy", "accuracy_delta", "max_rmse", "latency_ms_p50"):
        if any(f"{n}/{figure}" in metrics for n in names):
            columns[figure] = [metrics.get(f"{n}/{figure}") for n in names]
    return columns


# --- In the tracking process: calls on the tracker's `mlflow` module ----------------------------------------


def log_parent(client: Any, run_id: str, report: dict[str, Any], run_dir: Path) -> None:
    """The parent run's comparison table (an MLflow table) and trade-off image (an image card in the chart
    view); its description and summary metrics go in the tracker's one `log_batch`."""
    client.log_table(run_id, comparison_table(report), artifact_file="comparison.json")
    plot = run_dir / "tradeoffs.png"
    if plot.exists():
        from PIL import Image

        with Image.open(plot) as image:
            client.log_image(run_id, image.convert("RGB"), key="tradeoffs", step=0, synchronous=True)


def setup_mlflow() -> bool:
    """Quiet MLflow in the tracking process (the CLI prints the run page's link itself, since MLflow's own links
    open the GenAI view; copying local files needs no progress bars). Returns whether the parent run samples
    CPU and memory: MLflow's system-metrics thread, every 2 s, which needs psutil."""
    import importlib.util

    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if importlib.util.find_spec("psutil") is None:
        return False
    os.environ.setdefault("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "2")
    return True


def run_page(uri: str, experiment_id: str, run_id: str) -> str | None:
    """How to open the run's page in MLflow's model-training view: a URL, or for sqlite the command first."""
    path = f"#/experiments/{experiment_id}/runs/{run_id}?{VIEW}"
    if uri.startswith(("http://", "https://")):
        return f"MLflow run: {uri.rstrip('/')}/{path}"
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///")).expanduser().resolve()
        return f"MLflow run: `mlflow ui --backend-store-uri sqlite:///{db}`, then open http://127.0.0.1:5000/{path}"
    return None
