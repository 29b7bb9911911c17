"""`detect`'s settings read from a KerasHub `RetinaNetObjectDetector` `.keras` file without KerasHub.

keras_hub is not installed here, so the `.keras` files are written by the test, with a config.json in the
structure keras-hub 0.32 saves (tests/helpers/keras_hub_files.py says which keys, read from the wheel's source)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stages.postprocess.keras_hub_config import detect_settings, read_config
from stages.result import InputError
from stages.split.postprocess_target import with_model_settings
from tests.helpers.keras_hub_files import keras_hub_config, write_keras

NMS = {"from_logits": True, "iou_threshold": 0.5, "confidence_threshold": 0.5, "max_detections": 100}


def test_issue_configuration_is_read_from_the_keras_file(tmp_path: Path) -> None:
    path = write_keras(tmp_path / "det.keras", keras_hub_config([128, 128, 3], (3, 5), 2, 4, NMS))
    settings = detect_settings(read_config(path))
    assert settings["anchors"] == {
        "image_size": [128, 128],
        "min_level": 3,
        "max_level": 5,
        "num_scales": 2,
        "aspect_ratios": [0.5, 1.0, 2.0],
        "anchor_size": 4.0,
        "box_format": "yxyx",
    }
    assert settings["score_activation"] == "sigmoid" and settings["class_specific"] is False
    assert (settings["score_threshold"], settings["iou_threshold"], settings["max_detections"]) == (0.5, 0.5, 100)
    assert settings["variances"] == [1.0, 1.0, 1.0, 1.0] and settings["center_format"] == "center_xywh"
    from stages.postprocess.anchors import pyramid_anchors

    # 16x16 + 8x8 + 4x4 cells, 2 scales x 3 ratios: the anchor count the model's bbox_regression has.
    assert len(pyramid_anchors(**settings["anchors"])) == (256 + 64 + 16) * 6


def test_any_size_backbone_takes_the_model_input_and_user_keys_win(tmp_path: Path) -> None:
    nms = {**NMS, "from_logits": False, "max_detections": 20}
    path = write_keras(tmp_path / "det.keras", keras_hub_config([None, None, 3], (3, 4), 1, 8, nms))
    cfg = {"_target_": "stages.postprocess.detector.detect", "from_keras": str(path), "iou_threshold": 0.6}
    expanded = with_model_settings(cfg, [1, 64, 96, 3])
    assert expanded is not None
    assert expanded["anchors"]["image_size"] == [64, 96] and expanded["score_activation"] == "none"
    assert expanded["iou_threshold"] == 0.6 and expanded["max_detections"] == 20
    assert "from_keras" not in expanded and expanded["_target_"].endswith("detect")
    with pytest.raises(InputError, match=r"image_size"):
        with_model_settings(cfg, [None, None, None, 3])


def test_not_a_keras_hub_detector_is_an_input_error(tmp_path: Path) -> None:
    path = write_keras(tmp_path / "clf.keras", {"class_name": "Functional", "config": {}})
    with pytest.raises(InputError, match=r"RetinaNetObjectDetector"):
        with_model_settings({"_target_": "x.y", "from_keras": str(path)}, None)
