"""Runs left RUNNING by a dead process are found and closed, with their children, on this host only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipelines.tracking.run_recovery import FOUND_BY_TAG, OWNER_TAG, close_dead_runs, owner_alive, owner_tag
from tests.helpers.mlflow_store import new_sqlite_store


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_owner_liveness_is_known_on_this_host_only() -> None:
    assert owner_alive(owner_tag()) is True
    assert owner_alive(owner_tag(_dead_pid())) is False
    host, rest = owner_tag().split(":", 1)
    assert owner_alive(f"{host}-elsewhere:{rest}") is None


def test_runs_of_dead_owners_are_closed_with_their_children(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=new_sqlite_store(tmp_path / "mlflow.db"))
    exp = client.create_experiment("recovery")
    same = {"config_hash": "abc"}
    dead = client.create_run(exp, tags={**same, OWNER_TAG: owner_tag(_dead_pid())}).info.run_id
    child = client.create_run(exp, tags={"mlflow.parentRunId": dead}).info.run_id
    alive = client.create_run(exp, tags={**same, OWNER_TAG: owner_tag()}).info.run_id
    other_config = client.create_run(exp, tags={"config_hash": "xyz", OWNER_TAG: owner_tag(_dead_pid())}).info.run_id
    finder = client.create_run(exp, tags=same).info.run_id

    assert close_dead_runs(client, exp, same, finder) == [dead]
    for run_id, status in [(dead, "KILLED"), (child, "KILLED"), (alive, "RUNNING"), (other_config, "RUNNING")]:
        assert client.get_run(run_id).info.status == status, run_id
    assert client.get_run(dead).data.tags[FOUND_BY_TAG] == finder
