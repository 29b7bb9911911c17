"""Scores at every position of [N, T..., C] are judged by their decisions (stages/verify/output_kinds.py):
a softmax at every step (PP-OCR's CTC recogniser, [1, 40, 6625]) by its per-step argmax, sigmoid posteriors
(basic-pitch's [N, 172, 88]) per cell at 0.5, never by a relative RMSE over cells that are mostly near zero.
Figures from the real comparison and judge with the shipped presets (conf/gates/*.yaml)."""

from __future__ import annotations

import numpy as np

from stages.verify.candidate import candidate_metrics
from stages.verify.gates import judge
from stages.verify.output_kinds import classify
from tests.unit.verify.test_gates_fit_the_output import preset

RNG = np.random.default_rng(0)


def per_step_softmax(n: int = 8, steps: int = 40, classes: int = 50) -> np.ndarray:
    logits = RNG.normal(0, 1, (n, steps, classes)) + 6 * np.eye(classes)[RNG.integers(0, classes, (n, steps))]
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def posteriors(n: int = 8, frames: int = 172, notes: int = 88) -> np.ndarray:
    """Mostly near 0.1 (std ~0.03), a few notes on: as basic-pitch's note posteriors."""
    values = 0.1 + 0.02 * RNG.standard_normal((n, frames, notes))
    on = RNG.random((n, frames, notes)) < 0.005
    values[on] = RNG.uniform(0.6, 0.95, int(on.sum()))
    return np.clip(values, 0, 1).astype(np.float32)


def test_a_softmax_at_every_step_is_per_step_class_scores_judged_by_its_argmaxes() -> None:
    ref = per_step_softmax()
    kinds = classify({"ctc": ref})
    assert kinds["ctc"]["kind"] == "class_scores" and "each of 40 positions" in kinds["ctc"]["why"]
    # fp16-like noise: relative RMSE far over fp16's 0.01 (the spread is that of mostly-zero cells), argmaxes kept
    got = ref + 0.01 * RNG.standard_normal(ref.shape).astype(np.float32)
    metrics = candidate_metrics({"ctc": ref}, {"ctc": got}, None, None, None)
    assert metrics["relative_rmse"]["ctc"] > 0.01 and metrics["step_argmax_agreement"]["ctc"] == 1.0
    assert "argmax_agreement" not in metrics and "accuracy" not in metrics  # accuracy stays (N, C) only
    status, gates = judge(preset("half"), metrics)
    assert status == "passed" and gates["min_argmax_agreement"]["value"] == 1.0
    assert not gates["max_relative_rmse"]["evaluated"] and "per-position" in gates["max_relative_rmse"]["reason"]
    # a step in ten with another argmax fails fp16's 0.99
    flipped = ref.copy()
    flipped[:, ::10] = flipped[:, ::10, ::-1]
    status, gates = judge(preset("half"), candidate_metrics({"ctc": ref}, {"ctc": flipped}, None, None, None))
    assert status == "failed" and gates["min_argmax_agreement"]["value"] == 0.9


def test_sigmoid_posteriors_per_step_are_multilabel_judged_per_cell() -> None:
    ref = posteriors()
    kinds = classify({"note": ref})
    assert kinds["note"]["kind"] == "multilabel" and "172 positions" in kinds["note"]["why"]
    got = ref + 0.004 * RNG.standard_normal(ref.shape).astype(np.float32)
    metrics = candidate_metrics({"note": ref}, {"note": got}, None, None, None)
    assert metrics["relative_rmse"]["note"] > 0.01 and metrics["per_position"] == ["note"]
    status, gates = judge(preset("half"), metrics)
    assert status == "passed" and gates["min_label_agreement"]["value"] > 0.999
    # decisions lost: every active note dropped below 0.5
    dropped = np.where(ref >= 0.5, 0.2, ref).astype(np.float32)
    status, _ = judge(preset("half"), candidate_metrics({"note": ref}, {"note": dropped}, None, None, None))
    assert status == "failed"
    # dataset=random: decisions are not evaluated, the relative error judges the output as before
    status, gates = judge(preset("half"), metrics, random_data=True)
    assert status == "failed" and gates["max_relative_rmse"]["evaluated"]


def test_values_in_unit_interval_that_are_mostly_on_stay_regression() -> None:
    image = RNG.random((4, 16, 16, 3)).astype(np.float32)  # an image or a depth map in [0, 1]
    named = posteriors(4, 16, 3)
    kinds = classify({"image": image, "depth": named})
    assert kinds["image"]["kind"] == "regression" and kinds["depth"]["kind"] == "regression"


def test_an_output_named_sigmoid_is_multilabel_even_with_one_tag_on() -> None:
    tags = np.full((20, 50), 0.05, np.float32)
    tags[np.arange(20), RNG.integers(0, 50, 20)] = 0.8  # at most one tag on per clip, rows not summing to 1
    assert classify({"model/Sigmoid": tags})["model/Sigmoid"]["kind"] == "multilabel"
    assert classify({"tags": tags})["tags"]["kind"] == "class_scores"  # without the name: as before


def test_an_n_c_output_keeps_its_element_wise_gates_beside_a_per_step_one() -> None:
    probs = per_step_softmax(8, 1, 10)[:, 0]
    metrics = candidate_metrics(
        {"probs": probs, "ctc": per_step_softmax()},
        {"probs": probs + 0.05, "ctc": per_step_softmax()},
        None,
        None,
        None,
    )
    assert metrics["output_kinds"] == {"probs": "class_scores", "ctc": "class_scores"}
    _, gates = judge(preset("half"), metrics)
    assert gates["max_relative_rmse"]["evaluated"] and not gates["max_relative_rmse"]["passed"]
