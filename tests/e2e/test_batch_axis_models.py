"""Batch on another axis through the CLI: a time-major output `[T, B, C]` and a `[2, B, H]` state
input pass fp32 with a matching error, with random data and with an .npz (the state in the model's layout),
and report.json says which axis held the batch."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers.batch_axis_models import FEATURES, HIDDEN, TIME, state_input, time_major

pytestmark = pytest.mark.slow


def _run(run_cli: Callable[..., Any], tmp_path: Path, cache: str, model: Path, name: str, *extra: str) -> dict:
    done = run_cli(
        "model=saved_model",
        f"model.path={model}",
        "variants=[fp32,fp16]",
        "tracking.enabled=false",
        "benchmark.enabled=false",
        f"runtime.cache_dir={cache}",
        f"hydra.run.dir={tmp_path / name}",
        *extra,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / name / "report.json").read_text())
    for variant in ("fp32", "fp16"):
        assert report["variants"][variant]["status"] == "passed", report["variants"][variant]
    return report


def test_time_major_output(run_cli: Callable[..., Any], tmp_path: Path, shared_cache: str) -> None:
    model = time_major(tmp_path / "time_major")
    report = _run(run_cli, tmp_path, shared_cache, model, "random", "dataset=random")
    assert report["model"]["outputs"] == [
        {"name": "logits", "shape": [TIME, None, 5], "dtype": "float32", "batch_axis": 1}
    ]
    assert report["variants"]["fp32"]["metrics"]["rmse"]["logits"] < 1e-5
    np.savez(tmp_path / "data.npz", x=np.random.default_rng(0).random((40, TIME, FEATURES), dtype=np.float32))
    report = _run(run_cli, tmp_path, shared_cache, model, "npz", "dataset=npz", f"dataset.path={tmp_path / 'data.npz'}")
    assert report["variants"]["fp32"]["metrics"]["rmse"]["logits"] < 1e-5


def test_state_input(run_cli: Callable[..., Any], tmp_path: Path, shared_cache: str) -> None:
    model = state_input(tmp_path / "state")
    report = _run(run_cli, tmp_path, shared_cache, model, "random", "dataset=random")
    axes = {t["name"]: t["batch_axis"] for t in [*report["model"]["inputs"], *report["model"]["outputs"]]}
    assert axes == {"audio": 0, "state": 1, "prob": 0, "state_out": 1}
    assert max(report["variants"]["fp32"]["metrics"]["rmse"].values()) < 1e-5
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "data.npz",
        audio=rng.random((40, TIME, FEATURES), dtype=np.float32),
        state=rng.normal(size=(2, 40, HIDDEN)).astype(np.float32),  # the model's layout: samples on axis 1
    )
    report = _run(run_cli, tmp_path, shared_cache, model, "npz", "dataset=npz", f"dataset.path={tmp_path / 'data.npz'}")
    assert report["calibration"]["input_layout"] == {"state": {"batch_axis": 1, "data_axis": 1}}
    assert max(report["variants"]["fp32"]["metrics"]["rmse"].values()) < 1e-5
