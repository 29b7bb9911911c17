"""The configured numpy tail is checked on the original model's own head outputs before any variant;
a tail with one wrong setting stops (exit 2, InputError) naming that setting. Here the "original" detections
are the bundled `detect` with the right settings on seeded raw predictions of a 240-anchor pyramid (the tiny
KerasHub-like detector's, tests/helpers/keras_detector.py); the end-to-end run on the real SavedModel is in
tests/e2e/test_tail_check_cli.py."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stages.postprocess.detector import detect
from stages.result import InputError, StageResult
from stages.split.tail_check import check_tail
from stages.verify.detection_metrics import find_detection_outputs, match_detections
from tests.helpers.keras_detector import DETECTOR_TAIL

RIGHT = {k: v for k, v in DETECTOR_TAIL.items() if k != "_target_"}


def _head(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "deltas": rng.normal(0, 0.2, (8, 240, 4)).astype(np.float32),
        "logits": rng.normal(-1.0, 1.2, (8, 240, 3)).astype(np.float32),
    }


def _split(settings: dict[str, Any]) -> StageResult:
    config = {"_target_": DETECTOR_TAIL["_target_"], **settings, "boxes": "deltas", "classification": "logits"}
    return StageResult(
        meta={
            "head_outputs": ["deltas", "logits"],
            "cut_tensors": ["deltas", "logits"],
            "postprocess": config["_target_"],
            "postprocess_config": config,
            "head_final_outputs": [],
            "tail_inputs": [],
        }
    )


def _check(settings: dict[str, Any]) -> dict[str, Any] | None:
    head = _head()
    original = detect(head, **{**RIGHT, "boxes": "deltas", "classification": "logits"})
    feeds = {"images": np.zeros((8, 1), np.float32)}
    names = find_detection_outputs(original)
    load = StageResult(meta={"model": {"outputs": [{"name": n} for n in original]}})
    return check_tail(load, _split(settings), head, feeds, original, names, match_detections)


def test_right_settings_proceed() -> None:
    figures = _check(RIGHT)
    assert figures is not None and figures["agreement"] == 1.0 and figures["reference_detections"] > 20


@pytest.mark.parametrize(
    ("wrong", "named"),
    [
        ({"score_activation": "softmax"}, "score_activation: sigmoid"),
        ({"class_specific": True}, "class_specific: false"),
        ({"variances": [0.1, 0.1, 0.2, 0.2]}, "variances: [1.0, 1.0, 1.0, 1.0]"),
        ({"center_format": "center_yxhw"}, "center_format: center_xywh"),
        ({"anchors": {**RIGHT["anchors"], "anchor_size": 4.0}}, "anchors.anchor_size: 2"),
        ({"iou_threshold": 0.3}, "iou_threshold: 0.5"),
    ],
)
def test_one_wrong_setting_stops_and_is_named(wrong: dict[str, Any], named: str) -> None:
    with pytest.raises(InputError) as caught:
        _check({**RIGHT, **wrong})
    message = str(caught.value)
    assert "setting most likely wrong" in message, message
    assert f"`{named}`" in message.split("also fixing")[0], message


def test_a_tail_without_anchors_lists_every_setting_and_what_the_model_tells() -> None:
    head = _head()
    original = detect(head, **{**RIGHT, "boxes": "deltas", "classification": "logits"})
    feeds = {"images": np.zeros((8, 32, 32, 3), np.float32)}
    load = StageResult(meta={"model": {"outputs": [{"name": n} for n in original]}})
    bare = _split({})  # what a SavedModel user writes first: the two tensors only
    with pytest.raises(InputError) as caught:
        check_tail(load, bare, head, feeds, original, find_detection_outputs(original), match_detections)
    message = str(caught.value)
    assert "240 anchors per image, 3 score columns, a 32x32 input, 10 detection slots" in message, message
    assert "levels 2-3 with 3 anchors per cell" in message, message
    for setting in (
        "anchors:",
        "center_format",
        "variances",
        "box_format",
        "score_activation",
        "class_specific",
        "positive_only",
        "iou_threshold",
        "score_threshold",
        "max_detections",
        "from_keras",
    ):
        assert setting in message, setting
