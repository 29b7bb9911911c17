"""Per-op repair (stages/convert/quantization/repair.py) on tiny models with an op that has no kernel at the
variant's precision: int16x8 on SQRT and HARD_SWISH (the converter has no 16x8 rule), aeq_a16w8 on a depthwise
conv whose int16 scale LiteRT refuses. Each repaired model must run in LiteRT, list the ops moved and stay close to
the fp32 conversion of the same model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stages.result import StageError, StageResult
from tests.unit.convert.kernel_less_models import hard_swish_keras, sqrt_saved_model, tiny_activation_depthwise_keras

pytestmark = pytest.mark.slow  # real conversions of seconds each (test_repair_budget_rebuilds.py stays fast)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("repair_models")
    paths = {"sqrt": root / "sqrt_sm", "hard_swish": root / "hs.keras", "depthwise": root / "dw.keras"}
    sqrt_saved_model(paths["sqrt"])
    hard_swish_keras(paths["hard_swish"])
    tiny_activation_depthwise_keras(paths["depthwise"])
    return paths


def _stage(root: Path, name: str, fn: Any, cfg: dict[str, Any], *args: StageResult) -> StageResult:
    (root / name).mkdir()
    result: StageResult = fn(cfg, str(root / name), *args)
    result.root = str(root / name)
    return result


def _upstream(path: Path, root: Path) -> dict[str, StageResult]:
    from stages.calibrate.stage import calibrate
    from stages.load.stage import load
    from stages.split.stage import split

    fmt = "saved_model" if path.is_dir() else "keras"
    model = {"name": None, "format": fmt, "path": str(path), "safe_mode": True}
    out = {"load": _stage(root, "load", load, {"model": model})}
    out["split"] = _stage(root, "split", split, {"split": {"mode": "auto"}}, out["load"])
    dataset = {"name": "random", "kind": "random", "num_samples": 64, "seed": 0}
    cal = {"dataset": {**dataset, "eval_fraction": 0.5, "max_eval_samples": 100}, "num_samples": 16, "seed": 0}
    out["calibrate"] = _stage(root, "cal", calibrate, cal, out["load"], out["split"])
    return out


def _convert(up: dict[str, StageResult], root: Path, name: str, **variant: Any) -> StageResult:
    from stages.convert.stage import convert

    cfg = {"variant": {"name": name, "io_dtype": "float32", **variant}}
    return _stage(root, f"convert-{name}", convert, cfg, up["load"], up["split"], up["calibrate"])


def _outputs(converted: StageResult, up: dict[str, StageResult]) -> np.ndarray:
    """The model's outputs on the evaluation samples, run by LiteRT (so: the model runs)."""
    from stages.litert_runtime import SignatureModel
    from stages.samples import load_samples

    feeds, _ = load_samples(up["calibrate"].path("eval"))
    probs = SignatureModel(converted.path("tflite"), converted.meta["names"])(feeds)["probs"]
    assert np.isfinite(probs).all()
    return probs


@pytest.mark.parametrize("case, op", [("sqrt", "SQRT"), ("hard_swish", "HARD_SWISH")])
def test_int16x8_keeps_only_the_op_without_a_16x8_rule_in_float(
    models: dict[str, Path], tmp_path: Path, case: str, op: str
) -> None:
    up = _upstream(models[case], tmp_path)
    repaired = _convert(up, tmp_path, "int16x8", mode="int16x8")
    moved = repaired.meta["quantization"]["repaired"]
    assert [(m["op"], m["from"], m["to"], m["backend"]) for m in moved] == [(op, "int16", "float", "converter")]
    assert moved[0]["node"] and f"no int16x8 rule for {op} (it refused the variant)" in moved[0]["why"]
    assert repaired.meta["quantization"]["repair"]["rebuilds"] == 1
    contents = repaired.meta["contents"]
    assert contents["float_ops"] == {op: 1}  # just that op: every other op still computes in int16
    assert contents["tensor_dtypes"].get("int16", 0) >= 5
    assert repaired.meta["quantization"]["layers"], "the int16 table is built from the repaired model"
    fp32 = _convert(up, tmp_path, "fp32", mode="fp32")
    assert np.abs(_outputs(repaired, up) - _outputs(fp32, up)).max() < 0.01


def test_without_a_repair_budget_the_variant_fails_naming_the_op(models: dict[str, Path], tmp_path: Path) -> None:
    up = _upstream(models["sqrt"], tmp_path)
    with pytest.raises(StageError, match="16x8-bit not yet supported for op: 'SQRT'"):
        _convert(up, tmp_path, "int16x8", mode="int16x8", repair_budget=0)


def test_allow_float_ops_takes_the_same_road_and_lists_the_op(models: dict[str, Path], tmp_path: Path) -> None:
    up = _upstream(models["hard_swish"], tmp_path)
    allowed = _convert(up, tmp_path, "int16x8", mode="int16x8", allow_float_ops=True)
    assert [m["op"] for m in allowed.meta["quantization"]["repaired"]] == ["HARD_SWISH"]
    assert allowed.meta["quantization"]["repair"]["rebuilds"] == 0  # asked for up front: nothing to rebuild


def test_aeq_a16w8_moves_the_refused_depthwise_conv_to_int8(models: dict[str, Path], tmp_path: Path) -> None:
    up = _upstream(models["depthwise"], tmp_path)
    with pytest.raises(StageError, match="no_integer_overflow_from_quantization.*DEPTHWISE_CONV_2D"):
        _convert(up, tmp_path, "refused", mode="a16w8", backend="aeq", repair_budget=0)
    repaired = _convert(up, tmp_path, "aeq_a16w8", mode="a16w8", backend="aeq")
    moved = repaired.meta["quantization"]["repaired"]
    assert [(m["op"], m["from"], m["to"], m["backend"]) for m in moved] == [
        ("DEPTHWISE_CONV_2D", "int16", "int8", "aeq")
    ]
    assert "no_integer_overflow_from_quantization" in moved[0]["why"]
    override = repaired.meta["recipe"]["entries"][-1]  # the recipe that made the model says what moved
    assert override["regex"].startswith("^") and "DEPTHWISE" not in override["regex"]
    assert override["op_config"]["activation_tensor_config"]["num_bits"] == 8
    assert repaired.meta["contents"]["tensor_dtypes"].get("int16")  # the rest stays int16
    fp32 = _convert(up, tmp_path, "fp32", mode="fp32")
    assert np.abs(_outputs(repaired, up) - _outputs(fp32, up)).max() < 0.02
