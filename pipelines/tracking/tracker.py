"""The one place that talks to MLflow: a parent run per pipeline run, a nested child run per variant.

Stages return metrics; this hook flattens config into params (`.`-joined keys), logs metrics under
`<stage>/<metric>` names, attaches each variant's `.tflite` and verification details, and ends the parent run
FAILED when the pipeline fails. What the UI shows on top (descriptions, per-variant figures, table, image) is
pipelines/tracking/dashboard.py; the datasets and each variant's LoggedModel are pipelines/tracking/lineage.py.
The CLI runs this class in a process of its own (pipelines/tracking/background.py); opening the store and its
errors are pipelines/tracking/store.py.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
from pathlib import Path
from typing import Any

from pipelines.tracking import dashboard, lineage
from pipelines.tracking.store import client as _client
from pipelines.tracking.store import fail_fast_over_http, sqlite_init_lock, store_error


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
    return metrics


def _metric_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def config_hash(cfg: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


class MlflowTracker:
    """Parent run for the pipeline run, child runs per variant."""

    def __init__(self, uri: str, experiment: str) -> None:
        fail_fast_over_http()
        import mlflow

        self.mlflow = mlflow
        self.uri = uri
        self.experiment = experiment
        self.parent_id: str | None = None
        self.experiment_id = ""
        self.calibrated: set[str] = set()

    def start(self, cfg: dict[str, Any], run_name: str, parent_run_id: str | None = None) -> str:
        """Open the parent run; an unreachable or unusable store fails here, before any work."""
        mlflow = self.mlflow
        mlflow.set_tracking_uri(self.uri)
        try:
            with sqlite_init_lock(self.uri):  # parallel runs racing to create a fresh store corrupt its schema
                mlflow.set_experiment(self.experiment)
            tags = {"config_hash": config_hash(cfg), "git_commit": git_commit(), "host": socket.gethostname()}
            if parent_run_id:
                tags["mlflow.parentRunId"] = parent_run_id
            run = mlflow.start_run(run_name=run_name, tags=tags, log_system_metrics=dashboard.setup_mlflow())
        except Exception as err:  # noqa: BLE001 - MlflowException, requests errors, sqlalchemy errors
            raise store_error(self.uri, err, "use", "run") from None
        mlflow.log_params({k: str(v)[:500] for k, v in flatten(_run_params(cfg)).items()})
        self.parent_id, self.experiment_id = run.info.run_id, run.info.experiment_id
        self.calibrated = lineage.calibrated_variants(cfg)
        return run.info.run_id

    def log_variant(self, name: str, entry: dict[str, Any], params: dict[str, Any], run_dir: Path) -> str:
        mlflow = self.mlflow
        # The run's own status is what filters see: an errored variant ends FAILED, not FINISHED. `failed`,
        # `unverified` and `skipped` are verdicts on a run that completed: the `status` tag filters on them.
        end_status = "FAILED" if entry["status"] == "error" else "FINISHED"
        with mlflow.start_run(run_name=name, nested=True) as child:
            mlflow.log_params({k: str(v)[:500] for k, v in flatten(params).items()})
            mlflow.log_metrics(variant_metrics(entry), model_id=dashboard.log_child(mlflow, name, entry, run_dir))
            mlflow.set_tags({"variant": name, "status": entry["status"]})
            if entry.get("reason"):
                mlflow.set_tag("reason", str(entry["reason"])[:5000])
            host = (entry.get("benchmark") or {}).get("environment") or {}  # what the latency figures depend on
            mlflow.set_tags({f"benchmark.{k}": str(v) for k, v in host.items() if k != "load_avg_1m"})
            if entry.get("error"):
                mlflow.set_tag("error", str(entry["error"])[:5000])
            if entry.get("tflite_path"):
                mlflow.log_artifact(str(run_dir / entry["tflite_path"]))
            self._log_quantization(entry, run_dir)
            mlflow.log_dict({k: v for k, v in entry.items() if k != "mlflow_run_id"}, "verification.json")
            if entry.get("recipe"):  # AI Edge Quantizer variants: the recipe actually applied
                mlflow.log_dict(entry["recipe"]["entries"], "recipe.json")
            if end_status != "FINISHED":
                mlflow.end_run(status=end_status)
            return child.info.run_id

    def _log_quantization(self, entry: dict[str, Any], run_dir: Path) -> None:
        """Per-layer CSV and plot as artifacts, the int8_mixed search's trials as an MLflow table."""
        from pipelines.output.quantization_report import trial_rows

        info = entry.get("quantization") or {}
        if info.get("repaired"):  # per-op repair: what moved off the variant's precision (report notes)
            self.mlflow.set_tag("repaired", "; ".join(f"{r['op']} {r['from']}->{r['to']}" for r in info["repaired"]))
            self.mlflow.log_metric("quantization/repaired_ops", len(info["repaired"]))
        for key in ("layers_csv", "layers_plot"):
            if info.get(key) and (run_dir / info[key]).exists():
                self.mlflow.log_artifact(str(run_dir / info[key]), "quantization")
        rows = trial_rows(entry)
        if rows:
            self.mlflow.log_table(data=rows, artifact_file="quantization/trials.json")
            self.mlflow.log_metrics(
                {
                    "quantization/trials": len(rows["trial"]),
                    "quantization/float_weight_fraction": info["float_weight_fraction"],
                }
            )

    def finish(self, report: dict[str, Any], run_dir: Path, status: str) -> str | None:
        """Close the parent run; returns how to open its page (see dashboard.run_page)."""
        mlflow = self.mlflow
        ref = report["reference"]["metrics"]
        if report.get("calibration"):  # which samples calibrated the variants: count, seed, source, checksum
            mlflow.log_params({f"calibration.{k}": str(v)[:500] for k, v in report["calibration"].items()})
        if "accuracy" in ref:
            mlflow.log_metric("reference/accuracy", ref["accuracy"])
        if "latency_ms" in ref:
            mlflow.log_metric("reference/latency_ms_p50", ref["latency_ms"]["p50"])
        if ref.get("batch_vs_single"):  # how far the original model disagrees with itself (report notes)
            mlflow.log_metric("reference/batch_vs_single_max", max(ref["batch_vs_single"].values()))
        if (ref.get("rounding_noise") or {}).get("rmse"):  # what the error gates allow for (stages/verify/gates.py)
            mlflow.log_metric("reference/rounding_noise_rmse_max", max(ref["rounding_noise"]["rmse"].values()))
        for name in ("report.json", "report.md", "tradeoffs.png"):
            if (run_dir / name).exists():
                mlflow.log_artifact(str(run_dir / name))
        dashboard.log_parent(mlflow, report, run_dir, self.calibrated)
        mlflow.end_run(status=status)
        return dashboard.run_page(self.uri, self.experiment_id, str(self.parent_id))

    def abort(self, status: str = "FAILED") -> None:
        """End the active runs and every child run still RUNNING under the parent."""
        from pipelines.tracking.run_recovery import close_tree

        while self.mlflow.active_run() is not None:
            self.mlflow.end_run(status=status)
        if self.parent_id is not None:
            close_tree(_client(self.uri), self.parent_id, status)


def _run_params(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: cfg[k] for k in ("model", "dataset", "split", "calibrate", "benchmark") if k in cfg} | {
        "variants": sorted(cfg.get("variants", {}))
    }


def variant_params(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    return {**_run_params(cfg), "variant": {"name": name, **cfg["variants"][name]}}
