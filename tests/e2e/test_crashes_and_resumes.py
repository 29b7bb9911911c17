"""Crashes stay contained, killed runs resume from what finished, damaged cache entries are recomputed,
and two runs racing on one cache and one fresh sqlite store both finish with every run recorded once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers.cli import cli, read_until, start_cli

QUICK = [
    "tracking.enabled=false",
    "benchmark.enabled=false",
    "variants=[fp32,int8]",
    "dataset=random",
    "dataset.num_samples=64",
]


def _model(tiny_keras: Path) -> list[str]:
    return ["model=keras", f"model.path={tiny_keras}"]


@pytest.mark.slow  # a CLI run in a subprocess: tier 4
def test_a_segfault_and_a_hang_each_fail_one_variant_and_the_others_pass(tmp_path: Path, tiny_keras: Path) -> None:
    """One run, two faults (one worker start less than a run per fault): int8's converter dies with SIGSEGV,
    dynamic's hangs past the stage timeout; fp32 still passes."""
    quick = [a for a in QUICK if not a.startswith("variants=")]
    result = cli(
        [
            *quick,
            "variants=[fp32,int8,dynamic]",
            *_model(tiny_keras),
            "pipeline.stages.convert._target_=tests.helpers.crashy.convert",
            "hydra.run.dir=run",
            "runtime.stage_timeout_s=20",
        ],
        tmp_path,
        timeout=300,
        env={"CRASHY_VARIANT": "int8", "CRASHY_HANG": "dynamic"},
    )
    assert result.returncode == 1, result.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["variants"]["fp32"]["status"] == "passed"
    assert report["variants"]["int8"]["status"] == "error"
    assert "SIGSEGV" in report["variants"]["int8"]["error"]
    assert "TensorFlow converter" in report["variants"]["int8"]["error"]
    assert report["variants"]["dynamic"]["status"] == "error"
    assert "did not finish within 20 s" in report["variants"]["dynamic"]["error"]
    assert "accuracy" not in report["reference"]["metrics"]  # random data: no labels, no accuracy
    assert "accuracy is meaningless" in report["calibration"]["source"]
    assert "Traceback" not in result.stdout + result.stderr


def _kill_after(proc: subprocess.Popen[str], marker: str, timeout: float = 240) -> str:
    """Read the run's progress until `marker` appears, then SIGKILL its whole process group (worker too)."""
    seen = read_until(proc, marker, timeout)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return seen


@pytest.mark.slow  # a CLI run in a subprocess: tier 4
def test_killed_runs_resume_and_reuse_finished_stages_and_a_truncated_entry_is_recomputed(
    tmp_path: Path, tiny_keras: Path
) -> None:
    """Two runs killed at two points, then the run that resumes from what they finished; then (on the cache that
    run completed, one run less than a cache of its own) truncated .tflite entries are detected and rebuilt."""
    args = [*QUICK, *_model(tiny_keras), f"runtime.cache_dir={tmp_path / 'cache'}"]
    points = ["calibrate              done", "convert[fp32]          done"]
    for number, marker in enumerate(points):
        log = _kill_after(start_cli([*args, f"hydra.run.dir=killed{number}"], tmp_path), marker)
        assert marker in log, log[-2000:]
        assert not (tmp_path / f"killed{number}" / "report.json").exists()
    final = cli([*args, "hydra.run.dir=final"], tmp_path, timeout=300)
    output = final.stdout + final.stderr
    assert final.returncode == 0, output[-3000:]
    for stage in ("load", "split", "calibrate", "convert[fp32]"):
        line = next(line for line in output.splitlines() if f"] {stage} " in line)
        assert "cached" in line, line
    assert not list((tmp_path / "cache").glob("*/.tmp-*/result.json"))  # half-written entries never committed
    report = json.loads((tmp_path / "final" / "report.json").read_text())
    assert {v["status"] for v in report["variants"].values()} == {"passed"}

    # A damaged entry: every converted file cut short after its manifest was written.
    tflites = list((tmp_path / "cache" / "convert").glob("*/model.tflite"))
    assert len(tflites) == 2, tflites
    for tflite in tflites:
        tflite.write_bytes(tflite.read_bytes()[:1000])
    again = cli([*args, "hydra.run.dir=second"], tmp_path, timeout=300)
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-3000:]
    assert "is damaged" in output
    for variant in ("fp32", "int8"):
        line = next(line for line in output.splitlines() if f"] convert[{variant}]" in line)
        assert "done in" in line, line
    assert all(tflite.stat().st_size > 1000 for tflite in tflites)  # the entries were rebuilt in place
    assert "cached" in next(line for line in output.splitlines() if "] load " in line)


@pytest.mark.slow
def test_two_runs_at_once_on_one_cache_and_fresh_sqlite(tmp_path: Path, tiny_keras: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [
        *QUICK,
        *_model(tiny_keras),
        f"runtime.cache_dir={tmp_path / 'cache'}",
        "tracking.enabled=true",
        f"tracking.uri={uri}",
        "tracking.experiment=race",
    ]
    procs = [start_cli([*args, f"hydra.run.dir=run{i}"], tmp_path) for i in range(2)]
    outputs = [p.communicate(timeout=400)[0] for p in procs]
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output[-3000:]
    client = MlflowClient(tracking_uri=uri)
    [experiment] = [e for e in client.search_experiments() if e.name == "race"]
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 2 and {r.info.status for r in parents} == {"FINISHED"}
    assert len(children) == 4
    for parent in parents:
        mine = sorted(
            r.data.tags["variant"] for r in children if r.data.tags["mlflow.parentRunId"] == parent.info.run_id
        )
        assert mine == ["fp32", "int8"]
    reports = [json.loads((tmp_path / f"run{i}" / "report.json").read_text()) for i in range(2)]
    assert reports[0]["mlflow_run_id"] != reports[1]["mlflow_run_id"]
