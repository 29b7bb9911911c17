"""The report's quantization lines (kept ops, advice, an unstable calibration) and the trials table."""

from __future__ import annotations

import numpy as np

from pipelines.output.quantization_report import summary_lines, trial_rows


def _report(passed: bool) -> dict[str, object]:
    trial = {
        "trial": 0,
        "backend": "converter",
        "moves": ["m/conv1/Relu;m/conv1/BiasAdd -> float"],
        "float_tensors": ["m/conv1/Relu;m/conv1/BiasAdd"],
        "float_ops": ["a", "b"],
        "float_weight_fraction": 0.12,
        "size_bytes": 1000,
        "metrics": {"accuracy": 0.9, "argmax_agreement": 0.95},
        "passed": passed,
    }
    quantization = {
        "float_tensors": trial["float_tensors"],
        "float_ops": trial["float_ops"],
        "float_weight_fraction": 0.12,
        "trials": [trial],
        "search": {"passed": passed, "seconds": 1.5, "strategy": "greedy", "max_trials": 1},
        "stability": {"spread": {"accuracy": 0.02}, "gates_agree": False},
    }
    if not passed:
        quantization["advice"] = "Try a larger budget."
    return {"variants": {"int8_mixed": {"quantization": quantization}}}


def test_summary_lines_name_the_kept_ops_the_advice_and_an_unstable_calibration() -> None:
    text = "\n".join(summary_lines(_report(passed=False)))
    assert "did not pass" in text and "m/conv1/Relu" in text and "Try a larger budget." in text
    assert "GATES DISAGREE" in text and "accuracy ±0.02" in text
    assert "passed its search after 1 trials" in "\n".join(summary_lines(_report(passed=True)))


def test_trial_rows_are_columns_of_equal_length() -> None:
    rows = trial_rows(_report(passed=True)["variants"]["int8_mixed"])  # type: ignore[index]
    assert rows is not None
    assert {len(v) for v in rows.values()} == {1}
    assert rows["accuracy"] == [0.9] and rows["float_tensors"] == ["m/conv1/Relu"]
    assert rows["moves"] == ["m/conv1/Relu -> float"]
    assert np.isclose(rows["float_weight_fraction"][0], 0.12)
