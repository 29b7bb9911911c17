"""What a `detect` tail needs that the model does not store, said all at once before the tail runs.

A SavedModel keeps no anchor generator and no NMS settings: a user who gives only `boxes` and `classification`
used to learn of one missing setting per run (the decoder's "needs anchors", exit 1). The head's shapes and the
original's detections tell part of the story (anchors per image, classes, the input size, the padded detection
count, the lowest score kept), and the anchor count narrows the pyramid to a few level ranges and anchors per
cell. `missing_settings` turns that into one message listing every setting still to give (exit 2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

# Pyramid level ranges tried (strides 2 to 128) and the most anchors per cell a detector uses (scales x ratios).
_LEVEL_RANGES = tuple((low, high) for low in range(1, 8) for high in range(low, 8))
_MAX_PER_CELL = 12
_NMS_SETTINGS = (
    ("box_format", "the outputs' box format"),
    ("score_activation", "sigmoid for logits"),
    ("class_specific", "false for one class-agnostic NMS"),
    ("positive_only", "true for KerasHub"),
)


def pyramids_for(anchors: int, image_size: tuple[int, int]) -> list[str]:
    """Level ranges whose cells divide `anchors` evenly, as 'levels 3-5, 6 anchors per cell' phrases."""
    height, width = image_size
    fits = []
    for low, high in _LEVEL_RANGES:
        cells = sum(math.ceil(height / 2**lv) * math.ceil(width / 2**lv) for lv in range(low, high + 1))
        per_cell = anchors // cells
        if anchors % cells == 0 and per_cell <= _MAX_PER_CELL:
            fits.append(f"levels {low}-{high} with {per_cell} anchors per cell (num_scales x len(aspect_ratios))")
    return fits


def _image_size(feeds: Mapping[str, np.ndarray]) -> tuple[int, int] | None:
    """(height, width) of the first image-like input [B, H, W, C] or [B, C, H, W]."""
    for value in feeds.values():
        shape = np.shape(value)
        if len(shape) == 4:
            return (int(shape[2]), int(shape[3])) if shape[1] in (1, 3, 4) and shape[3] > 4 else (shape[1], shape[2])
    return None


def missing_settings(
    target: str,
    kwargs: Mapping[str, Any],
    tensors: Mapping[str, np.ndarray],
    feeds: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
    names: Mapping[str, str],
) -> str | None:
    """None when the tail has what it needs to run; else one paragraph naming every setting still to give."""
    encoding = kwargs.get("encoding", "center_size")
    if not target.endswith("detector.detect") or encoding == "none":
        return None
    if kwargs.get("anchors") or kwargs.get("retinanet_anchors"):
        return None
    boxes = np.asarray(tensors.get(str(kwargs.get("boxes")), np.zeros((0, 0, 4))))
    classes = np.asarray(tensors.get(str(kwargs.get("classification")), np.zeros((0, 0, 0))))
    count, size = int(boxes.shape[1]) if boxes.ndim == 3 else 0, _image_size(feeds)
    scores = np.asarray(reference[names["scores"]]) if "scores" in names else np.zeros(0)
    kept = scores[scores > 0]
    facts = [f"{count} anchors per image", f"{classes.shape[-1] if classes.ndim == 3 else '?'} score columns"]
    if size:
        facts.append(f"a {size[0]}x{size[1]} input")
    if "boxes" in names:
        facts.append(f"{np.shape(reference[names['boxes']])[1]} detection slots per image (max_detections)")
    if kept.size:
        facts.append(f"kept scores from {float(kept.min()):.4f} (score_threshold is at most that)")
    fits = pyramids_for(count, size) if size and count else []
    pyramid = (
        f" A pyramid of that size fits {'; or '.join(fits)}." if fits else " No usual pyramid fits that anchor count."
    )
    return (
        f"The numpy tail {target} decodes `{encoding}` box offsets from anchors, and none are set: a SavedModel "
        f"stores neither its anchor generator nor its NMS settings. From the model: {', '.join(facts)}.{pyramid} "
        "Give them all in `split.postprocess` (or the model config's `postprocess`), from the detector's own "
        "code: `anchors: {image_size, min_level, max_level, num_scales, aspect_ratios, anchor_size, box_format}` "
        f"(a keras-retinanet pyramid: `retinanet_anchors`), `center_format` and `variances` for `{encoding}`, "
        f"{', '.join(f'`{name}` ({hint})' for name, hint in _NMS_SETTINGS)}, `iou_threshold`, `score_threshold` and "
        "`max_detections`. With a KerasHub detector's `.keras` file, `from_keras: path/detector.keras` reads all "
        "of them (docs/split.md, From a SavedModel alone). The tail check then names any setting still off."
    )
