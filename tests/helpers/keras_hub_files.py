"""`.keras` files in the structure keras-hub 0.32 saves a `RetinaNetObjectDetector` (keras_hub is not installed
here): a zip holding `config.json` = `RetinaNetObjectDetector.get_config()` (`backbone` (RetinaNetBackbone:
`image_shape`, `min_level`, `max_level`), `anchor_generator` (AnchorGenerator's init arguments),
`prediction_decoder` (NonMaxSuppression.get_config), `bounding_box_format`, `num_classes`), each nested object
serialized as Keras 3 does (`module`, `class_name`, `config`, `registered_name`). Read from the keras-hub 0.32
wheel's source (`pip download keras-hub==0.32.0 --no-deps`)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any


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
