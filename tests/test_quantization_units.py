"""Fast tests of the quantization helpers: candidate ordering, gate shortfall, disjoint calibration slices,
the report's quantization lines and the trials table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.output.quantization_report import summary_lines, trial_rows
from stages.convert.quantization.mixed_search import order_candidates
from stages.convert.quantization.moves import Move
from stages.result import InputError, StageResult


def _row(name: str, ratio: float, width: float, worst: float) -> dict[str, object]:
    return {"name": name, "rmse_over_scale": ratio, "range_min": 0.0, "range_max": width, "max_abs_error": worst}


def test_outlier_tensor_is_tried_early_although_rmse_over_scale_ranks_it_last() -> None:
    layers = [_row(f"t{i}", 2.0 - 0.1 * i, 5.0, 0.1) for i in range(8)] + [_row("outlier", 0.05, 600.0, 0.2)]
    moves = [Move("converter", "float", str(r["name"]), (str(r["name"]),)) for r in layers]
    ordered = order_candidates(moves, layers)
    assert sorted(m.target for m in ordered) == sorted(m.target for m in moves)  # nothing lost or doubled
    assert [m.target for m in ordered].index("outlier") < 3
    assert ordered[0].target == "t0"  # the debugger's own favourite still comes first


def _load_meta() -> StageResult:
    spec = {"name": "image", "shape": [None, 8, 8, 1], "dtype": "float32"}
    return StageResult(meta={"model": {"inputs": [spec]}})


def _calibrate(tmp_path: Path, **extra: object) -> StageResult:
    from stages.calibrate.stage import calibrate

    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = {"dataset": {"kind": "digits"}, "num_samples": 100, "seed": 0, "holdout_samples": 300, **extra}
    result = calibrate(cfg, str(tmp_path), _load_meta(), StageResult())
    result.root = str(tmp_path)
    return result


def _rows(path: Path) -> set[bytes]:
    from stages.samples import load_samples

    feeds, _ = load_samples(path)
    return {row.tobytes() for row in next(iter(feeds.values()))}


def test_calibration_subsets_holdout_and_evaluation_are_disjoint(tmp_path: Path) -> None:
    result = _calibrate(tmp_path, stability=True)
    sets = {name: _rows(result.path(name)) for name in ("calib", "calib_b", "holdout", "eval")}
    assert len(sets["calib"]) > 90 and len(sets["calib_b"]) > 90 and len(sets["holdout"]) > 250
    names = list(sets)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not sets[a] & sets[b], f"{a} and {b} share samples"
    assert result.meta["calibration"]["stability"] == [100, 100]
    assert result.meta["holdout"]["count"] == 300 and result.meta["holdout"]["labels"]


def test_stability_without_room_for_a_second_subset_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="two disjoint calibration subsets"):
        _calibrate(tmp_path, stability=True, num_samples=1000)


def test_calibration_samples_do_not_change_when_holdout_is_added(tmp_path: Path) -> None:
    with_holdout = _calibrate(tmp_path / "a")
    without = _calibrate(tmp_path / "b", holdout_samples=0)
    assert with_holdout.meta["calibration"]["checksum"] == without.meta["calibration"]["checksum"]


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
