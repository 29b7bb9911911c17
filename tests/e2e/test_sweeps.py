"""Multirun sweeps through the CLI: one MLflow parent run per sweep with every job nested, every job's figures
and the sweep table on it, exit codes, and a parent run that cannot open stops every job."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cli import cli

FAST = ["variants=[fp32]", "benchmark.enabled=false", "calibrate.num_samples=20"]


def runs_by_parent(tracking_uri: str) -> tuple[Any, dict[str, list[Any]]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    children: dict[str, list[Any]] = {}
    for run in runs:
        children.setdefault(run.data.tags.get("mlflow.parentRunId", ""), []).append(run)
    return client, children


@pytest.mark.slow
def test_joblib_sweep_nests_every_job_and_a_failing_job_fails_only_the_parent(
    tmp_path: Path, shared_cache: str
) -> None:
    sweep_dir = tmp_path / "sweep"
    proc = cli(
        [
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            *FAST,
            f"runtime.cache_dir={shared_cache}",
            f"hydra.sweep.dir={sweep_dir}",
            "variants.fp32.gates.min_argmax_agreement=0.5,0.9,1.01",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # job 2's gate (agreement >= 1.01) cannot pass
    client, children = runs_by_parent(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (parent,) = children[""]  # exactly one top-level run: the sweep's
    assert parent.info.status == "FAILED"
    jobs = sorted(children[parent.info.run_id], key=lambda r: r.info.run_name)
    assert [(j.info.run_name, j.info.status) for j in jobs] == [
        ("0", "FINISHED"),
        ("1", "FINISHED"),
        ("2", "FAILED"),
    ]
    assert all(len(children[j.info.run_id]) == 1 for j in jobs)  # each job's fp32 variant run under it
    summary = json.loads((sweep_dir / "sweep_report.json").read_text())
    assert [(r["job"], r["variant"], r["status"], r["exit_code"]) for r in summary["rows"]] == [
        (0, "fp32", "passed", 0),
        (1, "fp32", "passed", 0),
        (2, "fp32", "failed", 1),
    ]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"sweep_report.json", "sweep_report.md"} <= artifacts
    # The dashboard of the sweep: every job's figures on its parent run, and the sweep table as its note.
    assert summary["mlflow_run_id"] == parent.info.run_id
    metrics = parent.data.metrics
    assert (metrics["job0/fp32/passed"], metrics["job2/fp32/passed"]) == (1.0, 0.0)
    assert metrics["job0/fp32/size_ratio"] == metrics["job2/fp32/size_ratio"]
    note = parent.data.tags["mlflow.note.content"]
    assert note == (sweep_dir / "sweep_report.md").read_text()
    (row,) = [line for line in note.splitlines() if line.startswith("| 2 | ")]
    assert "min_argmax_agreement=1.01` | fp32 | failed |" in row


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None,
    reason="the Ray launcher is an extra: pip install -e '.[ray]'",
)
@pytest.mark.xdist_group("ray")  # one Ray at a time on this machine
def test_ray_sweep_nests_every_job(tmp_path: Path, tiny_keras: Path) -> None:
    """A job that trains nothing (Ray runs TensorFlow on one thread per job): the launcher is what is tested."""
    sweep_dir = tmp_path / "sweep"
    proc = cli(
        [
            "-m",
            "hydra/launcher=ray",
            "+hydra.launcher.ray.init.num_cpus=2",
            "+hydra.launcher.ray.init.include_dashboard=false",
            "model=keras",
            f"model.path={tiny_keras}",
            "dataset=random",
            *FAST,
            f"runtime.cache_dir={tmp_path / 'cache'}",
            f"hydra.sweep.dir={sweep_dir}",
            "calibrate.seed=0,1",
        ],
        cwd=tmp_path,
        env={"RAY_DEDUP_LOGS": "0"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _, children = runs_by_parent(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (parent,) = children[""]
    assert parent.info.status == "FINISHED"
    jobs = children[parent.info.run_id]
    assert sorted((j.info.run_name, j.info.status) for j in jobs) == [("0", "FINISHED"), ("1", "FINISHED")]
    assert len(json.loads((sweep_dir / "sweep_report.json").read_text())["rows"]) == 2


@pytest.mark.slow  # a CLI run in a subprocess: tier 4
def test_a_sweep_whose_parent_run_cannot_open_stops_every_job_with_exit_2(tmp_path: Path) -> None:
    from tests.helpers.mlflow_server import free_port

    proc = cli(
        [
            "-m",
            *FAST,
            f"tracking.uri=http://127.0.0.1:{free_port()}",
            f"hydra.sweep.dir={tmp_path / 's'}",
            "calibrate.seed=0,1",
        ],
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Cannot open the sweep's parent run" in proc.stderr + proc.stdout
    summary = json.loads((tmp_path / "s" / "sweep_report.json").read_text())
    assert [job["exit_code"] for job in summary["jobs"]] == [2, 2]
    assert not list((tmp_path / "s").rglob("report.json"))  # no job did any work
