"""`detect`'s settings read from a KerasHub `RetinaNetObjectDetector` `.keras` file without KerasHub (issue 25).

keras_hub is not installed here, so the `.keras` files are written by the test: a zip holding a `config.json`
in the structure keras-hub 0.32 saves (`RetinaNetObjectDetector.get_config()`: `backbone` (RetinaNetBackbone,
`image_shape`, `min_level`, `max_level`), `anchor_generator` (AnchorGenerator's init arguments),
`prediction_decoder` (NonMaxSuppression.get_config), `bounding_box_format`, `num_classes`), each nested object
serialized as Keras 3 does (`module`, `class_name`, `config`, `registered_name`). Read from the keras-hub 0.32
wheel's source (`pip download keras-hub==0.32.0 --no-deps`)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from stages.postprocess.keras_hub_config import detect_settings, read_config
from stages.result import InputError
from stages.split.postprocess_target import with_model_settings


def keras_hub_config(
    image_shape: list[Any], levels: tuple[int, int], scales: int, anchor_size: float, nms: dict[str, Any]
) -> dict[str, Any]:
    """A RetinaNetObjectDetector's saved config, keras-hub 0.32 layout."""
    return {
        "module": "keras_hub.src.models.retinanet.retinanet_object_detector",
        "class_name": "RetinaNetObjectDetector",
        "config": {
            "backbone": {
                "module": "keras_hub.src.models.retinanet.retinanet_backbone",
                "class_name": "RetinaNetBackbone",
                "config": {
                    "name": "retina_net_backbone",
                    "trainable": True,
                    "image_encoder": {"class_name": "ResNetBackbone", "config": {"image_shape": image_shape}},
                    "min_level": levels[0],
                    "max_level": levels[1],
                    "use_p5": False,
                    "use_fpn_batch_norm": False,
                    "image_shape": image_shape,
                },
                "registered_name": "keras_hub>RetinaNetBackbone",
            },
            "preprocessor": None,
            "name": "retina_net_object_detector",
            "num_classes": 5,
            "use_prediction_head_norm": False,
            "pre_logits_num_conv_layers": 4,
            "bounding_box_format": "yxyx",
            "anchor_generator": {
                "module": "keras_hub.src.layers.modeling.anchor_generator",
                "class_name": "AnchorGenerator",
                "config": {
                    "name": "anchor_generator",
                    "trainable": True,
                    "dtype": "float32",
                    "bounding_box_format": "yxyx",
                    "min_level": levels[0],
                    "max_level": levels[1],
                    "num_scales": scales,
                    "aspect_ratios": [0.5, 1.0, 2.0],
                    "anchor_size": anchor_size,
                },
                "registered_name": "keras_hub>AnchorGenerator",
            },
            "label_encoder": {"class_name": "RetinaNetLabelEncoder", "config": {"box_variance": [1.0, 1.0, 1.0, 1.0]}},
            "prediction_decoder": {
                "module": "keras_hub.src.layers.modeling.non_max_supression",
                "class_name": "NonMaxSuppression",
                "config": {"name": "non_max_suppression", "trainable": True, "bounding_box_format": "yxyx", **nms},
                "registered_name": "keras_hub>NonMaxSuppression",
            },
        },
        "registered_name": "keras_hub>RetinaNetObjectDetector",
    }


def write_keras(path: Path, config: dict[str, Any]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.0"}))
    return path


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
