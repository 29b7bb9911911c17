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
# An NMS decision on a pair whose IoU lies this close to the NMS threshold is ill-conditioned: LiteRT's EXP moves
# decoded boxes by ~0.02 px against TensorFlow's, which moves a 10-30 px box pair's IoU by up to ~0.005, and flips
# the suppression; the greedy NMS then cascades. Such detections are ties (either decision is the model's).
IOU_TIE = 0.01
NMS_IOU = 0.5  # the NMS IoU threshold assumed when the model's is not known (no configured tail)
# Two boxes whose corners differ by at most this share of the box's longest side are the same box, whatever their
# IoU: IoU is ill-conditioned for a box a fraction of a pixel thin (0.02 px of noise on a 0.01 px high box drops it
# to 0.3) and undefined (0) for one of zero area, which a random-init or untrained regression head emits. For any
# box not that thin such a pair has IoU >= 0.96, so the 0.5 matching is unchanged there.
SAME_BOX = 0.01


def same_box(ref_boxes: np.ndarray, got_boxes: np.ndarray) -> np.ndarray:
    """[N, M] closeness 1 - (largest corner difference / the reference box's longest side, at least 1 px) where
    that difference is within SAME_BOX, else 0: the matching score of thin and zero-area boxes."""
    ref = np.asarray(ref_boxes, np.float64).reshape(-1, 4)
    got = np.asarray(got_boxes, np.float64).reshape(-1, 4)
    diff = np.max(np.abs(ref[:, None, :] - got[None, :, :]), axis=2)
    side = np.maximum(np.max(np.abs(ref[:, 2:] - ref[:, :2]), axis=1), 1.0)
    rel = diff / side[:, None]
    return np.where(rel <= SAME_BOX, 1.0 - rel, 0.0)


def nms_settings(postprocess: dict[str, Any] | None) -> dict[str, Any]:
    """{iou, class_specific, known} of the model's NMS, read from a bundled tail's settings (`detect`:
    `iou_threshold`, `class_specific`; `filter_detections`: `nms_threshold`, `class_specific_filter`); without
    a tail the generic IoU 0.5, class-agnostic (a per-class NMS only suppresses within a class)."""
    cfg = postprocess or {}
    iou = cfg.get("iou_threshold", cfg.get("nms_threshold"))
    specific = cfg.get("class_specific", cfg.get("class_specific_filter"))
    target = str(cfg.get("_target_", ""))
    default_specific = target.endswith((".detect", ".filter_detections"))  # both default to per-class NMS
    return {
        "iou": float(NMS_IOU if iou is None else iou),
        "class_specific": bool(default_specific if specific is None else specific),
        "known": iou is not None or bool(target),
    }


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
    nms: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Greedy IoU matching per image (same label when labels exist; padding, score -1, ignored).

    `unmatched_candidates` counts the candidate's detections that match none of the reference's: the
    false positives a variant adds, which the `max_unmatched_fraction` gate limits. Ties are not errors: equal
    scores at the cut-off (`score_ties`, counted as matched) and ill-conditioned NMS decisions (`nms_ties`, see
    `nms_ties`; left out of `matched_fraction` and of the unmatched candidates). `nms`: `nms_settings(...)`.
    """
    nms = nms or nms_settings(None)
    matched = total = extra = ties = lost_ties = extra_ties = 0
    box_errors: list[float] = []
    score_errors: list[float] = []
    ious: list[float] = []
    for i in range(len(reference[names["boxes"]])):
        ref_valid = reference[names["scores"]][i] > -1
        got_scores = np.asarray(candidate[names["scores"]][i]).reshape(-1)
        got_valid = got_scores > -1
        ref_full, got_full = bool(ref_valid.all()), bool(got_valid.all())
        ref_boxes = reference[names["boxes"]][i][ref_valid]
        got_boxes = np.asarray(candidate[names["boxes"]][i]).reshape(-1, 4)[got_valid]
        ref_scores = reference[names["scores"]][i][ref_valid]
        got_scores = got_scores[got_valid]
        total += len(ref_boxes)
        if len(ref_boxes) == 0:
            extra += len(got_boxes)
            continue
        overlap = iou_matrix(ref_boxes, got_boxes)
        ref_labels, got_labels = np.zeros(len(ref_boxes), np.int64), np.zeros(len(got_boxes), np.int64)
        if "labels" in names:
            ref_labels = np.rint(reference[names["labels"]][i][ref_valid]).astype(np.int64)
            got_labels = np.rint(np.asarray(candidate[names["labels"]][i]).reshape(-1)[got_valid]).astype(np.int64)
        # Matched by IoU, or as the same box when IoU cannot tell (thin or zero-area boxes: `same_box`).
        score = np.maximum(overlap, same_box(ref_boxes, got_boxes))
        same = np.where(ref_labels[:, None] == got_labels[None, :], score, 0.0)
        used, lost = np.zeros(len(got_boxes), bool), np.ones(len(ref_boxes), bool)
        for r in np.argsort(-ref_scores, kind="stable"):
            if len(got_boxes) == 0:
                break
            row = np.where(used, -1.0, same[r])
            best = int(np.argmax(row))
            if row[best] >= iou_threshold:
                used[best], lost[r] = True, False
                matched += 1
                ious.append(float(row[best]))
                box_errors.append(float(np.max(np.abs(got_boxes[best] - ref_boxes[r]))))
                score_errors.append(float(abs(got_scores[best] - ref_scores[r])))
        # Genuine score ties at the cut-off are interchangeable: either of two equal last scores may be kept.
        cutoff = ref_scores.min()
        tied_ref = np.flatnonzero(lost & (np.abs(ref_scores - cutoff) <= TIE))
        tied_got = np.flatnonzero(~used & (np.abs(got_scores - cutoff) <= TIE))
        tied = min(len(tied_ref), len(tied_got))
        lost[tied_ref[:tied]], used[tied_got[:tied]] = False, True
        matched, ties = matched + tied, ties + tied
        lost_tie, extra_tie = nms_ties(
            overlap, (ref_scores, ref_labels, lost, ref_full), (got_scores, got_labels, ~used, got_full), nms
        )
        lost_ties, extra_ties = lost_ties + int(lost_tie.sum()), extra_ties + int(extra_tie.sum())
        extra += int((~used).sum()) - int(extra_tie.sum())
    judged = total - lost_ties
    return {
        "score_ties": int(ties),
        # The original's detections the variant lacks, and the variant's extra ones, because of an NMS decision
        # within IOU_TIE of the NMS threshold (or its cascade): not judged either way.
        "nms_ties": int(lost_ties),
        "nms_tie_candidates": int(extra_ties),
        "nms_iou": nms["iou"],
        # Nothing to match is not a perfect score: the gate reads it as not evaluated, and the spurious
        # candidates below as false positives.
        "matched_fraction": (round(matched / judged, 6) if judged else 1.0) if total else None,
        "reference_detections": int(total),
        "unmatched_candidates": int(extra),
        "mean_iou": float(np.mean(ious)) if ious else None,
        "box_max_abs_err": float(np.max(box_errors)) if box_errors else 0.0,
        "box_mean_abs_err": float(np.mean(box_errors)) if box_errors else 0.0,
        "score_max_abs_err": float(np.max(score_errors)) if score_errors else 0.0,
    }


Side = tuple[np.ndarray, np.ndarray, np.ndarray, bool]  # scores, labels, unmatched mask, list full


def nms_ties(overlap: np.ndarray, ref: Side, got: Side, nms: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Which unmatched detections of the reference (lost) and of the candidate (extra) an ill-conditioned NMS
    decision explains: a lost one whose IoU with a higher-scored candidate detection lies within IOU_TIE of the
    NMS threshold (the candidate suppressed it, the reference did not), an extra one likewise against the
    reference; then the cascade (a lost one suppressed by a tied extra one, an extra one the reference suppressed
    by a tied lost one) and, when a list is full, the lowest ones the tied extras pushed past `max_detections`.
    Anything else stays an error, however the variant moved its boxes."""
    ref_scores, ref_labels, lost, ref_full = ref
    got_scores, got_labels, extra, got_full = got
    thr = nms["iou"]
    pair = got_scores[None, :] >= ref_scores[:, None] - TIE  # the candidate's box ranks above the reference's
    if nms["class_specific"]:
        overlap = np.where(ref_labels[:, None] == got_labels[None, :], overlap, 0.0)
    near = np.abs(overlap - thr) <= IOU_TIE
    above = overlap > thr - IOU_TIE
    lost_tie = lost & np.any(near & pair, axis=1)
    extra_tie = extra & np.any(near & ~pair, axis=0)
    while True:
        grown_lost = lost & (lost_tie | np.any(above & pair & extra_tie[None, :], axis=1))
        grown_extra = extra & (extra_tie | np.any(above & ~pair & grown_lost[:, None], axis=0))
        if (grown_lost == lost_tie).all() and (grown_extra == extra_tie).all():
            break
        lost_tie, extra_tie = grown_lost, grown_extra
    surplus = int(extra_tie.sum()) - int(lost_tie.sum())
    if surplus > 0 and got_full and len(got_scores):  # pushed out of the candidate's full list by tied extras
        pushed = np.flatnonzero(lost & ~lost_tie & (ref_scores <= got_scores.min() + TIE))
        lost_tie[pushed[np.argsort(ref_scores[pushed], kind="stable")][:surplus]] = True
    if surplus < 0 and ref_full and len(ref_scores):
        pushed = np.flatnonzero(extra & ~extra_tie & (got_scores <= ref_scores.min() + TIE))
        extra_tie[pushed[np.argsort(got_scores[pushed], kind="stable")][:-surplus]] = True
    return lost_tie, extra_tie


def tie_note(variant: str, metrics: dict[str, Any]) -> str | None:
    """The report's line on a variant's detection ties, so a match over fewer detections is never read as all."""
    found = metrics.get("detection") or {}
    lost, extra, scores = found.get("nms_ties", 0), found.get("nms_tie_candidates", 0), found.get("score_ties", 0)
    if not (lost or extra or scores):
        return None
    return (
        f"{variant}: detection ties, not judged as errors: {scores} equal scores at the cut-off (counted as "
        f"matched), {lost} of the original's {found.get('reference_detections', 0)} detections missing and {extra} "
        f"extra because of an NMS decision within {IOU_TIE:g} of the NMS IoU {found.get('nms_iou', NMS_IOU):g} or "
        "its cascade (left out of the match and of the unmatched candidates)."
    )
