"""The metric each output kind is judged by (stages/verify/output_kinds.py): per-label decisions for multi-label
scores (per cell for [N, T..., C] posteriors), top-k agreement for class scores, per-position argmax agreement for
a softmax at every position, and IoU-matched detections for packed detections and YOLO heads.

A YOLO head is decoded the way its own post-processing does (score >= 0.25, class-aware NMS at IoU 0.45), on the
reference and on the candidate alike, and the two detection lists are matched (detection_metrics.py): the
share of the original's detections a variant keeps is what a user of the detector sees, where a relative RMSE
over a tensor whose spread is the pixel boxes' hides scores that int8 collapsed to two values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stages.postprocess.nms import nms
from stages.verify.detection_metrics import match_detections
from stages.verify.output_kinds import packed_layout, yolo_layout

YOLO_SCORE_THRESHOLD = 0.25
YOLO_IOU_THRESHOLD = 0.45
YOLO_MAX_DETECTIONS = 300
_NAMES = {"boxes": "boxes", "scores": "scores", "labels": "labels"}


def label_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Share of (sample, label) decisions the candidate makes as the original does: score >= 0.5 (>= 0 for an
    output that is not in [0, 1]: logits)."""
    ref = reference.astype(np.float64).reshape(len(reference), -1)
    got = candidate.astype(np.float64).reshape(ref.shape)
    cut = 0.5 if float(np.min(ref)) >= 0 and float(np.max(ref)) <= 1 else 0.0
    return float(np.mean((ref >= cut) == (got >= cut))) if ref.size else 1.0


def balanced_label_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Per-cell decisions at 0.5 of sparse per-position scores (posteriors, a mask), the original's active cells
    weighing as much as its inactive ones: the mean of the agreement on each. Plain agreement over [N, 172, 88]
    posteriors with 0.6% of cells on would keep 0.994 for a variant that lost every note."""
    ref = reference.astype(np.float64).reshape(len(reference), -1)
    got = candidate.astype(np.float64).reshape(ref.shape)
    cut = 0.5 if float(np.min(ref)) >= 0 and float(np.max(ref)) <= 1 else 0.0
    on, same = ref >= cut, (ref >= cut) == (got >= cut)
    if not on.any() or on.all():
        return float(np.mean(same)) if ref.size else 1.0
    return float((np.mean(same[on]) + np.mean(same[~on])) / 2)


def step_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Share of positions of [N, T..., C] per-position class scores whose argmax over the last axis the candidate
    keeps (a CTC recogniser's character at each step)."""
    got = candidate.reshape(reference.shape)
    return float(np.mean(np.argmax(reference, axis=-1) == np.argmax(got, axis=-1))) if reference.size else 1.0


def topk_agreement(reference: np.ndarray, candidate: np.ndarray, k: int = 5) -> float | None:
    """Share of samples whose original top-1 class is among the candidate's top k; None under k+1 classes."""
    if reference.shape[-1] <= k:
        return None
    top = np.argsort(-candidate, axis=-1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == np.argmax(reference, axis=-1)[:, None], axis=1)))


def decode_yolo(
    values: np.ndarray,
    score_threshold: float = YOLO_SCORE_THRESHOLD,
    iou_threshold: float = YOLO_IOU_THRESHOLD,
    max_detections: int = YOLO_MAX_DETECTIONS,
) -> dict[str, np.ndarray]:
    """A YOLO head [B, 4+C, N] or [B, N, 4+C] -> padded detections {boxes [B, K, 4] corners, scores [B, K],
    labels [B, K]}: each anchor's best class, kept at score >= threshold, then NMS per class."""
    layout = yolo_layout(values)
    first = layout[0] if layout else values.shape[1] < values.shape[2]
    table = np.moveaxis(values, 1, 2) if first else values
    table = table.astype(np.float32)
    per_image = []
    for rows in table:
        xy, wh = rows[:, :2], rows[:, 2:4]
        corners = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)
        scores, labels = rows[:, 4:].max(axis=1), rows[:, 4:].argmax(axis=1)
        kept = np.flatnonzero(scores >= score_threshold)
        picked = [
            kept[labels[kept] == c][
                nms(corners[kept[labels[kept] == c]], scores[kept[labels[kept] == c]], max_detections, iou_threshold)
            ]
            for c in np.unique(labels[kept])
        ]
        index = np.concatenate(picked) if picked else np.zeros((0,), np.int64)
        index = index[np.argsort(-scores[index], kind="stable")][:max_detections]
        per_image.append((corners[index], scores[index], labels[index]))
    return _pad(per_image)


def unpack_detections(values: np.ndarray, layout: tuple[int, int, str] | None) -> dict[str, np.ndarray]:
    """Packed [B, K, 6] detections -> {boxes, scores, labels}, rows with a score <= 0 as padding (score -1)."""
    score_col, label_col = (layout[0], layout[1]) if layout else (4, 5)
    scores = values[..., score_col].astype(np.float32)
    return {
        "boxes": values[..., :4].astype(np.float32),
        "scores": np.where(scores > 0, scores, -1.0).astype(np.float32),
        "labels": np.rint(values[..., label_col]).astype(np.int64),
    }


def _pad(per_image: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    width = max([len(s) for _, s, _ in per_image] + [1])
    boxes = np.full((len(per_image), width, 4), -1.0, np.float32)
    scores = np.full((len(per_image), width), -1.0, np.float32)
    labels = np.full((len(per_image), width), -1, np.int64)
    for i, (b, s, c) in enumerate(per_image):
        boxes[i, : len(s)], scores[i, : len(s)], labels[i, : len(s)] = b, s, c
    return {"boxes": boxes, "scores": scores, "labels": labels}


def detection_metrics(
    kind: str, reference: np.ndarray, candidate: np.ndarray, nms: dict[str, Any] | None = None
) -> dict[str, Any]:
    """IoU-matched detections of one packed or YOLO output, plus (YOLO) the element-wise error of its box
    part (over the boxes' spread) and of its score part (in score units), reported apart."""
    got = candidate.astype(np.float32).reshape(reference.shape)
    if kind == "yolo":
        ref_dets, got_dets = decode_yolo(reference), decode_yolo(got)
    else:
        layout = packed_layout(reference)
        ref_dets, got_dets = unpack_detections(reference, layout), unpack_detections(got, layout)
    if kind == "yolo":  # decoded here, by this module's own class-aware NMS
        nms = {"iou": YOLO_IOU_THRESHOLD, "class_specific": True, "known": True}
    result = match_detections(ref_dets, got_dets, _NAMES, nms=nms)
    if kind == "yolo":
        first = reference.shape[1] < reference.shape[2]
        ref_t = np.moveaxis(reference, 1, 2) if first else reference
        got_t = np.moveaxis(got, 1, 2) if first else got
        box_diff = (got_t[..., :4] - ref_t[..., :4]).astype(np.float64)
        score_diff = (got_t[..., 4:] - ref_t[..., 4:]).astype(np.float64)
        box_spread = float(np.std(ref_t[..., :4])) or 1.0
        result["box_relative_rmse"] = float(np.sqrt(np.mean(box_diff**2)) / box_spread)
        result["score_rmse"] = float(np.sqrt(np.mean(score_diff**2)))
        result["score_threshold"], result["nms_iou"] = YOLO_SCORE_THRESHOLD, YOLO_IOU_THRESHOLD
    return result


def combine(parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One detection record for several detection outputs: counts summed, errors the worst; each output's own
    record under `outputs` when there are several."""
    if len(parts) == 1:
        return next(iter(parts.values()))
    total = sum(p["reference_detections"] for p in parts.values())
    tied = sum(p.get("nms_ties", 0) for p in parts.values())
    judged = [p["reference_detections"] - p.get("nms_ties", 0) for p in parts.values()]
    matched = sum(round((p["matched_fraction"] or 0) * n) for p, n in zip(parts.values(), judged, strict=True))
    ious = [p["mean_iou"] for p in parts.values() if p["mean_iou"] is not None]
    return {
        "matched_fraction": (round(matched / (total - tied), 6) if total > tied else 1.0) if total else None,
        "reference_detections": int(total),
        "score_ties": int(sum(p.get("score_ties", 0) for p in parts.values())),
        "nms_ties": int(tied),
        "nms_tie_candidates": int(sum(p.get("nms_tie_candidates", 0) for p in parts.values())),
        "unmatched_candidates": int(sum(p["unmatched_candidates"] for p in parts.values())),
        "mean_iou": float(np.mean(ious)) if ious else None,
        "box_max_abs_err": max(p["box_max_abs_err"] for p in parts.values()),
        "box_mean_abs_err": max(p["box_mean_abs_err"] for p in parts.values()),
        "score_max_abs_err": max(p["score_max_abs_err"] for p in parts.values()),
        "outputs": parts,
    }
