"""Detection matching treats ill-conditioned NMS decisions as ties and IoU-less (thin, zero-area) boxes by their
corners, so an exact head whose boxes move by LiteRT's 0.01-0.03 px is not failed, and a real miss still is.

The detections are made by the bundled greedy NMS (class-agnostic, IoU 0.5) on the same anchors before and after
a jitter, as the original and a converted head give them."""

from __future__ import annotations

import numpy as np

from stages.postprocess.nms import iou_matrix, nms
from stages.verify.detection_metrics import IOU_TIE, match_detections, nms_settings

NAMES = {"boxes": "boxes", "scores": "scores", "labels": "labels"}
SIDE = 2.0  # small boxes: a 0.01 px shift moves their IoU by ~0.006
NMS = {"iou": 0.5, "class_specific": False, "known": True}


def _shifted(x: float) -> list[float]:
    return [0.0, x, SIDE, SIDE + x]


def _at_iou(target: float) -> float:
    """The horizontal shift at which a box overlaps [0, 0, SIDE, SIDE] with IoU `target`."""
    return SIDE * (1 - target) / (1 + target)


def _detect(boxes: list[list[float]], scores: list[float], labels: list[int]) -> dict[str, np.ndarray]:
    """Class-agnostic greedy NMS at IoU 0.5, padded to 8 with -1 as the detectors pad."""
    b, s, c = np.asarray(boxes, np.float32), np.asarray(scores, np.float32), np.asarray(labels, np.int64)
    keep = nms(b, s, 8, 0.5)
    out = {"boxes": np.full((1, 8, 4), -1, np.float32), "scores": np.full((1, 8), -1, np.float32)}
    out["labels"] = np.full((1, 8), -1, np.int64)
    n = len(keep)
    out["boxes"][0, :n], out["scores"][0, :n], out["labels"][0, :n] = b[keep], s[keep], c[keep]
    return out


def _scene(b_shift: float) -> tuple[list[list[float]], list[float], list[int]]:
    """A (0.9) and B (0.8) overlapping at IoU 0.497, C (0.7, another class) suppressed by B only; D far away."""
    x = _at_iou(0.5 - 0.003)
    boxes = [_shifted(0.0), _shifted(x - b_shift), _shifted(x + 0.2), [20.0, 20.0, 30.0, 30.0]]
    return boxes, [0.9, 0.8, 0.7, 0.6], [0, 0, 1, 2]


def test_a_jitter_across_the_nms_threshold_is_a_tie_with_its_cascade() -> None:
    boxes, scores, labels = _scene(0.0)
    reference = _detect(boxes, scores, labels)
    jittered, _, _ = _scene(0.01)  # B moves by 0.01 px: its IoU with A crosses 0.5, so A suppresses it
    candidate = _detect(jittered, scores, labels)
    assert iou_matrix(np.asarray([boxes[0]]), np.asarray([jittered[1]]))[0, 0] > 0.5
    assert sorted(candidate["labels"][0][candidate["scores"][0] > -1]) == [0, 1, 2]  # B lost, C back
    found = match_detections(reference, candidate, NAMES, nms=NMS)
    assert found["nms_ties"] == 1 and found["nms_tie_candidates"] == 1  # B, then C that only B suppressed
    assert found["matched_fraction"] == 1.0 and found["unmatched_candidates"] == 0


def test_a_swap_away_from_the_threshold_and_a_real_miss_stay_errors() -> None:
    x = _at_iou(0.45)  # A and B overlap at IoU 0.45: both kept, a margin far above the tie band
    boxes, scores, labels = [_shifted(0.0), _shifted(x), [20.0, 20.0, 30.0, 30.0]], [0.9, 0.8, 0.85], [0, 0, 2]
    reference = _detect(boxes, scores, labels)
    moved = [_shifted(0.0), _shifted(x - 0.3), [25.0, 20.0, 35.0, 30.0]]  # B pushed into A; D moved 5 px
    candidate = _detect(moved, scores, labels)
    assert abs(iou_matrix(np.asarray(boxes[:1]), np.asarray(boxes[1:2]))[0, 0] - 0.5) > IOU_TIE
    found = match_detections(reference, candidate, NAMES, nms=NMS)
    assert found["nms_ties"] == 0 and found["nms_tie_candidates"] == 0
    assert found["matched_fraction"] == round(1 / 3, 6)  # only A: B suppressed, D at IoU 0.33
    assert found["unmatched_candidates"] == 1


def test_thin_and_zero_area_boxes_match_by_their_corners() -> None:
    # An untrained regression head's boxes: zero height, and 0.01 px high; LiteRT moves them by 0.02 px.
    boxes = [[5.0, -30.0, 5.0, 80.0], [40.0, 0.0, 40.01, 50.0]]
    reference = _detect(boxes, [0.9, 0.8], [0, 1])
    jittered = [[5.02, -30.0, 5.02, 80.0], [40.02, 0.0, 40.03, 50.0]]
    assert iou_matrix(np.asarray(boxes), np.asarray(jittered)).max() == 0.0  # IoU cannot tell
    found = match_detections(reference, _detect(jittered, [0.9, 0.8], [0, 1]), NAMES, nms=NMS)
    assert found["matched_fraction"] == 1.0 and found["unmatched_candidates"] == 0
    far = [[6.5, -30.0, 6.5, 80.0], [40.0, 0.0, 40.01, 50.0]]  # 1.5 px away: another box
    assert match_detections(reference, _detect(far, [0.9, 0.8], [0, 1]), NAMES, nms=NMS)["matched_fraction"] == 0.5


def test_the_nms_settings_come_from_the_tail() -> None:
    assert nms_settings(None) == {"iou": 0.5, "class_specific": False, "known": False}
    detect = {"_target_": "stages.postprocess.detector.detect", "iou_threshold": 0.6, "class_specific": False}
    assert nms_settings(detect) == {"iou": 0.6, "class_specific": False, "known": True}
    retinanet = {"_target_": "stages.postprocess.nms.filter_detections", "nms_threshold": 0.45}
    assert nms_settings(retinanet) == {"iou": 0.45, "class_specific": True, "known": True}
