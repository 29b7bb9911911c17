"""A SavedModel whose graph uses ops this TensorFlow does not register (TF Decision Forests' `SimpleML...`, any
custom op library): one sentence saying whose ops they are and that LiteRT has no kernels, not three loaders'
stack traces."""

from __future__ import annotations

from pathlib import Path

import pytest

from stages.load.model.custom_ops import unregistered_ops
from stages.load.model.saved_model import load_saved_model
from stages.result import InputError
from tests.helpers.keras2_models import unknown_op_saved_model


def _error(path: Path) -> str:
    with pytest.raises(InputError) as caught:
        load_saved_model(str(path), "serving_default")
    return str(caught.value)


def test_a_tf_df_model_is_named_as_such_in_one_sentence(tmp_path: Path) -> None:
    path = unknown_op_saved_model(tmp_path / "tfdf")
    assert unregistered_ops(str(path)) == ["SimpleMLInferenceOpWithHandle"]
    message = _error(path)
    first = message.split(". ")[0]
    assert "TensorFlow Decision Forests (TF-DF) model" in first
    assert "`tensorflow_decision_forests`" in first and "LiteRT has no kernels" in first
    assert "Op type not registered" not in message and "v1_session" not in message and "\n" not in message


def test_other_unknown_ops_are_named_with_their_likely_source(tmp_path: Path) -> None:
    message = _error(unknown_op_saved_model(tmp_path / "custom", op="ZapCustomOp"))
    assert "(ZapCustomOp)" in message and "custom op library" in message and "LiteRT has no kernels" in message
    assert "Decision Forests" not in message and "Op type not registered" not in message


def test_a_plain_saved_model_has_no_unregistered_ops(tmp_path: Path) -> None:
    path = unknown_op_saved_model(tmp_path / "plain", op="Relu")
    assert unregistered_ops(str(path)) == []
    assert load_saved_model(str(path), "serving_default").load_path == "v2"
