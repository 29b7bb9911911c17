"""Detection outputs compared by IoU matching, so reordering near-tied boxes is not counted as an error.

Element-wise RMSE on padded, score-sorted detections explodes when two boxes with nearly equal scores swap
places; matching each reference box to the candidate box of the same class with the highest IoU gives the
figures that matter: how many detections survived (matched fraction) and how far they moved (box error).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stages.postprocess.nms import iou_matrix

TIE = 1e-6  # scores this close at the cut-off are a tie (float32 rounding of the same logit)


def find_detection_outputs(outputs: dict[str, np.ndarray]) -> dict[str, str] | None:
    """{boxes, scores[, labels]} output names when the outputs look like padded detections, else None."""
    boxes = [n for n, v in outputs.items() if v.ndim == 3 and v.shape[-1] == 4 and v.dtype.kind == "f"]
    if not boxes:
        return None
    count = outputs[boxes[0]].shape[1]
    flat = [n for n, v in outputs.items() if v.ndim == 2 and v.shape[1] == count]
    scores = [n for n in flat if outputs[n].dtype.kind == "f"]
    labels = [n for n in flat if outputs[n].dtype.kind in "iu"]
    if not scores:
        return None
    found = {"boxes": boxes[0], "scores": scores[0]}
    if labels:
        found["labels"] = labels[0]
    return found


def match_detections(
    reference: dict[str, np.ndarray],
    candidate: dict[str, np.ndarray],
    names: dict[str, str],
    iou_threshold: float = 0.5,
) -> dict[str, Any]:
    """Greedy IoU matching per image (same label when labels exist; padding, score -1, ignored).

    `unmatched_candidates` counts the candidate's detections that match none of the reference's: the
    false positives a variant adds, which the `max_unmatched_fraction` gate limits.
    """
    matched = total = extra = ties = 0
    box_errors: list[float] = []
    score_errors: list[float] = []
    ious: list[float] = []
    for i in range(len(reference[names["boxes"]])):
        ref_valid = reference[names["scores"]][i] > -1
        got_scores = np.asarray(candidate[names["scores"]][i]).reshape(-1)
        got_valid = got_scores > -1
        ref_boxes = reference[names["boxes"]][i][ref_valid]
        got_boxes = np.asarray(candidate[names["boxes"]][i]).reshape(-1, 4)[got_valid]
        ref_scores = reference[names["scores"]][i][ref_valid]
        got_scores = got_scores[got_valid]
        total += len(ref_boxes)
        if len(ref_boxes) == 0:
            extra += len(got_boxes)
            continue
        overlap = iou_matrix(ref_boxes, got_boxes)
        if "labels" in names:
            ref_labels = reference[names["labels"]][i][ref_valid]
            got_labels = np.asarray(candidate[names["labels"]][i]).reshape(-1)[got_valid]
            overlap = np.where(ref_labels[:, None] == np.rint(got_labels)[None, :], overlap, 0.0)
        used, lost = np.zeros(len(got_boxes), bool), np.ones(len(ref_boxes), bool)
        for r in np.argsort(-ref_scores, kind="stable"):
            if len(got_boxes) == 0:
                break
            row = np.where(used, -1.0, overlap[r])
            best = int(np.argmax(row))
            if row[best] >= iou_threshold:
                used[best], lost[r] = True, False
                matched += 1
                ious.append(float(row[best]))
                box_errors.append(float(np.max(np.abs(got_boxes[best] - ref_boxes[r]))))
                score_errors.append(float(abs(got_scores[best] - ref_scores[r])))
        # Genuine score ties at the cut-off are interchangeable: either of two equal last scores may be kept.
        cutoff = ref_scores.min()
        tied = min(
            int((lost & (np.abs(ref_scores - cutoff) <= TIE)).sum()),
            int((~used & (np.abs(got_scores - cutoff) <= TIE)).sum()),
        )
        matched, ties, extra = matched + tied, ties + tied, extra + int((~used).sum()) - tied
    return {
        "score_ties": int(ties),
        # Nothing to match is not a perfect score: the gate reads it as not evaluated, and the spurious
        # candidates below as false positives.
        "matched_fraction": round(matched / total, 6) if total else None,
        "reference_detections": int(total),
        "unmatched_candidates": int(extra),
        "mean_iou": float(np.mean(ious)) if ious else None,
        "box_max_abs_err": float(np.max(box_errors)) if box_errors else 0.0,
        "box_mean_abs_err": float(np.mean(box_errors)) if box_errors else 0.0,
        "score_max_abs_err": float(np.max(score_errors)) if score_errors else 0.0,
    }
