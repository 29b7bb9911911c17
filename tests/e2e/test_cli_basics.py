"""The command line as a user runs it, in a subprocess: the default example end to end then cached, bad
overrides and missing models exit 2 without a traceback, --help and --cfg are instant."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest


def _report(cwd: Path) -> dict:
    reports = sorted(cwd.glob("outputs/runs/*/*/report.json"))
    return json.loads(reports[-1].read_text())


@pytest.mark.slow
def test_default_example_end_to_end_then_cached(run_cli, tmp_path: Path, shared_cache: str) -> None:
    # The session's stage cache: the digits CNN is trained once for every test of the default example.
    # The README's command as it runs there: stages side by side on every core (`runtime.workers=null`).
    args = ["benchmark.min_seconds=0.05", "benchmark.min_runs=20", f"runtime.cache_dir={shared_cache}"]
    first = run_cli(*args, "runtime.workers=null")
    assert first.returncode == 0, first.stdout + first.stderr
    report = _report(tmp_path)
    assert set(report["variants"]) == {"fp32", "fp16", "dynamic", "int8", "int8_io", "int16x8"}
    assert {v["status"] for v in report["variants"].values()} == {"passed"}
    assert report["reference"]["metrics"]["accuracy"] > 0.9
    run_dir = next(tmp_path.glob("outputs/runs/*/*"))
    for entry in report["variants"].values():
        assert (run_dir / entry["tflite_path"]).is_file()
        assert entry["metrics"]["latency_ms"]["p50"] > 0
        assert set(entry["metrics"]["rmse"]) == {"probs"}
    assert (run_dir / "report.md").read_text().count("| ") >= 7
    assert "fp32" in first.stdout and "Δ accuracy" in first.stdout

    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        runs = db.execute("select run_uuid, status from runs").fetchall()
        nested = db.execute("select count(*) from tags where key='mlflow.parentRunId'").fetchone()[0]
    assert len(runs) == 7 and nested == 6
    assert {status for _, status in runs} == {"FINISHED"}

    second = run_cli(*args)
    assert second.returncode == 0
    output = second.stdout + second.stderr
    assert output.count(" cached") == 22, output
    assert "done in" not in output


@pytest.mark.slow  # a CLI run in a subprocess: the fast tier is tests/unit/
def test_bad_override_exits_2_without_a_traceback(run_cli, tmp_path: Path) -> None:
    result = run_cli("variants=[fp8]")
    assert result.returncode == 2
    assert "fp8" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow  # a CLI run in a subprocess: the fast tier is tests/unit/
def test_missing_model_exits_2_and_leaves_no_run_directory(run_cli, tmp_path: Path) -> None:
    result = run_cli("model=keras", "model.path=nope.keras", "tracking.enabled=false")
    assert result.returncode == 2
    assert "nope.keras" in result.stderr and "does not exist" in result.stderr
    assert not list(tmp_path.glob("outputs/runs/*/*"))


@pytest.mark.slow  # a CLI run in a subprocess: the fast tier is tests/unit/
def test_help_and_cfg_are_instant_and_succeed(run_cli) -> None:
    result = run_cli("--cfg", "job")
    assert result.returncode == 0
    assert "variants:" in result.stdout and "int8_io:" in result.stdout
