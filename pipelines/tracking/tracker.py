"""The one place that talks to MLflow: a parent run per pipeline run, a nested child run per variant.

Stages return metrics; this hook logs each variant's child run (params, `<stage>/<metric>` metrics, tags, the
`.tflite` and its verification details, its LoggedModel) and closes the parent run, FAILED when the pipeline
failed. The parent run is opened with MLflow's fluent API (its system-metrics monitor and the abort path rely on
the active run); everything after goes through `MlflowClient` in as few store calls as the layout allows (one
`log_batch` per run), since each call on a sqlite store is a few transactions. What the runs record is plain
data from pipelines/tracking/run_data.py; what the UI shows on top (descriptions, per-variant figures, table,
image) is pipelines/tracking/dashboard.py; the datasets are pipelines/tracking/lineage.py and each variant's
LoggedModel pipelines/tracking/logged_model.py. The CLI runs this class in a process of its own
(pipelines/tracking/background.py); opening the store and its errors are pipelines/tracking/store.py.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

from pipelines.tracking import dashboard, lineage, logged_model
from pipelines.tracking.run_data import (
    batch,
    child_tags,
    config_hash,
    flatten,
    param_values,
    reference_metrics,
    variant_metrics,
)
from pipelines.tracking.store import client as _client
from pipelines.tracking.store import fail_fast_over_http, sqlite_init_lock, store_error

__all__ = ["MlflowTracker", "config_hash", "flatten", "git_commit", "variant_metrics", "variant_params"]

CONTEXT_TAGS = ("mlflow.user", "mlflow.source.")  # what MLflow's fluent API adds to every run and model


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


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
        self.client: Any = None
        self.context: dict[str, str] = {}  # the parent's user and source tags, given to children and models
        self.models: dict[str, str] = {}  # child run id -> its LoggedModel's id

    def start(
        self, cfg: dict[str, Any], run_name: str, parent_run_id: str | None = None, tags: dict[str, str] | None = None
    ) -> str:
        """Open the parent run (with `tags`); an unreachable or unusable store fails here, before any work."""
        mlflow = self.mlflow
        mlflow.set_tracking_uri(self.uri)
        try:
            with sqlite_init_lock(self.uri):  # parallel runs racing to create a fresh store corrupt its schema
                mlflow.set_experiment(self.experiment)
            run_tags = {"config_hash": config_hash(cfg), "git_commit": git_commit(), "host": socket.gethostname()}
            run_tags |= tags or {}
            if parent_run_id:
                run_tags["mlflow.parentRunId"] = parent_run_id
            run = mlflow.start_run(run_name=run_name, tags=run_tags, log_system_metrics=dashboard.setup_mlflow())
        except Exception as err:  # noqa: BLE001 - MlflowException, requests errors, sqlalchemy errors
            raise store_error(self.uri, err, "use", "run") from None
        self.client = mlflow.MlflowClient(self.uri)
        self.parent_id, self.experiment_id = run.info.run_id, run.info.experiment_id
        self.context = {k: v for k, v in run.data.tags.items() if k.startswith(CONTEXT_TAGS)}
        self.client.log_batch(self.parent_id, **batch(params=param_values(_run_params(cfg))))
        self.calibrated = lineage.calibrated_variants(cfg)
        return run.info.run_id

    def log_variant(
        self, name: str, entry: dict[str, Any], params: dict[str, Any], run_dir: Path, model_store: Path | None = None
    ) -> str:
        """The variant's child run in a handful of store calls: created with its tags, its LoggedModel, one
        `log_batch` of params and metrics (linked to the model), its artifacts, then closed. `model_store` keeps
        the pyfunc directories between runs (pipelines/tracking/logged_model.py)."""
        from mlflow.entities import LoggedModelOutput

        client = self.client
        # The run's own status is what filters see: an errored variant ends FAILED, not FINISHED. `failed`,
        # `unverified` and `skipped` are verdicts on a run that completed: the `status` tag filters on them.
        end_status = "FAILED" if entry["status"] == "error" else "FINISHED"
        tags = self.context | child_tags(name, entry) | {"mlflow.parentRunId": str(self.parent_id)}
        run = client.create_run(self.experiment_id, tags=tags, run_name=name)
        run_id = run.info.run_id
        try:
            flat = param_values(params)
            model_id = logged_model.log_model(client, run, name, entry, run_dir, flat, self.context, model_store)
            client.log_batch(run_id, **batch(variant_metrics(entry), flat, model_id=model_id))
            if model_id is not None:
                client.log_outputs(run_id, [LoggedModelOutput(model_id, step=0)])
                self.models[run_id] = model_id
            self._log_artifacts(run_id, entry, run_dir)
            client.set_terminated(run_id, end_status)
        except BaseException:
            try:
                client.set_terminated(run_id, "FAILED")
            except Exception:  # noqa: BLE001 - the store failed: abort (or the next run) closes it
                pass
            raise
        return str(run_id)

    def _log_artifacts(self, run_id: str, entry: dict[str, Any], run_dir: Path) -> None:
        """`model.tflite`, `verification.json`, the AI Edge Quantizer recipe, the per-layer CSV (its figure comes
        with the parent run: `finish`), and the int8_mixed search's trials as an MLflow table."""
        from pipelines.output.quantization_report import trial_rows

        client = self.client
        if entry.get("tflite_path"):
            client.log_artifact(run_id, str(run_dir / entry["tflite_path"]))
        client.log_dict(run_id, {k: v for k, v in entry.items() if k != "mlflow_run_id"}, "verification.json")
        if entry.get("recipe"):  # AI Edge Quantizer variants: the recipe actually applied
            client.log_dict(run_id, entry["recipe"]["entries"], "recipe.json")
        info = entry.get("quantization") or {}
        if info.get("repaired"):  # per-op repair: what moved off the variant's precision (report notes)
            self.mlflow.set_tag("repaired", "; ".join(f"{r['op']} {r['from']}->{r['to']}" for r in info["repaired"]))
            self.mlflow.log_metric("quantization/repaired_ops", len(info["repaired"]))
        if info.get("layers_csv") and (run_dir / info["layers_csv"]).exists():
            client.log_artifact(run_id, str(run_dir / info["layers_csv"]), "quantization")
        rows = trial_rows(entry)
        if rows:
            client.log_table(run_id, data=rows, artifact_file="quantization/trials.json")

    def finish(self, report: dict[str, Any], run_dir: Path, status: str) -> str | None:
        """Close the parent run (with the report, the trade-off plot, and each variant's worst-layers figure in
        its child run); returns how to open its page (see dashboard.run_page)."""
        client, run_id = self.client, str(self.parent_id)
        # Which samples calibrated the variants (count, seed, source, checksum); the figures; the description.
        params = {f"calibration.{k}": str(v)[:500] for k, v in (report.get("calibration") or {}).items()}
        metrics = reference_metrics(report) | dashboard.summary_metrics(report)
        client.log_batch(run_id, **batch(metrics, params, {dashboard.NOTE_TAG: dashboard.parent_note(report)}))
        for name in ("report.json", "report.md", "tradeoffs.png"):
            if (run_dir / name).exists():
                client.log_artifact(run_id, str(run_dir / name))
        for entry in report["variants"].values():  # drawn while the variants were logged (output/plot_beside.py)
            figure = (entry.get("quantization") or {}).get("layers_plot")
            if figure and entry.get("mlflow_run_id") and (run_dir / figure).exists():
                client.log_artifact(entry["mlflow_run_id"], str(run_dir / figure), "quantization")
        dashboard.log_parent(client, run_id, report, run_dir)
        lineage.link_children(self.mlflow, report, self.calibrated, self.models)
        self.mlflow.end_run(status=status)
        return dashboard.run_page(self.uri, self.experiment_id, run_id)

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
