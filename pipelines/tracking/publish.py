"""After the verdicts: MLflow, once the local report is on disk, and the environment failures found on the way.

`cli` writes report.json and report.md as soon as the verdicts exist; `track_run` then logs the run and rewrites
the report with the MLflow run ids. A store failure there is returned as a one-paragraph message (exit code 3),
never raised: the local report stands and no verdict changes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.engine.environment import (
    disk_errno,
    disk_errno_in_text,
    kept_locally,
    tracking_failure_kind,
    tracking_failure_message,
)
from pipelines.engine.runner import Outcome
from pipelines.output.report import write_report


def track_run(
    tracker: Any,
    cfg: dict[str, Any],
    report: dict[str, Any],
    outcomes: dict[str, Outcome],
    run_dir: Path,
    cache_root: Path,
    before_report: Callable[[], None] = lambda: None,
) -> str | None:
    """Log the run to MLflow (and promote in the registry), then rewrite the report with the run ids.

    `before_report` runs once the variants are logged (and the model registered), right before the report is
    rewritten with the run ids and the parent run, which carries the figures, is logged:
    pipelines/output/plot_beside.py waits there for the figures it draws meanwhile.
    Returns None, or the message of a tracking failure; the parent run is then closed FAILED where the store
    still answers, else by the next run of this configuration (pipelines/tracking/run_recovery.py).
    """
    from pipelines.tracking.tracker import variant_params

    registry_cfg = cfg.get("registry") or {}
    try:
        tracker.wait_started()
        # The variants' pyfunc directories, kept beside the stage cache (pipelines/tracking/logged_model.py).
        models = cache_root / "mlflow-models" if cfg["runtime"]["use_cache"] else None
        for name, entry in report["variants"].items():
            entry["mlflow_run_id"] = tracker.log_variant(name, entry, variant_params(cfg, name), run_dir, models)
        report["mlflow_run_id"] = tracker.parent_id
        if registry_cfg.get("name"):
            from pipelines.tracking.registry import promote

            report["registry"] = promote(registry_cfg, report, outcomes, run_dir, tracker.uri)
        before_report()
        write_report(report, run_dir)  # atomically replaces the local report, now with the run ids
        tracker.finish(report, run_dir, "FINISHED" if report["status"] == "passed" else "FAILED")
    except Exception as err:  # noqa: BLE001 - MLflow, HTTP and store errors alike: the work is kept
        if disk_errno(err) is not None:
            raise  # the run directory's disk, not the store: cli reports it
        tracker.abort("FAILED", reach_store=tracking_failure_kind(str(err)) != "the server is unreachable")
        return tracking_failure_message(tracker.uri, err, kept_locally(run_dir, True, cache_root))
    return None


def disk_failure_in_stages(outcomes: dict[str, Outcome]) -> tuple[int, str | None] | None:
    """(errno, path) of the first stage that failed because the disk did (full, read-only, no permission)."""
    for outcome in outcomes.values():
        if outcome.status == "error":
            found = disk_errno_in_text(outcome.error or "")
            if found is not None:
                return found
    return None


def remove_partial_files(run_dir: Path) -> None:
    """Temp files a failed write left in the run directory (the report, the plot, a variant's copy)."""
    for pattern in (".*.tmp*", "variants/*/.*.tmp"):
        for tmp in run_dir.glob(pattern):
            tmp.unlink(missing_ok=True)
