"""Multirun sweeps: one MLflow parent run per sweep, per-job results, the sweep report, the sweep's exit code.

Hydra calls `SweepCallback` (configured under `hydra.callbacks` in conf/config.yaml) in the main process at
`on_multirun_start`, before any job starts: it opens the sweep's parent run there, which also creates a fresh
sqlite store once instead of letting parallel jobs race on its schema. The callback object is pickled into
every job (basic, joblib and Ray launchers alike), so `on_job_start` hands each job the parent run id without
environment variables, and `on_job_end` writes `job.json` (exit code, error) into the job's folder even when
the job raised. The sweep is closed by `finish_sweep`, which `cli.main` calls after Hydra returns or raises:
Hydra skips `on_multirun_end` when a job failed, so nothing relies on it alone.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("tflite_pipeline")

JOB_FILE = "job.json"


@dataclass
class SweepContext:
    """What a job needs to nest its pipeline run under the sweep's parent run."""

    parent_run_id: str | None
    tracking_uri: str | None
    experiment: str | None
    sweep_dir: str
    # Why the parent run could not be opened; every job then stops before any work (Hydra swallows callback
    # exceptions, so this is how the failure reaches the jobs and the exit code).
    error: str | None = None
    error_exit: int = 2  # 2: bad configuration; 3: the store's disk is full or not writable


# Set in the main process by on_multirun_start (read by cli.main), and in each job process by on_job_start.
_sweep: dict[str, Any] = {"active": None, "job": None}


def absolute_uri(uri: str) -> str:
    """A relative sqlite path made absolute, so jobs running in another directory use the same store."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def job_context() -> SweepContext | None:
    """The running job's sweep context, or None outside a multirun."""
    return _sweep["job"]


def _select(config: DictConfig, key: str) -> Any:
    try:
        return OmegaConf.select(config, key, throw_on_missing=False)
    except Exception:  # noqa: BLE001 - an unresolvable interpolation: treat as unset
        return None


class SweepCallback(Callback):
    """Hydra callback: opens the sweep's parent run, passes it to the jobs, records each job's exit code."""

    def __init__(self) -> None:
        self.context: SweepContext | None = None
        self.overrides: list[str] = []
        self.finished = False
        self.exit_code: int | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        self.overrides = [str(o) for o in (OmegaConf.to_container(config.hydra.overrides.task) or [])]
        parent, uri, experiment, error, error_exit = None, None, None, None, 2
        if _select(config, "tracking.enabled"):
            from pipelines.engine.errors import EXIT_ENVIRONMENT, ConfigError, EnvironmentFailure
            from pipelines.tracking.sweep_run import start_sweep_run
            from pipelines.tracking.tracker import config_hash

            uri = absolute_uri(str(config.tracking.uri))
            experiment = _select(config, "tracking.experiment") or _select(config, "model.name") or "tflite-pipeline"
            launcher = str(_select(config, "hydra.launcher._target_") or "basic").rsplit(".", 1)[-1]
            try:
                parent = start_sweep_run(
                    uri,
                    experiment,
                    run_name=f"sweep {sweep_dir.parent.name}/{sweep_dir.name}",
                    params={"sweep.overrides": " ".join(self.overrides), "sweep.launcher": launcher},
                    # config_hash: the next sweep with the same overrides closes this one if it is killed
                    tags={
                        "sweep_dir": str(sweep_dir),
                        "config_hash": config_hash({"overrides": self.overrides, "launcher": launcher}),
                    },
                )
                log.info("Sweep parent run %s in experiment '%s' (%s)", parent, experiment, uri)
            except (ConfigError, EnvironmentFailure) as err:
                error = str(err)
                error_exit = EXIT_ENVIRONMENT if isinstance(err, EnvironmentFailure) else 2
                log.error("Error: %s", error)
        self.context = SweepContext(parent, uri, experiment, str(sweep_dir), error, error_exit)
        _sweep["active"] = self

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        finish_sweep()

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        _sweep["job"] = self.context
        _reset_start_method()
        if self.context is not None:
            _write_job(config, {"status": "running", "exit_code": None})

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if self.context is None:
            return
        from hydra.core.utils import JobStatus

        value = job_return._return_value  # `.return_value` re-raises a failed job's exception
        if job_return.status == JobStatus.COMPLETED:
            entry = {
                "status": "completed",
                "exit_code": int(value) if isinstance(value, int) else 0,
                "error": None,
            }
        else:
            entry = {"status": "failed", "exit_code": 1, "error": f"{type(value).__name__}: {value}"}
        record, run_dir = _write_job(config, entry)
        if self.context.parent_run_id and self.context.tracking_uri:  # for a main process on another node
            from pipelines.tracking.sweep_gather import record_job

            record_job(self.context.tracking_uri, run_dir, record)
        outputs_url = _select(config, "runtime.outputs_url")
        if outputs_url:
            from pipelines.engine.remote import publish_outputs

            publish_outputs(run_dir, str(outputs_url), only=[JOB_FILE])  # the reports went with the run
        _sweep["job"] = None


def _reset_start_method() -> None:
    """joblib's loky workers set the global start method to 'loky'; a 'spawn' child (the stage worker) copies
    that name and dies with "cannot find context for 'loky'". Restore the platform default in the job."""
    import multiprocessing as mp

    if mp.get_start_method(allow_none=True) not in (None, *mp.get_all_start_methods()):
        mp.set_start_method(None, force=True)


def _write_job(config: DictConfig, entry: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    out = Path(hydra_cfg.runtime.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "num": int(hydra_cfg.job.num),
        "overrides": [str(o) for o in hydra_cfg.overrides.task],
        "run_dir": str(out.resolve()),
        **entry,
    }
    tmp = out / f".{JOB_FILE}.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, out / JOB_FILE)
    return record, out


def collect_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every job's record, in job order, with its report.json (if it wrote one) under `report`."""
    jobs = []
    for path in sweep_dir.rglob(JOB_FILE):
        job = json.loads(path.read_text())
        report = Path(job["run_dir"]) / "report.json"
        job["report"] = json.loads(report.read_text()) if report.is_file() else None
        if job["exit_code"] is None:  # on_job_end never ran: the job process died
            job.update(status="died", exit_code=1, error="the job process ended without recording a result")
        jobs.append(job)
    return sorted(jobs, key=lambda j: j["num"])


def sweep_rows(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per job x variant (one row for a job without a report)."""
    rows = []
    for job in jobs:
        base = {
            "job": job["num"],
            "overrides": " ".join(job["overrides"]),
            "exit_code": job["exit_code"],
            "report_artifact": job.get("report_artifact"),  # runs:/<job run>/report.json, from any node
        }
        variants = (job["report"] or {}).get("variants") or {}
        if not variants:
            rows.append({**base, "variant": None, "status": job["status"], "error": job.get("error")})
        for name, entry in variants.items():
            m = entry.get("metrics") or {}
            rows.append(
                {
                    **base,
                    "variant": name,
                    "status": entry["status"],
                    "accuracy": m.get("accuracy"),
                    "accuracy_delta": m.get("accuracy_delta"),
                    "latency_ms_p50": (m.get("latency_ms") or {}).get("p50"),
                    "size_bytes": entry.get("size_bytes"),
                    "error": entry.get("error"),
                    "mlflow_run_id": entry.get("mlflow_run_id"),
                    "run_dir": job["run_dir"],
                }
            )
    return rows


def _cell(value: Any, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def format_sweep_markdown(summary: dict[str, Any]) -> str:
    header = ["job", "overrides", "variant", "status", "accuracy", "Δ accuracy", "p50 ms", "size KiB", "exit"]
    lines = [
        "# tflite-pipeline sweep report",
        "",
        f"Status: **{summary['status']}**, {len(summary['jobs'])} jobs, exit code {summary['exit_code']}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for r in summary["rows"]:
        size = r.get("size_bytes")
        lines.append(
            "| "
            + " | ".join(
                [
                    str(r["job"]),
                    f"`{r['overrides']}`" if r["overrides"] else "-",
                    r["variant"] or "-",
                    r["status"],
                    _cell(r.get("accuracy"), ".4f"),
                    _cell(r.get("accuracy_delta"), "+.4f"),
                    _cell(r.get("latency_ms_p50"), ".3f"),
                    _cell(size / 1024 if size else None, ".1f"),
                    str(r["exit_code"]),
                ]
            )
            + " |"
        )
    reports = {r["job"]: r["report_artifact"] for r in summary["rows"] if r.get("report_artifact")}
    if reports:
        lines += ["", "Reports in MLflow:", "", *(f"- job {num}: `{uri}`" for num, uri in reports.items())]
    errors = [f"- job {r['job']} {r['variant'] or ''}: {r['error']}" for r in summary["rows"] if r.get("error")]
    if errors:
        lines += ["", "Errors:", "", *errors]
    return "\n".join(lines) + "\n"


def _write_summary(sweep_dir: Path, summary: dict[str, Any]) -> str | None:
    """Write sweep_report.json/.md (temp file + rename); returns the one-paragraph message of a disk failure."""
    from pipelines.engine.environment import disk_errno, disk_failure_message

    try:
        for name, text in [
            ("sweep_report.json", json.dumps(summary, indent=2, default=str)),
            ("sweep_report.md", format_sweep_markdown(summary)),
        ]:
            tmp = sweep_dir / f".{name}.tmp"
            try:
                tmp.write_text(text)
                os.replace(tmp, sweep_dir / name)
            finally:
                tmp.unlink(missing_ok=True)
    except OSError as err:
        code = disk_errno(err)
        if code is None:
            raise
        kept = "The sweep report was not written; every job's report is in its folder."
        return disk_failure_message(code, str(sweep_dir), {"runtime": {"cache_dir": str(sweep_dir)}}, kept)
    return None


def finish_sweep(interrupted: bool = False) -> int | None:
    """Write the sweep report, close the parent run, return the sweep's exit code (None outside a sweep).

    Idempotent: `on_multirun_end` and `cli.main` may both call it; the first call does the work.
    """
    callback: SweepCallback | None = _sweep["active"]
    if callback is None or callback.context is None:
        return None
    if callback.finished:
        return callback.exit_code
    callback.finished = True
    ctx = callback.context
    sweep_dir = Path(ctx.sweep_dir)
    jobs = collect_jobs(sweep_dir)
    if ctx.parent_run_id and ctx.tracking_uri:  # jobs that ran on other nodes, and every report in MLflow
        from pipelines.tracking.sweep_gather import gather_jobs

        try:
            jobs = gather_jobs(ctx.tracking_uri, ctx.parent_run_id, jobs)
        except Exception as err:  # noqa: BLE001 - the store's failure is reported when the parent is closed
            log.warning("Could not gather the sweep's jobs from MLflow: %s", err)
    codes = [j["exit_code"] for j in jobs]
    exit_code = max(codes) if codes else ctx.error_exit if ctx.error else 1
    if interrupted:
        exit_code = max(exit_code, 1)
    summary = {
        "sweep_dir": str(sweep_dir),
        "overrides": callback.overrides,
        "status": "passed" if exit_code == 0 else "failed",
        "exit_code": exit_code,
        "mlflow_run_id": ctx.parent_run_id,
        "jobs": [{k: v for k, v in j.items() if k != "report"} for j in jobs],
        "rows": sweep_rows(jobs),
    }
    problem = _write_summary(sweep_dir, summary)
    if ctx.parent_run_id and ctx.tracking_uri:
        from pipelines.tracking.dashboard import fit_note, sweep_metrics
        from pipelines.tracking.sweep_run import end_sweep_run

        status = "KILLED" if interrupted else "FINISHED" if exit_code == 0 else "FAILED"
        try:
            end_sweep_run(
                ctx.tracking_uri,
                ctx.parent_run_id,
                status,
                [sweep_dir / "sweep_report.json", sweep_dir / "sweep_report.md"],
                {"sweep/jobs": len(jobs), "sweep/failed_jobs": sum(c != 0 for c in codes), **sweep_metrics(jobs)},
                note=fit_note(format_sweep_markdown(summary), "sweep_report.md"),
            )
        except Exception as err:  # noqa: BLE001 - the jobs' work and the sweep report are kept: exit 3
            from pipelines.engine.environment import tracking_failure_message

            kept = f"The sweep report is {sweep_dir / 'sweep_report.md'}; every job's report is in its folder."
            problem = problem or tracking_failure_message(ctx.tracking_uri, err, kept)
    if problem:
        from pipelines.engine.errors import EXIT_ENVIRONMENT

        exit_code = max(exit_code, EXIT_ENVIRONMENT)
        summary.update(exit_code=exit_code, status="failed")
        _write_summary(sweep_dir, summary)
        log.error("Error: %s", problem)
    callback.exit_code = exit_code
    print(f"\nSweep report: {sweep_dir / 'sweep_report.md'}  ({len(jobs)} jobs, exit code {exit_code})")
    return exit_code
