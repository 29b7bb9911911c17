"""The numpy tail of an anchor-based detector: decode raw box predictions, score, NMS, pad.

A detector cut before its post-processing hands the host its raw predictions: box offsets per anchor
[B, N, 4] and class logits (or probabilities) [B, N, C]. `detect` turns them into the padded detections the
original model returns, for the encodings users export today:
- `encoding: deltas`: keras-retinanet's corner deltas (`stages.postprocess.boxes.decode_boxes`, mean/std);
- `encoding: center_size`: center-size offsets scaled by `variances`, as KerasHub (`center_xywh`, variances
  1) and the TF Object Detection API (`center_yxhw`, variances 0.1/0.2 as scale factors 10, 5) use;
- `encoding: none`: the boxes are already decoded.
Anchors come from `anchors:` (a KerasHub-style pyramid: `stages.postprocess.anchors.pyramid_anchors`) or a
keras-retinanet pyramid (`retinanet_anchors:`, `stages.postprocess.boxes.anchors_for_shape`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from stages.postprocess.anchors import convert_boxes, pyramid_anchors
from stages.postprocess.boxes import anchors_for_shape, decode_boxes
from stages.postprocess.nms import nms, top_padded

# The kwargs that name head tensors: `split=auto` cuts the graph exactly there (see stages.split.stage).
TENSOR_ARGS = ("boxes", "classification")


def anchors_from_config(anchors: Mapping[str, Any] | None, retinanet_anchors: Mapping[str, Any] | None) -> np.ndarray:
    """[N, 4] anchors in `anchors.box_format` (default yxyx) or, for keras-retinanet, xyxy."""
    if anchors:
        return pyramid_anchors(**dict(anchors))
    if retinanet_anchors:
        cfg = dict(retinanet_anchors)
        return anchors_for_shape(cfg.pop("image_shape"), **cfg)
    raise ValueError("the box encoding needs anchors: set `anchors:` (KerasHub pyramid) or `retinanet_anchors:`")


def decode_center_size(
    anchors: np.ndarray, offsets: np.ndarray, variances: Sequence[float], encoded: str, anchor_format: str
) -> np.ndarray:
    """Center-size offsets [..., N, 4] in `encoded` order (center_xywh or center_yxhw) -> xyxy boxes."""
    a = convert_boxes(anchors, anchor_format, encoded)
    d = np.asarray(offsets, np.float32) * np.asarray(variances, np.float32)
    centre = d[..., :2] * a[..., 2:] + a[..., :2]
    size = np.exp(d[..., 2:]) * a[..., 2:]
    return convert_boxes(np.concatenate([centre, size], axis=-1), encoded, "xyxy")


def _scores(raw: np.ndarray, activation: str) -> np.ndarray:
    raw = np.asarray(raw, np.float32)
    if activation == "sigmoid":
        return (1.0 / (1.0 + np.exp(-raw))).astype(np.float32)
    if activation == "softmax":
        z = np.exp(raw - raw.max(axis=-1, keepdims=True))
        return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)
    if activation == "none":
        return raw
    raise ValueError(f"score_activation must be sigmoid, softmax or none, got '{activation}'")


def _select(
    boxes: np.ndarray,
    scores: np.ndarray,
    pre_nms_top_k: int | None,
    score_threshold: float,
    iou: float,
    limit: int,
    positive_only: bool = False,
) -> np.ndarray:
    """Anchor indices kept for one score column: top-k candidates, threshold, greedy NMS, best first.

    `positive_only`: KerasHub's NMS marks empty slots with all-zero boxes and keeps only boxes with a coordinate
    > 0, so a kept box lying wholly at negative coordinates is dropped (after it has suppressed others)."""
    order = np.argsort(-scores, kind="stable")
    if pre_nms_top_k:
        order = order[: int(pre_nms_top_k)]
    order = order[scores[order] > score_threshold]
    kept = order[nms(boxes[order], scores[order], len(order) if positive_only else limit, iou)]
    if positive_only:
        kept = kept[np.any(boxes[kept] > 0, axis=1)][:limit]
    return kept


def detect_single(
    boxes: np.ndarray,
    scores: np.ndarray,
    *,
    class_specific: bool,
    pre_nms_top_k: int | None,
    score_threshold: float,
    iou_threshold: float,
    max_detections: int,
    background_class: int | None = None,
    positive_only: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One image: decoded boxes [N, 4], scores [N, C] -> padded boxes, scores, labels, count."""
    classes = [c for c in range(scores.shape[1]) if c != background_class]
    if class_specific:
        kept = [
            (
                _select(
                    boxes, scores[:, c], pre_nms_top_k, score_threshold, iou_threshold, max_detections, positive_only
                ),
                c,
            )
            for c in classes
        ]
        index = np.concatenate([k for k, _ in kept]).astype(np.int64)
        labels = np.concatenate([np.full(len(k), c, np.int64) for k, c in kept])
    else:
        best = scores[:, classes].max(axis=1)
        index = _select(boxes, best, pre_nms_top_k, score_threshold, iou_threshold, max_detections, positive_only)
        labels = np.asarray(classes)[np.argmax(scores[index][:, classes], axis=1)] if len(index) else index
    return top_padded(boxes, scores, index, labels, max_detections)


def detect(
    tensors: dict[str, np.ndarray],
    *,
    boxes: str,
    classification: str,
    encoding: str = "center_size",
    center_format: str = "center_xywh",
    variances: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
    anchors: Mapping[str, Any] | None = None,
    retinanet_anchors: Mapping[str, Any] | None = None,
    delta_mean: float = 0.0,
    delta_std: float = 0.2,
    box_format: str = "xyxy",
    clip_to: Sequence[int] | None = None,
    score_activation: str = "sigmoid",
    background_class: int | None = None,
    class_specific: bool = True,
    pre_nms_top_k: int | None = None,
    score_threshold: float = 0.05,
    iou_threshold: float = 0.5,
    max_detections: int = 100,
    positive_only: bool = False,
    outputs: Mapping[str, str] | None = None,
) -> dict[str, np.ndarray]:
    """Raw head outputs -> the model's padded detections (-1 padding), keyed by the model's output names.

    `outputs` maps `boxes`, `scores`, `labels` and optionally `num_detections` to the original output names.
    `box_format` is the layout the model returns (xyxy or yxyx); `clip_to` = [height, width] clips boxes;
    `positive_only` reproduces KerasHub's NMS, which drops kept boxes with no coordinate > 0.
    """
    names = dict(outputs or {"boxes": "boxes", "scores": "scores", "labels": "labels"})
    raw_boxes = np.asarray(tensors[boxes], np.float32)
    if encoding == "none":
        decoded = convert_boxes(raw_boxes, box_format, "xyxy")
    elif encoding == "deltas":
        grid = anchors_from_config(anchors, retinanet_anchors)
        decoded = decode_boxes(grid, raw_boxes, delta_mean, delta_std)
    elif encoding == "center_size":
        grid = anchors_from_config(anchors, retinanet_anchors)
        anchor_format = str((anchors or {}).get("box_format", "yxyx")) if anchors else "xyxy"
        decoded = decode_center_size(grid, raw_boxes, variances, center_format, anchor_format)
    else:
        raise ValueError(f"encoding must be center_size, deltas or none, got '{encoding}'")
    if clip_to is not None:
        limits = np.array([clip_to[1], clip_to[0], clip_to[1], clip_to[0]], np.float32)
        decoded = np.clip(decoded, 0.0, limits)
    scores = _scores(tensors[classification], score_activation)
    settings = dict(
        class_specific=class_specific,
        pre_nms_top_k=pre_nms_top_k,
        score_threshold=score_threshold,
        iou_threshold=iou_threshold,
        max_detections=int(max_detections),
        background_class=background_class,
        positive_only=positive_only,
    )
    per_image = [detect_single(b, s, **settings) for b, s in zip(decoded, scores, strict=True)]  # type: ignore[arg-type]
    out_boxes = np.stack([p[0] for p in per_image])
    counts = np.array([p[3] for p in per_image], np.int32)
    valid = (np.arange(int(max_detections))[None, :] < counts[:, None])[..., None]  # padding stays -1
    out_boxes = np.where(valid, convert_boxes(out_boxes, "xyxy", box_format), -1.0).astype(np.float32)
    result = {
        names["boxes"]: out_boxes,
        names["scores"]: np.stack([p[1] for p in per_image]),
        names["labels"]: np.stack([p[2] for p in per_image]),
    }
    if "num_detections" in names:
        result[names["num_detections"]] = counts
    return result


detect.tensor_args = TENSOR_ARGS  # type: ignore[attr-defined]
