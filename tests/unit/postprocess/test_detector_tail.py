"""The bundled detector tail (`stages.postprocess.detector.detect`): KerasHub's anchor grid, center-size and
keras-retinanet decoding, sigmoid/softmax scores, per-class or class-agnostic NMS, top-k, padding."""

from __future__ import annotations

import numpy as np
import pytest

from stages.postprocess.anchors import convert_boxes, pyramid_anchors
from stages.postprocess.boxes import anchors_for_shape, decode_boxes
from stages.postprocess.detector import decode_center_size, detect


def test_keras_hub_anchor_grid_layout_and_rounding() -> None:
    anchors = pyramid_anchors(
        [32, 48],
        min_level=2,
        max_level=3,
        num_scales=2,
        aspect_ratios=[0.5, 1.0, 2.0],
        anchor_size=2.0,
        box_format="xyxy",
    )
    # level 2: 8 x 12 cells, level 3: 4 x 6 cells; 3 ratios x 2 scales per cell
    assert anchors.shape == ((8 * 12 + 4 * 6) * 6, 4)
    # first cell (0, 0), ratio 0.5, scale 0: size int(4 * 2) = 8, w = 8 / sqrt(.5) / 2 = 5.66 -> 6, h 2.83 -> 3
    np.testing.assert_array_equal(anchors[0], [-6, -3, 6, 3])
    # second scale: size int(4 * 2 * 2 ** 0.5) = 11 -> w 7.78 -> 8, h 3.89 -> 4
    np.testing.assert_array_equal(anchors[1], [-8, -4, 8, 4])
    # next cell along x is one stride (4 px) further; cells are row-major
    np.testing.assert_array_equal(anchors[6] - anchors[0], [4, 0, 4, 0])
    np.testing.assert_array_equal(anchors[6 * 12] - anchors[0], [0, 4, 0, 4])
    yxyx = pyramid_anchors([32, 48], min_level=2, max_level=3, num_scales=2, anchor_size=2.0)
    np.testing.assert_array_equal(yxyx[:, [1, 0, 3, 2]], anchors)


@pytest.mark.parametrize("layout", ["center_xywh", "center_yxhw"])
def test_center_size_decoding_inverts_the_encoding(layout: str) -> None:
    rng = np.random.default_rng(0)
    anchors = pyramid_anchors([64, 64], min_level=3, max_level=4, num_scales=1, box_format="yxyx")
    x1y1 = rng.uniform(0, 50, (len(anchors), 2))
    boxes = np.concatenate([x1y1, x1y1 + rng.uniform(4, 30, (len(anchors), 2))], axis=1).astype(np.float32)
    variances = np.array([0.1, 0.1, 0.2, 0.2], np.float32)  # the TF Object Detection API's 10, 10, 5, 5
    a, b = convert_boxes(anchors, "yxyx", layout), convert_boxes(boxes, "xyxy", layout)
    encoded = np.concatenate([(b[:, :2] - a[:, :2]) / a[:, 2:], np.log(b[:, 2:] / a[:, 2:])], axis=1) / variances
    decoded = decode_center_size(anchors, encoded[None], variances.tolist(), layout, "yxyx")
    np.testing.assert_allclose(decoded[0], boxes, rtol=1e-5, atol=1e-3)


def _two_classes() -> tuple[np.ndarray, np.ndarray]:
    """Decoded boxes (xyxy) and logits: 0 and 1 overlap (IoU 0.68), 2 is apart, 3 is below threshold."""
    boxes = np.array([[[0, 0, 10, 10], [1, 1, 11, 11], [30, 30, 40, 40], [50, 50, 60, 60]]], np.float32)
    probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.7, 0.6], [0.01, 0.02]]], np.float32)
    return boxes, np.log(probs / (1 - probs))


def test_class_agnostic_nms_pads_and_counts() -> None:
    boxes, logits = _two_classes()
    out = detect(
        {"b": boxes, "c": logits},
        boxes="b",
        classification="c",
        encoding="none",
        class_specific=False,
        score_threshold=0.05,
        iou_threshold=0.5,
        max_detections=4,
        outputs={"boxes": "B", "scores": "S", "labels": "L", "num_detections": "N"},
    )
    np.testing.assert_array_equal(out["N"], [2])  # box 1 is suppressed by box 0 whatever its class
    np.testing.assert_allclose(out["S"][0], [0.9, 0.7, -1, -1], atol=1e-6)
    np.testing.assert_array_equal(out["L"][0], [0, 0, -1, -1])
    np.testing.assert_allclose(out["B"][0, :2], boxes[0, [0, 2]])
    assert (out["B"][0, 2:] == -1).all()


def test_per_class_nms_keeps_overlapping_boxes_of_other_classes() -> None:
    boxes, logits = _two_classes()
    out = detect(
        {"b": boxes, "c": logits},
        boxes="b",
        classification="c",
        encoding="none",
        class_specific=True,
        score_threshold=0.5,
        max_detections=5,
    )
    # box 1 overlaps box 0 but has another class: per-class NMS keeps both; sorted by score, padded with -1
    np.testing.assert_array_equal(out["labels"][0], [0, 1, 0, 1, -1])
    np.testing.assert_allclose(out["scores"][0], [0.9, 0.8, 0.7, 0.6, -1], atol=1e-6)
    np.testing.assert_allclose(out["boxes"][0, :4], boxes[0, [0, 1, 2, 2]])


def test_softmax_scores_background_class_and_pre_nms_top_k() -> None:
    boxes, _ = _two_classes()
    logits = np.array([[[0.0, 3.0, 0.0], [0.0, 0.0, 2.0], [4.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], np.float32)
    out = detect(
        {"b": boxes, "c": logits},
        boxes="b",
        classification="c",
        encoding="none",
        score_activation="softmax",
        background_class=0,
        class_specific=False,
        score_threshold=0.3,
        iou_threshold=0.9,
        pre_nms_top_k=2,
        max_detections=3,
    )
    # box 2 is background; top-2 by best foreground score are boxes 0 (0.91) and 1 (0.79)
    np.testing.assert_array_equal(out["labels"][0], [1, 2, -1])
    np.testing.assert_allclose(
        out["scores"][0, :2], [np.exp(3) / (2 + np.exp(3)), np.exp(2) / (2 + np.exp(2))], rtol=1e-6
    )


def test_keras_retinanet_deltas_match_bbox_transform_inv() -> None:
    rng = np.random.default_rng(1)
    anchors = anchors_for_shape([32, 32], strides=[8, 16], sizes=[16, 32])
    deltas = rng.standard_normal((1, len(anchors), 4)).astype(np.float32)
    logits = rng.standard_normal((1, len(anchors), 2)).astype(np.float32)
    out = detect(
        {"d": deltas, "c": logits},
        boxes="d",
        classification="c",
        encoding="deltas",
        retinanet_anchors={"image_shape": [32, 32], "strides": [8, 16], "sizes": [16, 32]},
        score_threshold=0.0,
        iou_threshold=1.0,
        max_detections=len(anchors) * 2,
    )
    expected = decode_boxes(anchors, deltas)[0]
    got = out["boxes"][0][out["scores"][0] > -1]
    assert len(got) == 2 * len(anchors)  # nothing suppressed at IoU 1.0: every anchor once per class
    assert {tuple(np.round(b, 4)) for b in got} == {tuple(np.round(b, 4)) for b in expected}


def test_positive_only_drops_boxes_at_negative_coordinates_after_they_suppress() -> None:
    """KerasHub's NMS keeps only boxes with a coordinate > 0, after NMS (the dropped box still suppressed)."""
    boxes = np.array([[[-10, -10, -1, -1], [-9, -9, 0.5, 0.5], [10, 10, 20, 20]]], np.float32)
    logits = np.array([[[3.0], [2.0], [1.0]]], np.float32)
    common = dict(boxes="b", classification="c", encoding="none", class_specific=False, score_threshold=0.5)
    plain = detect({"b": boxes, "c": logits}, **common, max_detections=3)  # type: ignore[arg-type]
    keras_hub = detect({"b": boxes, "c": logits}, **common, max_detections=3, positive_only=True)  # type: ignore[arg-type]
    np.testing.assert_allclose(plain["boxes"][0, :2], boxes[0, [0, 2]])
    np.testing.assert_allclose(keras_hub["boxes"][0, 0], boxes[0, 2])
    assert (keras_hub["scores"][0, 1:] == -1).all()
