"""End to end: the tiny KerasHub-like detector (tests/helpers/keras_detector.py) with the bundled numpy tail.
One wrong setting (KerasHub's variances are 1, the tail says 0.1/0.2) stops the run at the reference stage,
before any variant is judged, exit 2 naming `variances`; the right settings proceed and record the check."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _run(run_cli: Cli, tmp_path: Path, tail: dict[str, object]) -> tuple[subprocess.CompletedProcess[str], Path]:
    from tests.helpers.keras_detector import detector_dataset, hydra_value, save_detector

    model = tmp_path.parent / "sm"
    data = tmp_path.parent / "images.npz"
    if not model.exists():
        save_detector(model)
        detector_dataset(data)
    args = [
        "model=saved_model",
        f"model.path={model}",
        "dataset=npz",
        f"dataset.path={data}",
        "variants=[fp32]",
        "benchmark.min_runs=5",
        "benchmark.min_seconds=0",
        "tracking.enabled=false",
        f"hydra.run.dir={tmp_path / 'run'}",
        f"+split.postprocess={hydra_value(tail)}",
    ]
    tmp_path.mkdir(exist_ok=True)
    done = run_cli(*args, cwd=tmp_path)
    return done, tmp_path / "run" / "report.json"


@pytest.mark.slow
def test_wrong_tail_setting_stops_before_any_variant(tmp_path: Path, run_cli: Cli) -> None:
    from tests.helpers.keras_detector import DETECTOR_TAIL

    done, _ = _run(run_cli, tmp_path / "wrong", {**DETECTOR_TAIL, "variances": [0.1, 0.1, 0.2, 0.2]})
    assert done.returncode == 2, done.stderr[-2000:]
    text = done.stdout + done.stderr
    assert "original model's own head outputs" in text
    assert "`variances: [1.0, 1.0, 1.0, 1.0]`" in text
    assert "Traceback" not in text

    done, report_file = _run(run_cli, tmp_path / "right", DETECTOR_TAIL)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(report_file.read_text())
    assert report["reference"]["metrics"]["tail_check"]["agreement"] >= 0.99
    assert report["variants"]["fp32"]["status"] == "passed"
