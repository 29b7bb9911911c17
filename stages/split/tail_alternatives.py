"""Single-setting changes of a bundled numpy tail, tried when the tail does not reproduce the original model's
detections (`stages.split.tail_check`): the change that alone restores the match names the setting that is wrong.

Each alternative is (label, kwargs): the label is the setting as a user writes it (`score_activation: softmax`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

_THRESHOLDS = (0.05, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7)
_IOUS = (0.3, 0.4, 0.45, 0.5, 0.6, 0.7)
_VARIANCES = ([1.0, 1.0, 1.0, 1.0], [0.1, 0.1, 0.2, 0.2])


def alternatives(target: str, kwargs: dict[str, Any], padded: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every single-setting change worth trying for `target` (`padded`: the original's detections per image)."""
    if target.endswith("detector.detect"):
        yield from _detect(kwargs, padded)
    elif target.endswith("nms.filter_detections"):
        yield from _filter_detections(kwargs, padded)
    else:  # a user's function: flip its boolean settings
        for key, value in kwargs.items():
            if isinstance(value, bool):
                yield f"{key}: {str(not value).lower()}", {**kwargs, key: not value}


def _other(kwargs: dict[str, Any], key: str, current: Any, options: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    for option in options:
        if option != current:
            text = str(option).lower() if isinstance(option, bool) else option
            yield f"{key}: {'null' if option is None else text}", {**kwargs, key: option}


def _detect(kwargs: dict[str, Any], padded: int) -> Iterator[tuple[str, dict[str, Any]]]:
    get = kwargs.get
    yield from _other(kwargs, "score_activation", get("score_activation", "sigmoid"), ("sigmoid", "softmax", "none"))
    yield from _other(kwargs, "class_specific", bool(get("class_specific", True)), (True, False))
    yield from _other(kwargs, "encoding", get("encoding", "center_size"), ("center_size", "deltas", "none"))
    if get("encoding", "center_size") == "center_size":
        fmt = get("center_format", "center_xywh")
        yield from _other(kwargs, "center_format", fmt, ("center_xywh", "center_yxhw"))
        yield from _other(kwargs, "variances", list(get("variances", _VARIANCES[0])), _VARIANCES)
    yield from _other(kwargs, "box_format", get("box_format", "xyxy"), ("xyxy", "yxyx"))
    yield from _other(kwargs, "positive_only", bool(get("positive_only", False)), (True, False))
    yield from _other(kwargs, "score_threshold", get("score_threshold", 0.05), _THRESHOLDS)
    yield from _other(kwargs, "iou_threshold", get("iou_threshold", 0.5), _IOUS)
    yield from _other(kwargs, "max_detections", get("max_detections", 100), (padded,))
    if get("pre_nms_top_k"):
        yield from _other(kwargs, "pre_nms_top_k", get("pre_nms_top_k"), (None,))
    anchors = dict(get("anchors") or {})
    if anchors:
        for key, options in (
            ("box_format", ("yxyx", "xyxy")),
            ("anchor_size", (1, 2, 3, 4, 5, 6, 8)),
            ("num_scales", (1, 2, 3)),
            ("aspect_ratios", ([0.5, 1.0, 2.0], [1.0, 2.0, 0.5], [2.0, 1.0, 0.5], [1.0])),
        ):
            current = list(anchors[key]) if key == "aspect_ratios" and key in anchors else anchors.get(key)
            for label, changed in _other(anchors, key, current, options):
                yield f"anchors.{label}", {**kwargs, "anchors": changed}


def _filter_detections(kwargs: dict[str, Any], padded: int) -> Iterator[tuple[str, dict[str, Any]]]:
    get = kwargs.get
    yield from _other(kwargs, "class_specific_filter", bool(get("class_specific_filter", True)), (True, False))
    yield from _other(kwargs, "score_threshold", get("score_threshold", 0.05), _THRESHOLDS)
    yield from _other(kwargs, "nms_threshold", get("nms_threshold", 0.5), _IOUS)
    yield from _other(kwargs, "max_detections", get("max_detections", 300), (padded,))
