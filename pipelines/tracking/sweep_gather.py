"""A sweep's jobs gathered through MLflow, whichever node ran them.

On a cluster each job writes its run directory (report.json, job.json) on the disk of the node that ran it, where
the sweep's main process cannot see it. Every job's pipeline run is nested under the sweep's parent run and
already carries report.json as an artifact; `record_job` adds the job's record (job.json: overrides, exit code)
to it when the job ends, and `gather_jobs` reads both back for the sweep report.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from pipelines.tracking.store import client as _client

log = logging.getLogger("tflite_pipeline")


def record_job(uri: str, run_dir: Path, record: dict[str, Any]) -> None:
    """Attach a finished job's record to its own MLflow run (named in its report.json); best effort."""
    report = run_dir / "report.json"
    try:
        run_id = json.loads(report.read_text()).get("mlflow_run_id") if report.is_file() else None
        if run_id:
            client = _client(uri)
            client.log_dict(run_id, record, "job.json")
            client.set_tag(run_id, "sweep.job", str(record["num"]))
    except Exception as err:  # noqa: BLE001 - the sweep report then derives the exit code from the run
        log.warning("Could not attach job.json to the job's MLflow run: %s", err)


def gather_jobs(uri: str, parent_run_id: str, local: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`local` job records (job.json files this process can see) completed by the job runs nested under the
    sweep's parent: each job gets `mlflow_run_id` and `report_artifact` (runs:/<id>/report.json), and a job
    whose folder is on another node's disk is added from its MLflow artifacts."""
    client = _client(uri)
    parent = client.get_run(parent_run_id)
    runs = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=10000
    )
    by_num = {j["num"]: j for j in local}
    by_run = {(j.get("report") or {}).get("mlflow_run_id"): j for j in local}
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            run_id = run.info.run_id
            job = by_run.get(run_id)
            if job is None:
                record = _artifact(client, run_id, "job.json", tmp)
                num = record["num"] if record else _job_num(run)
                job = by_num.get(num) if num is not None else None
                if job is None:
                    job = _remote_job(run, record, num)
                    local.append(job)
            if job.get("report") is None:
                job["report"] = _artifact(client, run_id, "report.json", tmp)
            job["mlflow_run_id"] = run_id
            job["report_artifact"] = f"runs:/{run_id}/report.json" if _has(client, run_id, "report.json") else None
    return sorted(local, key=lambda j: (j["num"] is None, j["num"] if j["num"] is not None else 0))


def _job_num(run: Any) -> int | None:
    tag = run.data.tags.get("sweep.job") or run.info.run_name
    return int(tag) if str(tag).isdigit() else None


def _remote_job(run: Any, record: dict[str, Any] | None, num: int | None) -> dict[str, Any]:
    """A job known only from MLflow: its record, or what its run says (a job that died has no record)."""
    if record is not None:
        return {**record, "report": None}
    status = run.info.status
    return {
        "num": num,
        "overrides": [],
        "run_dir": f"{run.data.tags.get('host', '?')}: (folder on that node)",
        "status": "completed" if status in ("FINISHED", "FAILED") else "died",
        "exit_code": 0 if status == "FINISHED" else 1,
        "error": None if status in ("FINISHED", "FAILED") else f"the job's run ended {status}",
        "report": None,
    }


def _has(client: Any, run_id: str, name: str) -> bool:
    try:
        return any(f.path == name for f in client.list_artifacts(run_id))
    except Exception:  # noqa: BLE001
        return False


def _artifact(client: Any, run_id: str, name: str, tmp: str) -> dict[str, Any] | None:
    try:
        path = client.download_artifacts(run_id, name, f"{tmp}/{run_id}")
        data: dict[str, Any] = json.loads(Path(path).read_text())
    except Exception:  # noqa: BLE001 - absent artifact, or a store error: the job is listed without it
        return None
    return data
