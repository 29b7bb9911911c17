"""What the MLflow runs record, as plain data built from the report and the config (no MLflow calls): params
flattened to `.`-joined keys, metrics named `<stage>/<metric>`, the child runs' tags, and the MLflow entities
that carry them in one `log_batch`."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from pipelines.tracking import dashboard


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists become JSON strings."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list | tuple):
        return {prefix: json.dumps(value)}
    return {prefix: value}


def param_values(params: dict[str, Any]) -> dict[str, str]:
    """Flattened params as MLflow stores them (strings, at most 500 characters)."""
    return {k: str(v)[:500] for k, v in flatten(params).items()}


def variant_metrics(entry: dict[str, Any]) -> dict[str, float]:
    """A report entry's numbers as MLflow metrics named `<stage>/<metric>`."""
    m = entry["metrics"]
    metrics: dict[str, float] = {}
    if entry.get("size_bytes"):
        metrics["convert/size_bytes"] = entry["size_bytes"]
    if entry.get("size_ratio") is not None:
        metrics["convert/size_ratio"] = entry["size_ratio"]
    if "convert_s" in m:
        metrics["convert/seconds"] = m["convert_s"]
    if "quantize_s" in m:  # AI Edge Quantizer variants: the quantization alone, after the fp32 conversion
        metrics["convert/quantize_seconds"] = m["quantize_s"]
    for key in ("accuracy", "accuracy_delta", "argmax_agreement"):
        if key in m:
            metrics[f"verify/{key}"] = m[key]
    for kind in ("rmse", "max_abs_err"):
        for output, value in (m.get(kind) or {}).items():
            metrics[f"verify/{kind}/{_metric_name(output)}"] = value
    for stat, value in (m.get("latency_ms") or {}).items():
        if stat != "count":
            metrics[f"benchmark/latency_ms_{stat}"] = value
    for key in ("init_ms", "first_invoke_ms", "peak_rss_mb", "interpreter_peak_mb"):
        if key in m:
            metrics[f"benchmark/{key}"] = m[key]
    for stage, values in m.items():  # a user-added per-variant stage's own metrics (pipelines/output/report.py)
        if isinstance(values, dict) and stage not in ("rmse", "relative_rmse", "max_abs_err", "latency_ms", "head"):
            for key, value in values.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    metrics.setdefault(f"{stage}/{_metric_name(str(key))}", float(value))
    metrics["gates/passed"] = float(entry["status"] == "passed")
    return metrics | _quantization_metrics(entry)


def _quantization_metrics(entry: dict[str, Any]) -> dict[str, float]:
    """The int8_mixed search: how many trials, and the share of weights it left in float."""
    from pipelines.output.quantization_report import trial_rows

    rows = trial_rows(entry)
    if not rows:
        return {}
    fraction = (entry.get("quantization") or {})["float_weight_fraction"]
    return {"quantization/trials": len(rows["trial"]), "quantization/float_weight_fraction": fraction}


def reference_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The original model's figures on the parent run."""
    ref = report["reference"]["metrics"]
    metrics = {}
    if "accuracy" in ref:
        metrics["reference/accuracy"] = ref["accuracy"]
    if "latency_ms" in ref:
        metrics["reference/latency_ms_p50"] = ref["latency_ms"]["p50"]
    if ref.get("batch_vs_single"):  # how far the original model disagrees with itself (report notes)
        metrics["reference/batch_vs_single_max"] = max(ref["batch_vs_single"].values())
    if (ref.get("rounding_noise") or {}).get("rmse"):  # what the error gates allow for (stages/verify/gates.py)
        metrics["reference/rounding_noise_rmse_max"] = max(ref["rounding_noise"]["rmse"].values())
    return metrics


def child_tags(name: str, entry: dict[str, Any]) -> dict[str, str]:
    """A child run's tags: the variant, its verdict (`status`), its description, why it was skipped or what
    failed, and the host the latency figures depend on."""
    tags = {"variant": name, "status": entry["status"], dashboard.NOTE_TAG: dashboard.variant_note(name, entry)}
    if entry.get("reason"):
        tags["reason"] = str(entry["reason"])[:5000]
    host = (entry.get("benchmark") or {}).get("environment") or {}
    tags |= {f"benchmark.{k}": str(v) for k, v in host.items() if k != "load_avg_1m"}
    if entry.get("error"):
        tags["error"] = str(entry["error"])[:5000]
    return tags


def _metric_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)


def config_hash(cfg: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


def batch(
    metrics: dict[str, float] | None = None,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    model_id: str | None = None,
) -> dict[str, list[Any]]:
    """`MlflowClient.log_batch` keyword arguments: metrics at step 0 (linked to `model_id` when given)."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    return {
        "metrics": [Metric(k, float(v), now, 0, model_id=model_id) for k, v in (metrics or {}).items()],
        "params": [Param(k, v) for k, v in (params or {}).items()],
        "tags": [RunTag(k, v) for k, v in (tags or {}).items()],
    }
