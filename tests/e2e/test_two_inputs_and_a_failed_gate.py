"""Through the CLI: a two-input model on an .npz dataset, every output compared by name; and (in the same run) a
failed gate fails that variant only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers.two_inputs import save_two_input_model, two_input_data


@pytest.mark.slow  # a CLI run in a subprocess: tier 4
def test_cli_two_input_npz_by_name_and_a_failed_gate_fails_that_variant_only(tmp_path: Path, run_cli: Any) -> None:
    save_two_input_model(tmp_path / "two.keras")
    np.savez(tmp_path / "data.npz", **two_input_data(200))
    result = run_cli(
        "model=keras",
        f"model.path={tmp_path / 'two.keras'}",
        "dataset=npz",
        f"dataset.path={tmp_path / 'data.npz'}",
        "'variants=[fp32,int8,int8_io]'".strip("'"),
        "variants.int8_io.io_dtype=uint8",
        "variants.int8.gates.max_relative_rmse=1e-9",  # a gate int8 cannot pass: it fails that variant only
        "tracking.enabled=false",
        "benchmark.enabled=false",
        "split=none",
        "hydra.run.dir=run",
        f"runtime.cache_dir={tmp_path / 'cache'}",
    )
    assert result.returncode == 1, result.stderr[-2000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    fp32 = report["variants"]["fp32"]
    assert fp32["status"] == "passed", fp32
    int8 = report["variants"]["int8"]
    assert int8["status"] == "failed" and int8["gates"]["max_relative_rmse"]["passed"] is False
    assert set(fp32["metrics"]["rmse"]) == {"scores", "offset"}
    assert max(fp32["metrics"]["rmse"].values()) < 1e-4
    assert report["variants"]["int8_io"]["io"]["inputs"]["image"]["dtype"] == "uint8"
    assert report["variants"]["int8_io"]["status"] != "error", report["variants"]["int8_io"]["error"]
    calibration = report["calibration"]
    assert calibration["count"] == 100 and len(calibration["checksum"]) == 64 and "data.npz" in calibration["source"]
