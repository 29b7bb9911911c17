"""End to end on a quantization-sensitive model: full int8 fails its accuracy gate, int8_mixed finds what to keep
in float and passes; a too-small budget fails with the best trial and advice; the default example needs no float.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.helpers.cli import cli

# One xdist worker runs this module: its session/module fixtures are built once, not once per worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("quantization_e2e")]


@pytest.fixture(scope="session")
def outlier_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/outlier_cnn: one first-conv channel scaled up 1000x, the next conv's weights scaled back."""
    from examples.outlier_cnn import build

    path = tmp_path_factory.mktemp("models") / "outlier_cnn.keras"
    build(str(path), epochs=15)
    return path


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("quantization")  # one stage cache for all runs here


def _report(cwd: Path) -> dict:
    return json.loads(sorted(cwd.glob("outputs/runs/*/*/report.json"))[-1].read_text())


def test_int8_fails_and_int8_mixed_passes_with_the_convolutions_around_the_outlier_in_float(
    outlier_model: Path, workdir: Path
) -> None:
    out = cli(
        [
            "model=keras",
            f"model.path={outlier_model}",
            "variants=[fp32,int8,int8_mixed]",
            "benchmark.min_runs=5",
            "variants.int8_mixed.search.backends=[converter]",  # denylisting alone; AEQ moves: test below
        ],
        workdir,
    )
    report = _report(workdir)
    variants = report["variants"]
    assert variants["int8"]["status"] == "failed", out.stdout
    assert not variants["int8"]["gates"]["max_accuracy_drop"]["passed"]
    mixed = variants["int8_mixed"]
    assert mixed["status"] == "passed", out.stdout + out.stderr
    assert abs(mixed["metrics"]["accuracy_delta"]) <= 0.01
    assert mixed["size_ratio"] <= 0.7
    quantization = mixed["quantization"]
    assert any("conv1" in op for op in quantization["float_ops"]), quantization["float_ops"]
    assert quantization["trials"][0]["float_ops"] == [] and not quantization["trials"][0]["passed"]
    assert quantization["trials"][quantization["chosen_trial"]]["passed"]
    assert quantization["search"]["samples"]["count"] > 0
    # Every integer variant carries the per-layer table, as JSON rows and as a CSV next to the model.
    layers = variants["int8"]["quantization"]["layers"]
    assert {"name", "op", "rmse", "scale", "rmse_over_scale", "range_min", "range_max"} <= set(layers[0])
    conv1 = next(r for r in layers if "conv1" in r["name"])
    assert conv1["range_max"] == max(r["range_max"] for r in layers)  # the outlier's range gives it away
    with open(workdir / Path(sorted(workdir.glob("outputs/runs/*/*"))[-1]) / "variants/int8/layers.csv") as fh:
        assert len(list(csv.DictReader(fh))) == len(layers)
    assert "int8_mixed: passed its search" in out.stdout
    # MLflow: the trials table and the layers CSV are artifacts of the variant's child run.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    artifacts = [a.path for a in client.list_artifacts(mixed["mlflow_run_id"], "quantization")]
    assert {"quantization/trials.json", "quantization/layers.csv", "quantization/worst_layers.png"} <= set(artifacts)


def test_a_budget_too_small_fails_with_the_best_trial_and_advice(outlier_model: Path, workdir: Path) -> None:
    out = cli(
        [
            "model=keras",
            f"model.path={outlier_model}",
            "variants=[int8_mixed]",
            "variants.int8_mixed.search.max_trials=1",
            "calibrate.stability=true",
            "benchmark.enabled=false",
            "tracking.enabled=false",
        ],
        workdir,
    )
    assert out.returncode == 1
    mixed = _report(workdir)["variants"]["int8_mixed"]
    assert mixed["status"] == "failed"
    assert not mixed["gates"]["mixed_search_within_budget"]["passed"]
    assert "search.max_trials" in mixed["quantization"]["advice"] and "int16x8" in mixed["quantization"]["advice"]
    assert "did not pass" in out.stdout
    stability = mixed["quantization"]["stability"]
    assert stability["subsets"] == [100, 100] and "accuracy" in stability["spread"]


def test_the_default_example_keeps_nothing_in_float(workdir: Path, shared_cache: str) -> None:
    args = ["variants=[int8_mixed]", "benchmark.enabled=false", "tracking.enabled=false"]
    out = cli([*args, f"runtime.cache_dir={shared_cache}"], workdir)
    mixed = _report(workdir)["variants"]["int8_mixed"]
    assert mixed["status"] == "passed", out.stdout + out.stderr
    assert mixed["quantization"]["float_ops"] == [] and len(mixed["quantization"]["trials"]) == 1


def test_aeq_moves_reach_the_gate_at_a_smaller_size_than_keeping_ops_in_float(
    outlier_model: Path, workdir: Path
) -> None:
    pytest.importorskip("stages.convert.quantization.aeq")  # the AI Edge Quantizer backend
    out = cli(
        [
            "model=keras",
            f"model.path={outlier_model}",
            "variants=[fp32,int8_mixed]",
            "variants.int8_mixed.search.backends=[converter,aeq]",
            "benchmark.enabled=false",
            "tracking.enabled=false",
        ],
        workdir,
    )
    mixed = _report(workdir)["variants"]["int8_mixed"]
    assert mixed["status"] == "passed", out.stdout + out.stderr
    quantization = mixed["quantization"]
    assert quantization["backend"] == "aeq" and any(m.endswith("-> int16") for m in quantization["moves"])
    converter = [t for t in quantization["trials"] if t["backend"] == "converter" and t["passed"]]
    assert converter and mixed["size_bytes"] < min(t["size_bytes"] for t in converter)
    assert "winner from aeq" in out.stdout
