"""What MLflow's UI is given for a run, built from the report: descriptions, summary metrics, the table, links.

Fast: plain functions on report dicts. The end-to-end checks (a real server, a real browser) are in
tests/e2e/test_dashboard_in_mlflow.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipelines.output.table import header, table_rows
from pipelines.tracking.dashboard import (
    NOTE_LIMIT,
    comparison_table,
    fit_note,
    parent_note,
    run_page,
    summary_metrics,
    sweep_metrics,
    variant_note,
)


def _variant(status: str, size: int, accuracy: float | None, p50: float | None, **gates: bool) -> dict[str, Any]:
    metrics: dict[str, Any] = {"rmse": {"probs": 1e-3, "logits": 4e-3}, "convert_s": 1.5}
    if accuracy is not None:
        metrics |= {"accuracy": accuracy, "accuracy_delta": round(accuracy - 0.98, 4)}
    if p50 is not None:
        metrics["latency_ms"] = {"p50": p50, "p90": p50 * 1.5, "count": 50}
    return {
        "status": status,
        "size_bytes": size,
        "size_ratio": round(size / 4000, 4),
        "tflite_path": "variants/x/model.tflite",
        "metrics": metrics,
        "gates": {name: {"limit": 0.01, "value": 0.02, "passed": ok} for name, ok in gates.items()},
        "error": None,
    }


@pytest.fixture
def report() -> dict[str, Any]:
    return {
        "model": {"name": "digits_cnn", "size_bytes": 8000},
        "status": "failed",
        "size_baseline": "fp32 variant",
        "reference": {"metrics": {"accuracy": 0.98, "latency_ms": {"p50": 1.0}}},
        "variants": {
            "fp16": _variant("passed", 2000, 0.98, 0.4, max_accuracy_drop=True),
            "fp32": _variant("passed", 4000, 0.98, 0.3, max_accuracy_drop=True),
            "int8": _variant("failed", 1000, 0.90, 0.9, max_accuracy_drop=False),
        },
        "warnings": ["int8 is slower than fp32 on this host: p50 0.900 ms vs 0.300 ms"],
    }


def test_summary_metrics_name_every_figure_by_variant_and_leave_out_what_was_not_measured(report: dict) -> None:
    report["variants"]["fp32"]["metrics"].pop("accuracy")  # no labels: no accuracy, not a zero
    metrics = summary_metrics(report)
    assert metrics["int8/size_ratio"] == 0.25 and metrics["fp16/size_bytes"] == 2000
    assert metrics["int8/latency_ms_p50"] == 0.9 and metrics["int8/latency_ms_p90"] == pytest.approx(1.35)
    assert metrics["int8/max_rmse"] == 4e-3  # the worst output
    assert (metrics["fp16/passed"], metrics["int8/passed"]) == (1.0, 0.0)
    assert "fp32/accuracy" not in metrics and "fp32/accuracy_delta" in metrics
    assert {key.split("/")[0] for key in metrics} == {"fp16", "fp32", "int8"}
    assert all(isinstance(v, float) for v in metrics.values())


def test_sweep_metrics_prefix_each_job_and_skip_jobs_without_a_report(report: dict) -> None:
    jobs = [{"num": 0, "report": report}, {"num": 1, "report": None}, {"num": 2, "report": report}]
    metrics = sweep_metrics(jobs)
    assert metrics["job0/int8/size_ratio"] == metrics["job2/int8/size_ratio"] == 0.25
    assert not any(key.startswith("job1/") for key in metrics)
    assert len(metrics) == 2 * len(summary_metrics(report))


def test_the_parent_description_is_the_report_table_with_failed_gates_and_warnings(report: dict) -> None:
    note = parent_note(report)
    lines = note.splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == "| " + " | ".join(header(report)) + " |"
    assert table[2:] == ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    assert "Smallest passing variant: **fp16**" in lines[0]  # int8 is smaller but failed
    assert "fastest: **fp32**" in lines[0]
    assert "**Failed gates**" in lines and "- int8: gate max_accuracy_drop = 0.02 (limit 0.01)" in lines
    assert f"- {report['warnings'][0]}" in lines


def test_the_parent_description_says_when_nothing_passed(report: dict) -> None:
    for entry in report["variants"].values():
        entry["status"] = "failed"
    assert "No variant passed its gates." in parent_note(report).splitlines()[0]


def test_a_child_description_is_one_paragraph_naming_its_failed_gates(report: dict) -> None:
    note = variant_note("int8", report["variants"]["int8"])
    assert "\n" not in note
    assert note.startswith("**int8**: **failed**.")
    assert "Failed gates: max_accuracy_drop = 0.02 (limit 0.01)." in note
    assert "Accuracy 0.9000 (Δ -0.0800)" in note and "1.0 KiB (0.250 of the baseline)" in note
    assert "Gates held: max_accuracy_drop." in variant_note("fp16", report["variants"]["fp16"])


def test_the_comparison_table_has_one_row_per_variant_in_numbers(report: dict) -> None:
    table = comparison_table(report)
    assert table["variant"] == ["fp16", "fp32", "int8"]
    assert table["size_ratio"] == [0.5, 1.0, 0.25]
    assert table["status"] == ["passed", "passed", "failed"]
    assert len({len(column) for column in table.values()}) == 1


def test_long_descriptions_are_cut_within_mlflows_limit_and_say_where_the_rest_is() -> None:
    note = fit_note("x" * (NOTE_LIMIT + 10), "report.md")
    assert len(note) <= NOTE_LIMIT and note.endswith("the whole text is in `report.md`.")
    assert fit_note("short", "report.md") == "short"


def test_the_run_page_link_opens_the_model_training_view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_page("http://host:5000/", "3", "abc") == (
        "MLflow run: http://host:5000/#/experiments/3/runs/abc?workflowType=machine_learning"
    )
    monkeypatch.chdir(tmp_path)
    local = run_page("sqlite:///mlflow.db", "1", "abc")
    assert local is not None
    assert f"`mlflow ui --backend-store-uri sqlite:///{tmp_path / 'mlflow.db'}`" in local  # absolute path
    assert local.endswith("http://127.0.0.1:5000/#/experiments/1/runs/abc?workflowType=machine_learning")
    assert run_page("file:///tmp/mlruns", "1", "abc") is None
