"""`detect`'s settings read off a KerasHub `RetinaNetObjectDetector` saved as `.keras`, without KerasHub.

A `.keras` file is a zip whose `config.json` holds the detector's `get_config()` (keras-hub 0.32):
`config.bounding_box_format`, `config.backbone.config.image_shape` (and `min_level`/`max_level`),
`config.anchor_generator.config` (AnchorGenerator: `bounding_box_format`, `min_level`, `max_level`,
`num_scales`, `aspect_ratios`, `anchor_size`) and `config.prediction_decoder.config` (NonMaxSuppression:
`from_logits`, `iou_threshold`, `confidence_threshold`, `max_detections`). Reading the JSON keeps this free of
KerasHub (its classes are needed to load the model, not to read how it post-processes). The rest is fixed by
`RetinaNetObjectDetector.decode_predictions`: raw outputs `bbox_regression` / `cls_logits`, center_xywh deltas
with no variance, one class-agnostic NMS over each anchor's best score, empty slots dropped (`positive_only`),
outputs `boxes`, `confidence`, `labels`, `num_detections`.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

DETECTOR_CLASSES = ("RetinaNetObjectDetector",)
_ABSOLUTE = ("xyxy", "yxyx", "xywh", "center_xywh", "center_yxhw")


def read_config(path: str | Path) -> dict[str, Any]:
    """The saved model config: `config.json` inside a `.keras` zip, or a `config.json` file itself."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return dict(json.loads(archive.read("config.json")))
    return dict(json.loads(path.read_text()))


def _inner(entry: Any) -> dict[str, Any]:
    """A serialized object's own `config` (or {} when it was not serialized)."""
    return dict(entry.get("config") or {}) if isinstance(entry, dict) else {}


def detect_settings(saved: dict[str, Any], image_size: list[int] | None = None) -> dict[str, Any]:
    """`stages.postprocess.detector.detect` kwargs from a KerasHub detector's saved config. `image_size`
    ([height, width]) is used when the backbone was built for any size (`image_shape` [None, None, 3])."""
    if saved.get("class_name") not in DETECTOR_CLASSES:
        raise ValueError(
            f"the saved model is a {saved.get('class_name')!r}, not one of {list(DETECTOR_CLASSES)}, whose "
            "post-processing this reader knows"
        )
    config = dict(saved.get("config") or {})
    backbone = _inner(config.get("backbone"))
    box_format = str(config.get("bounding_box_format", "yxyx"))
    generator = _inner(config.get("anchor_generator")) or {
        "bounding_box_format": box_format,
        "min_level": backbone.get("min_level", 3),
        "max_level": backbone.get("max_level", 7),
        "num_scales": 3,
        "aspect_ratios": [0.5, 1.0, 2.0],
        "anchor_size": 4,
    }
    decoder = _inner(config.get("prediction_decoder"))
    shape = list(backbone.get("image_shape") or [None, None, 3])[:2]
    size = shape if all(shape) else list(image_size or [])
    if len(size) != 2 or not all(size):
        raise ValueError(
            "the backbone was built for any image size (image_shape [None, None, 3]) and the model's input "
            "shape gives none: set `anchors.image_size: [height, width]`, the size the model is exported for"
        )
    for fmt in (box_format, generator.get("bounding_box_format", box_format)):
        if fmt not in _ABSOLUTE:
            raise ValueError(f"bounding_box_format {fmt!r} is relative; the tail decodes pixel formats {_ABSOLUTE}")
    return {
        "boxes": "bbox_regression",
        "classification": "cls_logits",
        "encoding": "center_size",
        "center_format": "center_xywh",
        "variances": [1.0, 1.0, 1.0, 1.0],  # decode_predictions decodes without a variance
        "anchors": {
            "image_size": [int(s) for s in size],
            "min_level": int(generator["min_level"]),
            "max_level": int(generator["max_level"]),
            "num_scales": int(generator["num_scales"]),
            "aspect_ratios": [float(r) for r in generator["aspect_ratios"]],
            "anchor_size": float(generator["anchor_size"]),
            "box_format": str(generator.get("bounding_box_format", box_format)),
        },
        # NonMaxSuppression defaults: from_logits (set from the detector's activation), 0.5, 0.5, 100.
        "score_activation": "sigmoid" if decoder.get("from_logits", True) else "none",
        "class_specific": False,
        "score_threshold": float(decoder.get("confidence_threshold", 0.5)),
        "iou_threshold": float(decoder.get("iou_threshold", 0.5)),
        "max_detections": int(decoder.get("max_detections", 100)),
        "positive_only": True,
        "box_format": box_format,
        "outputs": {"boxes": "boxes", "scores": "confidence", "labels": "labels", "num_detections": "num_detections"},
    }
