"""Faults lose nothing: the tracking server killed mid-run, a full disk (a real tmpfs and ENOSPC injected at a
write), kill -9 and a rerun. Under each: no traceback, the local report (or a clean resume), a documented exit
code (3: the environment failed), and after the next clean run no MLflow run is left RUNNING."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipelines.tracking.run_recovery import FOUND_BY_TAG
from tests.helpers.cli import cli, read_until, start_cli
from tests.helpers.mlflow_server import mlflow_server_process
from tests.helpers.paths import FAULTS, REPO

QUICK = ["benchmark.enabled=false", "variants=[fp32,int8]", "dataset=random", "dataset.num_samples=64"]


def _model(tiny_keras: Path) -> list[str]:
    return ["model=keras", f"model.path={tiny_keras}"]


def _output(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout + proc.stderr


def _runs(uri: str) -> list[Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(ids, max_results=1000)) if ids else []


@pytest.mark.slow  # a CLI run in a subprocess: the fast tier is tests/unit/
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("calibrate.num_samples=0", "`calibrate.num_samples=0`: the variants need calibration samples"),
        ("dataset.eval_fraction=1.0", "`dataset.eval_fraction=1.0` must lie strictly between 0 and 1"),
    ],
)
def test_impossible_counts_fail_before_any_work(tmp_path: Path, override: str, expected: str) -> None:
    proc = cli(["tracking.enabled=false", override, "hydra.run.dir=run"], tmp_path, timeout=120)
    assert proc.returncode == 2, _output(proc)[-2000:]
    assert expected in proc.stderr
    assert "Traceback" not in _output(proc)
    assert not (tmp_path / "run").exists() and not (tmp_path / "outputs" / "cache").exists()


def _no_half_written(run_dir: Path, cache: Path) -> None:
    assert not [p for p in run_dir.rglob("*") if ".tmp" in p.name], list(run_dir.rglob("*"))
    assert not list(cache.glob("*/.tmp-*")), list(cache.glob("*/.tmp-*"))


@pytest.mark.slow
def test_tracking_server_killed_mid_run_keeps_the_report_then_the_rerun_logs_it(
    tmp_path: Path, tiny_keras: Path
) -> None:
    root = tmp_path / "server"
    with mlflow_server_process(root) as (url, server):
        args = [
            *QUICK,
            *_model(tiny_keras),
            f"runtime.cache_dir={tmp_path / 'cache'}",
            f"tracking.uri={url}",
            "tracking.experiment=faults",
            "hydra.run.dir=run",
        ]
        proc = start_cli(args, tmp_path)
        seen = read_until(proc, "reference              done")  # the parent run is open, variants to come
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        seen += proc.communicate(timeout=300)[0]
    assert proc.returncode == 3, seen[-3000:]
    assert "Traceback" not in seen
    assert f"Tracking failed: the server is unreachable at the MLflow store '{url}'" in seen
    assert "run the same command again" in seen
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    verdicts = {name: v["status"] for name, v in report["variants"].items()}
    assert verdicts == {"fp32": "passed", "int8": "passed"}
    assert "mlflow_run_id" not in report  # written before tracking, which never finished
    assert "mlflow_run_id" not in report["variants"]["fp32"]
    assert report["plot"] == "tradeoffs.png" and (tmp_path / "run" / "tradeoffs.png").is_file()  # drawn meanwhile

    port = int(url.rsplit(":", 1)[1])
    with mlflow_server_process(root, port=port):
        again = cli(args, tmp_path, timeout=300)
        assert again.returncode == 0, _output(again)[-3000:]
        runs = _runs(url)
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert {name: v["status"] for name, v in report["variants"].items()} == verdicts
    assert not [r for r in runs if r.info.status == "RUNNING"]
    [killed] = [r for r in runs if r.info.status == "KILLED"]  # the first run's parent, closed by the rerun
    assert killed.data.tags[FOUND_BY_TAG] == report["mlflow_run_id"]


@pytest.mark.slow
def test_kill_9_leaves_a_run_that_the_next_run_closes(tmp_path: Path, tiny_keras: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*QUICK, *_model(tiny_keras), f"runtime.cache_dir={tmp_path / 'cache'}", f"tracking.uri={uri}"]
    proc = start_cli([*args, "hydra.run.dir=killed"], tmp_path)
    seen = read_until(proc, "calibrate              done")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert "calibrate" in seen, seen[-2000:]
    assert [r.info.status for r in _runs(uri)] == ["RUNNING"]  # the phantom the issue describes

    final = cli([*args, "hydra.run.dir=final"], tmp_path, timeout=300)
    assert final.returncode == 0, _output(final)[-3000:]
    report = json.loads((tmp_path / "final" / "report.json").read_text())
    runs = _runs(uri)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    [killed] = [r for r in runs if r.info.status == "KILLED"]
    assert killed.data.tags[FOUND_BY_TAG] == report["mlflow_run_id"]
    assert killed.data.tags["run_dir"] == str(tmp_path / "killed")


# Where the write fails, and whether the run still leaves a report. One cache for the three: each failed run
# computes what the one before it could not commit, so the three cost one run's work, not three.
ENOSPC_AT = [
    ("result.json.tmp", False),  # the cache's commit, in this process: no report, stages resume
    ("model.tflite", True),  # the converter's output, in the worker: variants error, the report says so
    (".report.json.tmp", False),  # the report itself: none, never half of one
]


@pytest.mark.slow
def test_enospc_at_a_write_is_reported_and_the_same_command_resumes(tmp_path: Path, tiny_keras: Path) -> None:
    cache = tmp_path / "cache"
    args = [*QUICK, *_model(tiny_keras), f"runtime.cache_dir={cache}", "tracking.enabled=false"]
    for number, (pattern, report_kept) in enumerate(ENOSPC_AT):
        run_dir = tmp_path / f"run{number}"
        env = {"PYTHONPATH": f"{REPO}{os.pathsep}{FAULTS}", "FAULT_ENOSPC": pattern}
        failed = cli([*args, f"hydra.run.dir={run_dir}"], tmp_path, timeout=300, env=env)
        output = _output(failed)
        assert failed.returncode == 3, (pattern, output[-3000:])
        assert "Traceback" not in output, pattern
        assert "The file system failed: the disk is full writing" in output, pattern
        assert "Free at least" in output and "run the same command again" in output, pattern
        assert (run_dir / "report.json").exists() == report_kept, pattern
        if report_kept:
            report = json.loads((run_dir / "report.json").read_text())
            assert {v["status"] for v in report["variants"].values()} == {"error"}
        _no_half_written(run_dir, cache)

    for number, _ in enumerate(ENOSPC_AT):  # the same commands, the disk freed: each resumes and passes
        resumed = cli([*args, f"hydra.run.dir={tmp_path / f'run{number}'}"], tmp_path, timeout=300)
        assert resumed.returncode == 0, _output(resumed)[-3000:]
        report = json.loads((tmp_path / f"run{number}" / "report.json").read_text())
        assert {v["status"] for v in report["variants"].values()} == {"passed"}


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Any:
    """A 3 MB tmpfs (needs root and mount rights: skipped with the reason where the machine refuses)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(mount: Path, leave: int) -> Path:
    filler = mount / "filler"
    filler.write_bytes(b"\0" * max(0, shutil.disk_usage(mount).free - leave))
    return filler


@pytest.mark.slow
def test_full_tmpfs_with_the_sqlite_store_on_it(small_tmpfs: Path, tmp_path: Path, tiny_keras: Path) -> None:
    uri = f"sqlite:///{small_tmpfs / 'mlflow.db'}"
    args = [
        *QUICK,
        *_model(tiny_keras),
        f"runtime.cache_dir={small_tmpfs / 'cache'}",
        f"tracking.uri={uri}",
        f"hydra.run.dir={small_tmpfs / 'run'}",
    ]
    filler = _fill(small_tmpfs, leave=400 * 1024)  # room for Hydra's files, not for MLflow's tables
    full = cli(args, tmp_path, timeout=300)
    output = _output(full)
    assert full.returncode == 3, output[-3000:]
    assert "Traceback" not in output
    assert "the store is full" in output
    assert not (small_tmpfs / "mlflow.db").exists()  # created whole or not at all: a rerun can open it
    assert not [p for p in small_tmpfs.iterdir() if ".tmp" in p.name]

    filler.unlink()
    resumed = cli(args, tmp_path, timeout=300)
    assert resumed.returncode == 0, _output(resumed)[-3000:]
    assert {r.info.status for r in _runs(uri)} == {"FINISHED"}


@pytest.mark.slow
def test_full_tmpfs_mid_run_keeps_nothing_half_written(small_tmpfs: Path, tmp_path: Path, tiny_keras: Path) -> None:
    cache, run = small_tmpfs / "cache", small_tmpfs / "run"
    args = [*QUICK, *_model(tiny_keras), f"runtime.cache_dir={cache}", "tracking.enabled=false", f"hydra.run.dir={run}"]
    filler = _fill(small_tmpfs, leave=200 * 1024)  # the stages fit, the copies into the run directory do not
    full = cli(args, tmp_path, timeout=300)
    output = _output(full)
    assert full.returncode == 3, output[-3000:]
    assert "Traceback" not in output
    assert "The file system failed: the disk is full writing" in output and "Free at least" in output
    _no_half_written(run, cache)

    filler.unlink()
    resumed = cli(args, tmp_path, timeout=300)
    assert resumed.returncode == 0, _output(resumed)[-3000:]
    assert "cached" in next(line for line in _output(resumed).splitlines() if "] load " in line)


@pytest.mark.slow
def test_kill_9_of_a_sweep_leaves_runs_that_the_next_sweep_closes(tmp_path: Path, tiny_keras: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [
        "-m",
        "benchmark.enabled=false",
        "variants=[fp32]",
        "dataset=random",
        "dataset.num_samples=64",
        *_model(tiny_keras),
        f"runtime.cache_dir={tmp_path / 'cache'}",
        f"tracking.uri={uri}",
        "calibrate.seed=0",  # a sweep of one job: its parent and its job are what the kill leaves open
        "hydra.sweep.dir=sweep",
    ]
    proc = start_cli(args, tmp_path)
    seen = read_until(proc, "calibrate              done")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert "calibrate" in seen, seen[-2000:]
    assert {r.info.status for r in _runs(uri)} == {"RUNNING"}  # the sweep's parent and the first job's

    again = cli(args, tmp_path, timeout=400)
    assert again.returncode == 0, _output(again)[-3000:]
    summary = json.loads((tmp_path / "sweep" / "sweep_report.json").read_text())
    runs = _runs(uri)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    killed = [r for r in runs if r.info.status == "KILLED"]
    sweep_parents = [r for r in killed if r.data.tags.get("sweep") == "true"]
    assert len(sweep_parents) == 1 and sweep_parents[0].data.tags[FOUND_BY_TAG] == summary["mlflow_run_id"]
    assert len(killed) == 2  # the first job's pipeline run too, nested under the killed sweep's parent


@pytest.mark.slow
def test_sigterm_to_the_process_group_closes_the_runs_as_killed(tmp_path: Path, tiny_keras: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*QUICK, *_model(tiny_keras), f"runtime.cache_dir={tmp_path / 'cache'}", f"tracking.uri={uri}"]
    proc = start_cli([*args, "hydra.run.dir=run"], tmp_path)
    seen = read_until(proc, "calibrate              done")
    os.killpg(proc.pid, signal.SIGTERM)  # as a scheduler stops a job: the worker processes get it too
    seen += proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, seen[-3000:]
    assert "Traceback" not in seen and "Interrupted: the MLflow runs were closed as KILLED" in seen
    assert {r.info.status for r in _runs(uri)} == {"KILLED"}
    assert not (tmp_path / "run" / "report.json").exists()
