"""Greedy non-maximum suppression and keras-retinanet's `filter_detections`, in numpy.

The semantics follow TensorFlow's `tf.image.non_max_suppression` (IoU strictly greater than the threshold
suppresses; boxes with non-positive area overlap nothing; corners may come in either order) and
keras-retinanet's `filter_detections` (score threshold, per-class or class-agnostic NMS, top-k over all
kept detections, padding with -1 to a fixed count), so a graph cut before its post-processing gives the same
detections when this tail runs on the host.
"""

from __future__ import annotations

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes a [N, 4] and b [M, 4] (any corner order); 0 where either area is 0."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    a_lo, a_hi = np.minimum(a[:, :2], a[:, 2:]), np.maximum(a[:, :2], a[:, 2:])
    b_lo, b_hi = np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])
    area_a = np.prod(a_hi - a_lo, axis=1)
    area_b = np.prod(b_hi - b_lo, axis=1)
    lo = np.maximum(a_lo[:, None, :], b_lo[None, :, :])
    hi = np.minimum(a_hi[:, None, :], b_hi[None, :, :])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=2)
    union = area_a[:, None] + area_b[None, :] - inter
    valid = (area_a[:, None] > 0) & (area_b[None, :] > 0) & (union > 0)
    return np.where(valid, inter / np.where(valid, union, 1.0), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, max_output: int, iou_threshold: float = 0.5) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, highest score first, at most `max_output`."""
    scores = np.asarray(scores, np.float32).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    if len(order) == 0 or max_output <= 0:
        return np.zeros((0,), np.int64)
    ious = iou_matrix(boxes, boxes)
    keep: list[int] = []
    suppressed = np.zeros(len(scores), bool)
    for index in order:
        if suppressed[index]:
            continue
        keep.append(int(index))
        if len(keep) >= max_output:
            break
        suppressed |= ious[index] > iou_threshold
    return np.asarray(keep, np.int64)


def filter_detections_single(
    boxes: np.ndarray,
    classification: np.ndarray,
    class_specific_filter: bool = True,
    score_threshold: float = 0.05,
    max_detections: int = 300,
    nms_threshold: float = 0.5,
    apply_nms: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image: boxes [N, 4], scores [N, C] -> boxes [K, 4], scores [K], labels [K]; K = max_detections."""
    boxes = np.asarray(boxes, np.float32)
    classification = np.asarray(classification, np.float32)

    def select(scores: np.ndarray) -> np.ndarray:
        candidates = np.flatnonzero(scores > score_threshold)
        if apply_nms:
            candidates = candidates[nms(boxes[candidates], scores[candidates], max_detections, nms_threshold)]
        return candidates

    if class_specific_filter:
        parts = [(select(classification[:, c]), c) for c in range(classification.shape[1])]
        anchor_idx = np.concatenate([idx for idx, _ in parts]).astype(np.int64)
        labels = np.concatenate([np.full(len(idx), c, np.int64) for idx, c in parts])
    else:
        best = np.max(classification, axis=1)
        anchor_idx = select(best)
        labels = np.argmax(classification, axis=1)[anchor_idx]
    out_boxes, out_scores, out_labels, _ = top_padded(boxes, classification, anchor_idx, labels, max_detections)
    return out_boxes, out_scores, out_labels


def top_padded(
    boxes: np.ndarray, scores: np.ndarray, index: np.ndarray, labels: np.ndarray, max_detections: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The `max_detections` best of the kept (box index, label) pairs by score, padded with -1 (the padded
    detection contract every tail returns): boxes, scores, labels and how many are real."""
    picked = scores[index, labels]
    top = np.argsort(-picked, kind="stable")[:max_detections]
    count = len(top)
    out_boxes = np.full((max_detections, 4), -1.0, np.float32)
    out_scores = np.full((max_detections,), -1.0, np.float32)
    out_labels = np.full((max_detections,), -1, np.int32)
    out_boxes[:count], out_scores[:count], out_labels[:count] = boxes[index[top]], picked[top], labels[top]
    return out_boxes, out_scores, out_labels, count


def filter_detections(
    tensors: dict[str, np.ndarray],
    *,
    boxes: str,
    classification: str,
    outputs: tuple[str, str, str] | list[str] = ("boxes", "scores", "labels"),
    class_specific_filter: bool = True,
    score_threshold: float = 0.05,
    max_detections: int = 300,
    nms_threshold: float = 0.5,
    apply_nms: bool = True,
) -> dict[str, np.ndarray]:
    """Tail form: batched head outputs `boxes` [B, N, 4] and `classification` [B, N, C] -> padded detections.

    `outputs` names the three final outputs (boxes [B, K, 4], scores [B, K], labels [B, K] int32), as the
    original model names them.
    """
    missing = [name for name in (boxes, classification) if name not in tensors]
    if missing:
        raise KeyError(f"filter_detections needs head outputs {missing}; the head gives {sorted(tensors)}")
    per_image = [
        filter_detections_single(b, c, class_specific_filter, score_threshold, max_detections, nms_threshold, apply_nms)
        for b, c in zip(tensors[boxes], tensors[classification], strict=True)
    ]
    names = list(outputs)
    return {names[i]: np.stack([p[i] for p in per_image]) for i in range(3)}
