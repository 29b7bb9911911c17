"""Each output is judged by a metric that means something for it (stages/verify/output_kinds.py).

The figures come from the real comparison and judge (`candidate_metrics`, `judge`) and the shipped presets
(conf/gates/*.yaml). The int8 candidate of the YOLO-style head is what full-integer quantization makes of a
tensor that concatenates pixel boxes and class scores: one scale for the whole tensor, set by the boxes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from stages.settings import BadSetting
from stages.verify.candidate import candidate_metrics
from stages.verify.gates import judge
from stages.verify.output_kinds import classify

PRESETS = Path(__file__).resolve().parents[3] / "conf" / "gates"


def preset(name: str) -> dict[str, float]:
    values = yaml.safe_load((PRESETS / f"{name}.yaml").read_text())
    values.pop("defaults", None)
    return values


def judged(preset_name: str, reference: dict, candidate: dict, labels=None, kinds=None):
    metrics = candidate_metrics(reference, candidate, labels, None, None, kinds=kinds)
    status, gates = judge(preset(preset_name), metrics)
    return status, gates, metrics


def yolo_head(objects: int = 37, classes: int = 18, anchors: int = 2100, seed: int = 0) -> np.ndarray:
    """[1, 4+C, N] as a YOLOv8 head gives it: pixel centre-xywh boxes (0..320) and sigmoid class scores; each
    object fires a few neighbouring anchors, the other anchors score near zero."""
    rng = np.random.default_rng(seed)
    boxes = np.concatenate([rng.uniform(20, 300, (anchors, 2)), rng.uniform(10, 60, (anchors, 2))], axis=1)
    scores = rng.uniform(0.0, 0.02, (anchors, classes))
    centres = np.stack([np.linspace(30, 290, objects), np.resize([60, 160, 260], objects)], axis=1)
    picked = rng.permutation(anchors)[: 4 * objects].reshape(objects, 4)
    for i, rows in enumerate(picked):
        boxes[rows, :2] = centres[i] + rng.normal(0, 1.0, (4, 2))
        boxes[rows, 2:] = [24, 24] + rng.normal(0, 1.0, (4, 2))
        scores[rows, i % classes] = rng.uniform(0.3, 0.9) - rng.uniform(0, 0.05, 4)
    table = np.concatenate([boxes, scores], axis=1).astype(np.float32)  # [N, 4+C]
    return table.T[None]


def int8_round_trip(values: np.ndarray) -> np.ndarray:
    """Asymmetric per-tensor int8, as the converter quantizes one output tensor."""
    low, high = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    scale = (high - low) / 255.0
    zero = np.round(-128 - low / scale)
    q = np.clip(np.round(values / scale) + zero, -128, 127)
    return ((q - zero) * scale).astype(np.float32)


def test_a_yolo_head_whose_int8_scores_collapse_fails_and_fp16_noise_passes() -> None:
    head = yolo_head()
    assert classify({"output0": head})["output0"]["kind"] == "yolo"
    status, gates, metrics = judged("integer", {"output0": head}, {"output0": int8_round_trip(head)})
    detection = metrics["detection"]
    assert detection["reference_detections"] == 37
    assert detection["matched_fraction"] < 0.9, detection
    assert status == "failed" and gates["min_detection_match"]["passed"] is False
    assert gates["max_relative_rmse"]["passed"] is True  # the old, only gate: it passes, the match does not
    assert "argmax_agreement" not in metrics
    assert detection["score_rmse"] > 0.01 > detection["box_relative_rmse"]  # the scores' error, apart from the boxes'

    noise = np.random.default_rng(1).normal(0, 1, head.shape).astype(np.float32)
    noise[:, 4:] *= 1e-4  # fp16-like: 0.02 px on the boxes, 1e-4 on the scores
    noise[:, :4] *= 0.02
    status, gates, metrics = judged("half", {"output0": head}, {"output0": head + noise})
    assert metrics["detection"]["matched_fraction"] == 1.0 and status == "passed", gates
    # An absolute limit set by hand is not applied to pixel boxes either.
    metrics = candidate_metrics({"output0": head}, {"output0": head + noise}, None, None, None)
    status, gates = judge({"max_rmse": 0.01, "min_detection_match": 0.97}, metrics)
    assert status == "passed" and not gates["max_rmse"]["evaluated"]


def test_a_yolo_head_on_data_without_detections_is_judged_by_its_relative_error() -> None:
    """nudenet on photos without people: no detection on either side, so "0 of 0 unmatched" says nothing; the
    per-anchor tensor's relative error still sees boxes that moved (TFLite's fp32 moved six by up to 624 px)."""
    head = yolo_head()
    head[:, 4:] *= 0.2  # every score under the 0.25 threshold: no detection
    broken = head.copy()
    broken[:, :4, -6:] += 600.0  # six anchors' boxes far off
    status, gates, _ = judged("float", {"output0": head}, {"output0": broken})
    assert (
        not gates["max_unmatched_fraction"]["evaluated"]
        and "detected anything" in gates["max_unmatched_fraction"]["reason"]
    )
    assert status == "failed" and gates["max_relative_rmse"]["passed"] is False
    status, gates, _ = judged("float", {"output0": head}, {"output0": head})
    assert status == "passed" and gates["max_relative_rmse"]["passed"] is True


def test_a_softmax_at_every_step_is_not_a_yolo_head() -> None:
    """A CTC recogniser's [B, T, C] (PaddleOCR's [1, 40, 6625]) has the shape of a [B, 4+C, N] head; its rows
    are distributions over the last axis, not boxes beside scores. Judged as one, even fp32 failed."""
    logits = np.random.default_rng(0).normal(0, 3, (2, 40, 300))
    steps = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
    assert classify({"ctc": steps})["ctc"]["kind"] == "class_scores"  # per step (test_per_position_kinds.py)
    assert classify({"output0": yolo_head()})["output0"]["kind"] == "yolo"


def test_a_multilabel_head_is_judged_by_its_decisions_not_its_argmax() -> None:
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.0, 0.3, (60, 12)).astype(np.float32)
    scores[:, 2], scores[:, 7] = rng.uniform(0.7, 0.9, 60), rng.uniform(0.7, 0.9, 60)  # two tags per sample
    kinds = classify({"tags": scores})
    assert kinds["tags"]["kind"] == "multilabel", kinds
    swapped = scores.copy()  # the top tag changes in every sample, every decision at 0.5 stays
    swapped[:, 2], swapped[:, 7] = scores[:, 7], scores[:, 2]
    status, gates, metrics = judged("integer", {"tags": scores}, {"tags": swapped})
    assert "argmax_agreement" not in metrics and not gates["min_argmax_agreement"]["evaluated"]
    assert metrics["label_agreement"]["tags"] == 1.0 and status == "passed"
    dropped = scores.copy()  # same argmax, but one active tag falls below 0.5 in half the samples
    dropped[:30, 2] = 0.4
    dropped[:30, 7] = 0.95
    status, gates, metrics = judged("integer", {"tags": scores}, {"tags": dropped})
    assert metrics["label_agreement"]["tags"] < 0.97
    assert status == "failed" and gates["min_label_agreement"]["passed"] is False


@pytest.mark.parametrize("labels", [None, np.arange(40) % 10])
def test_a_three_score_regression_head_gets_no_argmax_gate(labels: np.ndarray | None) -> None:
    rng = np.random.default_rng(0)
    mos = rng.uniform(1, 5, (40, 3)).astype(np.float32)  # three MOS scores, as DNSMOS gives them
    assert classify({"output_0": mos}, labels)["output_0"]["kind"] == "regression"
    close = mos + rng.normal(0, 1e-3, mos.shape).astype(np.float32)
    status, gates, metrics = judged("half", {"output_0": mos}, {"output_0": close}, labels)
    assert "argmax_agreement" not in metrics and "accuracy" not in metrics
    assert not gates["min_argmax_agreement"]["evaluated"] and gates["max_relative_rmse"]["evaluated"]
    assert status == "passed"
    status, gates, _ = judged("half", {"output_0": mos}, {"output_0": mos + 0.2}, labels)
    assert status == "failed" and gates["max_relative_rmse"]["passed"] is False


def packed(rows: list[list[float]], pad: int = 4) -> np.ndarray:
    table = np.zeros((1, len(rows) + pad, 6), np.float32)
    table[0, : len(rows)] = rows
    return table


def test_packed_detections_with_near_tied_rows_swapped_are_matched() -> None:
    rows = [
        [10, 10, 60, 60, 0.9, 1],
        [100, 40, 180, 120, 0.612, 3],
        [200, 200, 260, 300, 0.611, 0],
        [30, 150, 90, 230, 0.4, 2],
    ]
    reference = packed(rows)
    swapped = packed([rows[0], rows[2], rows[1], rows[3]])  # the near-tied pair in the other order
    kinds = classify({"detections": reference})
    assert kinds["detections"]["kind"] == "packed_detections", kinds
    status, gates, metrics = judged("float", {"detections": reference}, {"detections": swapped})
    assert metrics["detection"]["matched_fraction"] == 1.0 and metrics["detection"]["unmatched_candidates"] == 0
    assert metrics["relative_rmse"]["detections"] > 0.5  # element-wise it looks broken, and is not read
    assert status == "passed" and not gates["max_relative_rmse"]["evaluated"], gates
    lost = packed([rows[0], rows[1], [0, 0, 0, 0, 0, 0], rows[3]])
    assert judged("float", {"detections": reference}, {"detections": lost})[0] == "failed"


def test_dataset_output_kinds_overrides_the_classification() -> None:
    rng = np.random.default_rng(0)
    probs = rng.random((30, 4)).astype(np.float32)
    probs /= probs.sum(axis=1, keepdims=True)
    assert classify({"p": probs})["p"]["kind"] == "class_scores"
    kinds = classify({"p": probs}, overrides={"p": "regression"})
    assert kinds["p"] == {"kind": "regression", "why": "dataset.output_kinds[p]=regression"}
    metrics = candidate_metrics({"p": probs}, {"p": probs}, None, None, None, kinds={"p": "regression"})
    assert "argmax_agreement" not in metrics and metrics["output_kinds"] == {"p": "regression"}
    with pytest.raises(ValueError, match="not outputs of the model"):
        classify({"p": probs}, overrides={"q": "regression"})
    from stages.calibrate.config import DatasetConfig

    with pytest.raises(BadSetting, match="output_kinds"):
        DatasetConfig(name="npz", output_kinds={"p": "softmax"})
    assert DatasetConfig(name="npz", output_kinds={"p": "yolo"}).output_kinds == {"p": "yolo"}


def test_an_override_naming_no_output_stops_the_reference_stage_with_exit_2_material() -> None:
    from stages.result import InputError
    from stages.verify.reference import class_output, output_kinds

    outputs = {"p": np.eye(4, dtype=np.float32)}
    with pytest.raises(InputError, match="dataset.output_kinds"):
        output_kinds(outputs, None, {"output_kinds": {"nope": "regression"}})
    kinds = output_kinds(outputs, None, {"output_kinds": {"p": "regression"}})
    with pytest.raises(InputError, match="not class scores"):
        class_output(outputs, kinds, None, "p")
