"""No run left RUNNING: closing runs whose process ended without closing them.

A run that ends in any way short of `kill -9` closes its own runs (FAILED or KILLED). A process killed outright
cannot, so every parent run records its owner (`host:boot id:pid:process start time`) in the tag `owner`, and
the next run of the same configuration (tag `config_hash`) or the same run directory (tag `run_dir`) closes
every RUNNING run whose owner is provably gone, with its child runs, as KILLED with the tag `killed_found_by`
naming the run that found it. Owners on other hosts are left alone: their liveness cannot be checked from here.

A run ends KILLED in three ways, and only three: the CLI was interrupted (Ctrl-C or SIGTERM: `pipelines/cli.py`
`_interrupt`, which closes its own runs through `BackgroundTracker.abort`); a sweep was interrupted
(`pipelines/tracking/sweep.py` closes the sweep's parent); or its process died outright and a later run found
it here (tag `killed_found_by`). A run closed by a failure ends FAILED instead.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

log = logging.getLogger("tflite_pipeline")

OWNER_TAG = "owner"
FOUND_BY_TAG = "killed_found_by"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _start_ticks(pid: int) -> str | None:
    """A process's start time (clock ticks after boot): tells a live owner from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; fields 1-2 (pid, comm) precede the ")"


def owner_tag(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{_boot_id()}:{pid}:{_start_ticks(pid) or '?'}"


def owner_tags(run_dir: Path | None = None) -> dict[str, str]:
    """Tags a parent run carries so that a later run can tell whether its process is still alive."""
    tags = {OWNER_TAG: owner_tag()}
    if run_dir is not None:
        tags["run_dir"] = str(run_dir.resolve())
    return tags


def owner_alive(owner: str) -> bool | None:
    """True/False for an owner on this host; None when it cannot be known (another host, unknown format)."""
    try:
        host, boot, pid, ticks = owner.rsplit(":", 3)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    if boot != _boot_id():
        return False  # the machine rebooted since: nothing of that run survives
    return _start_ticks(int(pid)) == ticks


def close_tree(client: Any, run_id: str, status: str, tags: dict[str, str] | None = None) -> int:
    """Close a run and every RUNNING run nested under it (children first); returns how many were closed."""
    closed = 0
    experiment_id = client.get_run(run_id).info.experiment_id
    children = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{run_id}' and attributes.status = 'RUNNING'",
        max_results=1000,
    )
    for child in children:
        closed += close_tree(client, child.info.run_id, status, tags)
    if client.get_run(run_id).info.status == "RUNNING":
        for key, value in (tags or {}).items():
            client.set_tag(run_id, key, value)
        client.set_terminated(run_id, status=status)
        closed += 1
    return closed


def close_dead_runs(client: Any, experiment_id: str, match: dict[str, str], found_by: str) -> list[str]:
    """Close as KILLED the RUNNING runs sharing any `match` tag (e.g. config_hash, run_dir) whose owner died.

    Returns the closed parent runs' ids. Runs whose owner is alive or unknowable are left as they are.
    """
    closed: list[str] = []
    for key, value in match.items():
        quoted = value.replace("'", "\\'")
        runs = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{key}` = '{quoted}' and attributes.status = 'RUNNING'",
            max_results=1000,
        )
        for run in runs:
            run_id = run.info.run_id
            if run_id == found_by or run_id in closed:
                continue
            if owner_alive(run.data.tags.get(OWNER_TAG, "")) is False:
                close_tree(client, run_id, "KILLED", {FOUND_BY_TAG: found_by})
                closed.append(run_id)
    if closed:
        log.info("Closed %d run(s) left RUNNING by killed processes as KILLED: %s", len(closed), ", ".join(closed))
    return closed


def close_dead_runs_quietly(uri: str, experiment_id: str, match: dict[str, str], found_by: str) -> list[str]:
    """`close_dead_runs`, but a failure only warns: cleaning up after others must never fail this run."""
    from mlflow.tracking import MlflowClient

    try:
        return close_dead_runs(MlflowClient(tracking_uri=uri), experiment_id, match, found_by)
    except Exception as err:  # noqa: BLE001 - any store error: this run goes on
        log.warning("Could not close runs left RUNNING by killed processes: %s", str(err).splitlines()[:1])
        return []


def _close_run(uri: str, run_id: str, status: str) -> int:
    from mlflow.tracking import MlflowClient

    return close_tree(MlflowClient(tracking_uri=uri), run_id, status)


def close_in_fresh_process(uri: str, run_id: str, status: str) -> None:
    """Close a run tree from a new tracking process (MLflow stays out of the main process), for when the
    tracking process is gone (a signal to the whole process group); never raises."""
    from pipelines.tracking.tracking_process import new_pool

    pool = new_pool()
    try:
        pool.apply_async(_close_run, (uri, run_id, status)).get(timeout=60)
    except Exception:  # noqa: BLE001 - the next run of this configuration closes it (close_dead_runs)
        pass
    finally:
        pool.terminate()
