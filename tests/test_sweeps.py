"""Multirun sweeps: one MLflow parent run per sweep with every job nested, exit codes, the sweep report, and
parallel jobs sharing the stage cache through its file locks."""

from __future__ import annotations

import importlib.util
import json
import multiprocessing as mp
from pathlib import Path
from typing import Any

import pytest

from pipelines.tracking.sweep import absolute_uri, collect_jobs, format_sweep_markdown, sweep_rows
from tests.conftest import cli

FAST = ["variants=[fp32]", "benchmark.enabled=false", "calibrate.num_samples=20"]


def runs_by_parent(tracking_uri: str) -> tuple[Any, dict[str, list[Any]]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    children: dict[str, list[Any]] = {}
    for run in runs:
        children.setdefault(run.data.tags.get("mlflow.parentRunId", ""), []).append(run)
    return client, children


def test_relative_sqlite_uris_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert absolute_uri("sqlite:///mlflow.db") == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert absolute_uri("sqlite:////abs/m.db") == "sqlite:////abs/m.db"
    assert absolute_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_sweep_report_has_a_row_per_job_and_variant_and_counts_dead_jobs(tmp_path: Path) -> None:
    for num, (code, report) in enumerate(
        [
            (
                0,
                {
                    "variants": {
                        "fp32": {"status": "passed", "size_bytes": 2048, "metrics": {"accuracy": 0.9}},
                        "fp16": {"status": "passed", "size_bytes": 1024, "metrics": {"accuracy": 0.89}},
                    }
                },
            ),
            (None, None),
        ]
    ):
        job_dir = tmp_path / str(num)
        job_dir.mkdir()
        (job_dir / "job.json").write_text(
            json.dumps(
                {
                    "num": num,
                    "overrides": [f"x={num}"],
                    "run_dir": str(job_dir),
                    "status": "running",
                    "exit_code": code,
                }
            )
        )
        if report:
            (job_dir / "report.json").write_text(json.dumps(report))
    jobs = collect_jobs(tmp_path)
    assert [j["exit_code"] for j in jobs] == [0, 1]  # job 1 never recorded an end: its process died
    rows = sweep_rows(jobs)
    assert [(r["job"], r["variant"]) for r in rows] == [(0, "fp32"), (0, "fp16"), (1, None)]
    md = format_sweep_markdown({"status": "failed", "exit_code": 1, "jobs": jobs, "rows": rows})
    assert "| 0 | `x=0` | fp16 | passed | 0.8900 |" in md and "ended without recording a result" in md


def _contend(cache_root: str, log_file: str, start: Any, results: Any) -> None:
    from pipelines.engine.cache import StageCache
    from pipelines.engine.dag import build_dag
    from pipelines.engine.runner import run_dag
    from pipelines.engine.worker import Worker

    stages = {
        "produce": {
            "_target_": "tests.sweep_stages.slow_produce",
            "config": {"log_file": log_file, "sleep_s": 3, "value": 7},
        }
    }
    nodes = build_dag(stages, {})
    start.wait()
    with Worker() as worker:
        outcome = run_dag(nodes, StageCache(Path(cache_root)), worker, timeout_s=60)["produce"]
    results.put((outcome.status, outcome.cached, outcome.seconds, outcome.result.metrics["value"]))


def test_parallel_jobs_wait_for_and_reuse_each_others_cache_entries(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    log_file = tmp_path / "computed.log"
    procs = [
        ctx.Process(target=_contend, args=(str(tmp_path / "cache"), str(log_file), start, results)) for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    start.set()
    outcomes = sorted(results.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
    assert len(log_file.read_text().splitlines()) == 1  # computed once
    (_, cached_first, _, v1), (_, cached_second, waited, v2) = sorted(outcomes, key=lambda o: o[1])
    assert (cached_first, cached_second, v1, v2) == (False, True, 7, 7)
    assert waited >= 2.0  # the second job blocked on the lock while the first computed, then reused it


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
    from tests.mlflow_server import free_port

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
