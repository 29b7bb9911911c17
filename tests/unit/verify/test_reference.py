"""The reference stage's checks of the original model: outputs must be finite, its own rounding noise is
measured, and a model that disagrees with itself (batch vs one at a time) gets a note."""

from __future__ import annotations

import numpy as np
import pytest

from stages.verify.reference import rounding_noise


def test_reference_outputs_that_are_not_finite_are_refused_with_the_output_and_count() -> None:
    from stages.result import InputError
    from stages.verify.reference import check_finite

    good = np.zeros((5, 3), np.float32)
    bad = np.zeros((5, 2), np.float32)
    bad[1, 0] = np.nan
    bad[3, 1] = np.inf
    with pytest.raises(InputError, match=r"'logits'.*2 of 5 samples"):
        check_finite({"probs": good, "logits": bad})
    check_finite({"probs": good})


def test_a_model_that_disagrees_with_itself_gets_a_note_naming_the_output_and_size() -> None:
    """Batch-dependent arithmetic (here: centring by the batch mean) makes batch and one-at-a-time outputs
    differ; the reference says by how much and the report turns it into a note that fp32 cannot beat it."""
    from pipelines.output.report_notes import sensitivity_notes
    from stages.verify.reference import self_disagreement

    def centred(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = feeds["x"]
        return {"scores": x - x.mean(axis=0, keepdims=True), "ids": np.argmax(x, axis=1)}

    feeds = {"x": np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)}
    diffs = self_disagreement(centred, feeds, centred(feeds))
    assert set(diffs) == {"scores"} and diffs["scores"] > 0.1  # integer outputs are not compared
    [note] = sensitivity_notes({"batch_vs_single": diffs})
    assert "output 'scores' differs by up to" in note and "the model's, not the conversion's" in note
    stable = self_disagreement(lambda f: {"scores": 2 * f["x"]}, feeds, {"scores": 2 * feeds["x"]})
    assert stable == {"scores": 0.0} and sensitivity_notes({"batch_vs_single": stable}) == []


def test_rounding_noise_is_large_for_an_amplifying_model_and_tiny_for_a_stable_one() -> None:
    feeds = {"x": np.random.default_rng(0).standard_normal((40, 5)).astype(np.float32), "ids": np.arange(40)}

    def amplify(f: dict[str, np.ndarray]) -> dict[str, np.ndarray]:  # catastrophic cancellation, scaled up
        x = f["x"].astype(np.float32)
        return {"y": (x - x.mean(axis=1, keepdims=True)) * np.float32(1e6), "n": f["ids"] * 2}

    loud = rounding_noise(amplify, feeds, amplify(feeds))
    assert set(loud) == {"rmse", "relative_rmse", "max_abs_err"} and set(loud["rmse"]) == {"y"}  # floats only
    assert loud["rmse"]["y"] > 0.01
    quiet = rounding_noise(lambda f: {"y": 2 * f["x"]}, feeds, {"y": 2 * feeds["x"]})
    assert 0 < quiet["rmse"]["y"] < 1e-6
    # Integer inputs cannot move by a float step: nothing is measured and the gates stay as configured.
    assert rounding_noise(lambda f: {"y": f["ids"] * 1.0}, {"ids": feeds["ids"]}, {"y": feeds["ids"] * 1.0}) == {}
