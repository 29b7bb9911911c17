"""A multirun sweep's own MLflow parent run: created before any job starts (which also initialises a fresh store
once), and closed with the sweep report after the last job."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from pipelines.tracking import dashboard
from pipelines.tracking.store import client as _client
from pipelines.tracking.store import sqlite_init_lock, store_error
from pipelines.tracking.tracker import git_commit


def start_sweep_run(uri: str, experiment: str, run_name: str, params: dict[str, Any], tags: dict[str, str]) -> str:
    """Create (not activate) a sweep's parent run before any job starts; this also initialises a new store once.

    Sweep parents of the same sweep (`config_hash` tag) or sweep directory left RUNNING by a killed process
    are closed here as KILLED (pipelines/tracking/run_recovery.py)."""
    from pipelines.tracking.run_recovery import close_dead_runs_quietly, owner_tags

    try:
        client = _client(uri)
        with sqlite_init_lock(uri):  # a fresh store's tables and the experiment are created once
            found = client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
        run = client.create_run(
            experiment_id,
            run_name=run_name,
            tags={
                **tags,
                **owner_tags(),
                "sweep": "true",
                "git_commit": git_commit(),
                "host": socket.gethostname(),
            },
        )
    except Exception as err:  # noqa: BLE001 - MlflowException, requests errors, sqlalchemy errors
        raise store_error(uri, err, "open the sweep's parent run in", "sweep") from None
    for key, value in params.items():
        client.log_param(run.info.run_id, key, str(value)[:6000])
    match: dict[str, str] = {k: tags[k] for k in ("config_hash", "sweep_dir") if k in tags}
    close_dead_runs_quietly(uri, experiment_id, match, run.info.run_id)
    return str(run.info.run_id)


def end_sweep_run(
    uri: str, run_id: str, status: str, files: list[Path], metrics: dict[str, float], note: str | None = None
) -> None:
    """Attach the sweep report (files, metrics, description) to the parent run and close it with its status."""
    from mlflow.entities import Metric
    from mlflow.utils.time import get_current_time_millis

    client = _client(uri)
    try:
        now = get_current_time_millis()
        batch = [Metric(key, value, now, 0) for key, value in metrics.items()]
        for start in range(0, len(batch), 1000):  # MLflow's limit per batch
            client.log_batch(run_id, metrics=batch[start : start + 1000])
        if note:
            client.set_tag(run_id, dashboard.NOTE_TAG, note)
        for path in files:
            if path.exists():
                client.log_artifact(run_id, str(path))
    finally:
        client.set_terminated(run_id, status=status)
