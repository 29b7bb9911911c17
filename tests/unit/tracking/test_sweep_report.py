"""A sweep's report: a row per job and variant, dead jobs counted, and tracking URIs every job can reach."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.tracking.sweep import absolute_uri, collect_jobs, format_sweep_markdown, sweep_rows


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
