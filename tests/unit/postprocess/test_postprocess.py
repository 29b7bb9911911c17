"""The numpy post-processing tail against TensorFlow's own ops and a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest

from stages.postprocess.boxes import anchors_for_shape, clip_boxes, decode_boxes, generate_anchors
from stages.postprocess.nms import filter_detections, iou_matrix, nms
from stages.verify.detection_metrics import find_detection_outputs, match_detections


def _random_boxes(rng: np.random.Generator, count: int, size: float = 50.0) -> np.ndarray:
    xy = rng.uniform(0, size, (count, 2))
    wh = rng.uniform(2, 20, (count, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


def _brute_force_nms(boxes: np.ndarray, scores: np.ndarray, limit: int, threshold: float) -> list[int]:
    """Textbook greedy NMS, one IoU at a time."""

    def iou(a: np.ndarray, b: np.ndarray) -> float:
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union

    keep: list[int] = []
    for i in sorted(range(len(scores)), key=lambda k: -scores[k]):
        if len(keep) < limit and all(iou(boxes[i], boxes[j]) <= threshold for j in keep):
            keep.append(i)
    return keep


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_matches_brute_force_and_tensorflow(seed: int) -> None:
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    boxes, scores = _random_boxes(rng, 200), rng.random(200).astype(np.float32)
    got = nms(boxes, scores, max_output=30, iou_threshold=0.4)
    assert got.tolist() == _brute_force_nms(boxes, scores, 30, 0.4)
    expected = tf.image.non_max_suppression(boxes, scores, 30, iou_threshold=0.4).numpy()
    assert got.tolist() == expected.tolist()


def test_iou_matrix_handles_flipped_corners_and_empty_boxes() -> None:
    a = np.array([[0, 0, 10, 10], [10, 10, 0, 0], [5, 5, 5, 5]], np.float32)
    iou = iou_matrix(a, np.array([[0, 0, 10, 10], [5, 0, 15, 10]], np.float32))
    np.testing.assert_allclose(iou[:, 0], [1.0, 1.0, 0.0])
    np.testing.assert_allclose(iou[0, 1], 50 / 150)


def test_filter_detections_class_specific_pads_to_fixed_count() -> None:
    boxes = np.array([[[0, 0, 10, 10], [1, 1, 11, 11], [30, 30, 40, 40]]], np.float32)
    scores = np.array([[[0.9, 0.01], [0.8, 0.7], [0.02, 0.6]]], np.float32)
    out = filter_detections({"b": boxes, "c": scores}, boxes="b", classification="c", max_detections=5)
    # class 0: box 1 suppressed by box 0 (IoU 0.68); class 1: boxes 1 and 2 kept.
    np.testing.assert_allclose(out["scores"][0], [0.9, 0.7, 0.6, -1, -1])
    assert out["labels"][0].tolist() == [0, 1, 1, -1, -1]
    assert out["labels"].dtype == np.int32 and out["boxes"].shape == (1, 5, 4)
    np.testing.assert_allclose(out["boxes"][0, 1], [1, 1, 11, 11])
    assert (out["boxes"][0, 3:] == -1).all()
    agnostic = filter_detections(
        {"b": boxes, "c": scores},
        boxes="b",
        classification="c",
        max_detections=5,
        class_specific_filter=False,
    )
    assert agnostic["labels"][0].tolist() == [0, 1, -1, -1, -1]


def test_filter_detections_matches_tensorflow_per_class_nms() -> None:
    import tensorflow as tf

    rng = np.random.default_rng(3)
    boxes, scores = _random_boxes(rng, 120), rng.random((120, 3)).astype(np.float32)
    out = filter_detections(
        {"b": boxes[None], "c": scores[None]},
        boxes="b",
        classification="c",
        max_detections=25,
        nms_threshold=0.3,
        score_threshold=0.2,
    )
    kept = []
    for c in range(3):
        idx = np.flatnonzero(scores[:, c] > 0.2)
        sel = tf.image.non_max_suppression(boxes[idx], scores[idx, c], 25, iou_threshold=0.3).numpy()
        kept += [(scores[i, c], c, i) for i in idx[sel]]
    kept.sort(key=lambda t: -t[0])
    np.testing.assert_allclose(out["scores"][0], [s for s, _, _ in kept[:25]])
    np.testing.assert_allclose(out["boxes"][0], boxes[[i for _, _, i in kept[:25]]])


def test_anchor_decoding_round_trip_and_clipping() -> None:
    base = generate_anchors(32)
    assert base.shape == (9, 4)
    np.testing.assert_allclose(
        (base[:, 2] - base[:, 0]) * (base[:, 3] - base[:, 1]),
        np.repeat([32**2 * s**2 for s in (1.0, 2 ** (1 / 3), 2 ** (2 / 3))], 1).tolist() * 3,
        rtol=1e-6,
    )
    anchors = anchors_for_shape((64, 64), strides=(8, 16), sizes=(16, 32))
    assert anchors.shape == ((8 * 8 + 4 * 4) * 9, 4)
    np.testing.assert_allclose(decode_boxes(anchors, np.zeros((1, len(anchors), 4)))[0], anchors, atol=1e-5)
    clipped = clip_boxes(np.array([[-5, 3, 70, 80]], np.float32), height=64, width=60)
    np.testing.assert_allclose(clipped, [[0, 3, 60, 64]])


def test_detection_matching_survives_reordering_but_counts_misses() -> None:
    ref = {
        "boxes": np.array([[[0, 0, 10, 10], [20, 20, 30, 30], [-1, -1, -1, -1]]], np.float32),
        "scores": np.array([[0.5, 0.49, -1]], np.float32),
        "labels": np.array([[1, 2, -1]], np.int32),
    }
    swapped = {k: v[:, [1, 0, 2]] for k, v in ref.items()}
    names = find_detection_outputs(ref)
    assert names == {"boxes": "boxes", "scores": "scores", "labels": "labels"}
    same = match_detections(ref, swapped, names)
    assert same["matched_fraction"] == 1.0 and same["box_max_abs_err"] == 0.0
    wrong_label = dict(swapped, labels=np.array([[2, 2, -1]], np.int32))
    assert match_detections(ref, wrong_label, names)["matched_fraction"] == 0.5


def _only_boxes(tensors: dict, **kwargs: object) -> dict:
    """A user tail that forgets some of the model's outputs."""
    return {"boxes": tensors["head/boxes"]}


def test_a_tail_that_returns_the_wrong_outputs_is_named_clearly() -> None:
    from stages.result import StageError, StageResult
    from stages.split.stage import run_tail

    split = StageResult(
        meta={
            "head_outputs": ["head/boxes"],
            "cut_tensors": ["head/boxes"],
            "postprocess": "tests.unit.postprocess.test_postprocess._only_boxes",
            "postprocess_config": {"_target_": "tests.unit.postprocess.test_postprocess._only_boxes"},
        }
    )
    load = StageResult(meta={"model": {"outputs": [{"name": "boxes"}, {"name": "scores"}]}})
    head = {"head/boxes": np.zeros((1, 3, 4), np.float32)}
    with pytest.raises(StageError, match=r"\['scores'\] are missing"):
        run_tail(split, head, {}, load)
