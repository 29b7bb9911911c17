"""The bundled `detect` tail configured from a KerasHub `.keras` file's config (`from_keras`), end to
end on the tiny KerasHub-like detector (tests/helpers/keras_detector.py, SavedModel with its NMS in the serving
function). keras_hub is not installed, so the `.keras` file is a zip with a config.json written in keras-hub
0.32's structure (tests/helpers/keras_hub_files.py) for this detector's anchors and NMS. The
stand-in's NMS differs from KerasHub's in two places the user overrides: a 64-candidate pre-NMS top-k, and no
dropping of boxes lying at negative coordinates."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.slow
def test_detect_configured_from_the_keras_file(tmp_path: Path, run_cli: Cli) -> None:
    from tests.helpers.keras_detector import detector_dataset, save_detector
    from tests.helpers.keras_hub_files import keras_hub_config, write_keras

    model = save_detector(tmp_path / "sm")
    data = detector_dataset(tmp_path / "images.npz")
    nms = {"from_logits": True, "iou_threshold": 0.5, "confidence_threshold": 0.3, "max_detections": 10}
    keras_file = write_keras(tmp_path / "detector.keras", keras_hub_config([32, 32, 3], (2, 3), 1, 2.0, nms))
    tail = (
        f"+split.postprocess={{_target_: stages.postprocess.detector.detect, from_keras: '{keras_file}', "
        "pre_nms_top_k: 64, positive_only: false}"
    )
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
        tail,
    ]
    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    (cut,) = tmp_path.glob("outputs/cache/split/*/cut.json")  # the settings the tail ran with, as read
    config = json.loads(cut.read_text())["postprocess_config"]
    assert "from_keras" not in config and config["max_detections"] == 10 and config["pre_nms_top_k"] == 64
    assert config["anchors"]["anchor_size"] == 2.0 and config["score_threshold"] == 0.3
    assert [c.rsplit("/", 2)[-2] for c in report["split"]["cut_tensors"]] == ["bbox_regression_1", "cls_logits_1"]
    assert report["reference"]["metrics"]["tail_check"]["agreement"] >= 0.99
    detection = report["variants"]["fp32"]["metrics"]["detection"]
    assert detection["matched_fraction"] >= 0.99 and detection["reference_detections"] > 20
