"""The calibrate stage's sets: calibration subsets, holdout and evaluation disjoint, stable when a holdout is
added, and the sampling seed recorded and used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stages.result import InputError, StageResult


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


# The report records the seed actually used for sampling, and changing it changes the sample.
def test_calibrate_seed_changes_the_npz_calibration_sample(tmp_path: Path) -> None:
    from stages.calibrate.stage import calibrate

    data = tmp_path / "data.npz"
    np.savez(data, x=np.arange(400, dtype=np.float32).reshape(100, 4), y=np.arange(100) % 3)
    load = StageResult(meta={"model": {"inputs": [{"name": "x", "shape": [None, 4], "dtype": "float32"}]}})

    def run(seed: int) -> dict:
        out = tmp_path / f"cal{seed}"
        out.mkdir()
        dataset = {"kind": "npz", "path": str(data), "eval_fraction": 0.5, "max_eval_samples": 1000, "seed": 0}
        return calibrate({"dataset": dataset, "num_samples": 10, "seed": seed}, str(out), load, StageResult())

    first, second = run(0), run(1)
    assert first.meta["calibration"]["checksum"] != second.meta["calibration"]["checksum"]
    assert first.meta["calibration"]["seed"] == 0 and second.meta["calibration"]["seed"] == 1
    assert first.meta["calibration"]["split_seed"] == 0  # dataset.seed: which samples are held out
