"""The convert stage's decisions: variants that do not apply, converter failures turned into one paragraph,
float ops explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from stages.convert.converter import failure_message, unsupported_ops
from stages.convert.stage import not_applicable
from stages.convert.variant_checks import check_variant
from stages.result import StageError

IMAGE = {"name": "image", "shape": [None, None, None, 3], "dtype": "float32"}


TOKENS = {"name": "token_ids", "shape": [None, None], "dtype": "int32"}


def test_integer_io_does_not_apply_to_all_integer_inputs_only() -> None:
    int8_io = {"name": "int8_io", "mode": "int8", "io_dtype": "int8"}
    assert "integer" in (not_applicable(int8_io, [TOKENS]) or "")
    assert not_applicable(int8_io, [TOKENS, IMAGE]) is None  # the float input still gets int8 I/O
    assert not_applicable({"name": "int8", "mode": "int8", "io_dtype": "float32"}, [TOKENS]) is None


def test_converter_failures_become_one_paragraph_pointing_at_the_log(tmp_path: Path) -> None:
    log = tmp_path / "converter.log"
    raw = (
        "E0000 00:00:1795 12 tf_mlir_translate.cc:109] x\n"
        '<unknown>:0: error: loc(callsite(fused["TensorListReserve:", "lstm/TensorArrayV2_1"])): failed to '
        "legalize operation 'tf.TensorListReserve' that was explicitly marked illegal\n"
    )
    message = failure_message("fp32", raw, log)
    assert unsupported_ops(raw) == ["TensorListReserve"]
    assert "recurrent" in message and str(log) in message and "loc(" not in message and "\n" not in message
    other = failure_message("fp16", 'E0000 00:00:1 2 x.cc:1] boom\n<unknown>:0: error: loc("a"): bad dims\n', log)
    assert "bad dims" in other and "E0000" not in other and "loc(" not in other


def test_int8_float_ops_are_named_and_calibration_is_not_blamed() -> None:
    variant = {"name": "int8", "mode": "int8", "io_dtype": "float32"}
    io = {"inputs": {"x": {"dtype": "float32"}}, "outputs": {"y": {"dtype": "float32"}}}
    contents = {"weight_dtypes": {"int8": 4, "int32": 2}, "float_ops": {"NEG": 23, "MUL": 2}}
    with pytest.raises(StageError) as err:
        check_variant(variant, io, contents)
    text = str(err.value)
    assert "NEG x23 (typically exact GELU" in text and "MUL x2" in text
    assert "calibration data is not the cause" in text and "`dynamic`" in text and "int16x8" in text
    assert "allow_float_ops=true" in text
    check_variant({**variant, "allow_float_ops": True}, io, contents)  # allowed: no error
    # int8_io: the same ops also leave the I/O in float; the message names the ops, not the I/O dtype.
    with pytest.raises(StageError, match="NEG x23") as err:
        check_variant({**variant, "name": "int8_io", "io_dtype": "int8"}, io, contents)
    assert "came back" not in str(err.value)
    with pytest.raises(StageError, match="empty, constant or non-finite"):
        check_variant(variant, io, {"weight_dtypes": {"float32": 4}, "float_ops": {"CONV_2D": 1}})
