"""Detection matching treats genuine score ties at the cut-off as interchangeable, and says how many."""

from __future__ import annotations

import numpy as np

from stages.verify.detection_metrics import match_detections

NAMES = {"boxes": "boxes", "scores": "scores", "labels": "labels"}


def _dets(boxes: list[list[float]], scores: list[float], labels: list[int]) -> dict[str, np.ndarray]:
    return {
        "boxes": np.asarray([boxes], np.float32),
        "scores": np.asarray([scores], np.float32),
        "labels": np.asarray([labels], np.int32),
    }


def test_tie_at_the_cut_off_counts_as_matched() -> None:
    # Both keep the 0.9 box; the last slot holds one of two different boxes that tie at 0.5.
    ref = _dets([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.5], [0, 1])
    got = _dets([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.5 + 1e-7], [0, 2])
    result = match_detections(ref, got, NAMES)
    assert result["matched_fraction"] == 1.0
    assert result["score_ties"] == 1
    assert result["unmatched_candidates"] == 0


def test_different_scores_are_not_a_tie() -> None:
    ref = _dets([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.5], [0, 1])
    got = _dets([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.45], [0, 1])
    result = match_detections(ref, got, NAMES)
    assert result["matched_fraction"] == 0.5
    assert result["score_ties"] == 0
    assert result["unmatched_candidates"] == 1
