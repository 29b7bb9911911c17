"""An integer-I/O variant whose output the quantizer left in float names the op that keeps it there (basic-pitch's
`note`: a RESHAPE of a DEQUANTIZE'd copy of an int8 Sigmoid), not the variant's `io_dtype`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stages.convert.variant_checks import check_variant, inspect_tflite
from stages.litert_runtime import SignatureModel, describe_io
from stages.result import StageError


def _int8_io_model_with_a_float_output(path: Path) -> Path:
    """A real int8-I/O model (Dense, sigmoid, then NEG, which has no int8 rule and runs in float between a
    DEQUANTIZE and a QUANTIZE), with the last QUANTIZE removed: its output is then written by a float op that
    reads a float copy of an int8 tensor, as TF's quantizer leaves some outputs of published models."""
    import keras
    import tensorflow as tf
    from tensorflow.lite.tools import flatbuffer_utils

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16,), name="x")
    hidden = keras.layers.Dense(8, activation="sigmoid", name="hidden")(inputs)
    model = keras.Model(inputs, {"scores": keras.layers.Lambda(tf.negative, name="negated")(hidden)})
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    data = np.random.default_rng(0).normal(size=(16, 16)).astype(np.float32)
    converter.representative_dataset = lambda: ([row[None]] for row in data)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    tree = flatbuffer_utils.convert_bytearray_to_object(converter.convert())
    graph = tree.subgraphs[0]
    last = next(op for op in graph.operators if graph.outputs[0] in op.outputs)
    graph.operators.remove(last)  # the QUANTIZE after NEG: NEG's float output becomes the model's output
    graph.outputs = np.array([last.inputs[0]], dtype=np.int32)
    tree.signatureDefs[0].outputs[0].tensorIndex = int(last.inputs[0])
    path.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(tree)))
    return path


def test_a_float_output_of_int8_io_names_the_op_and_the_integer_tensor_it_copies(tmp_path: Path) -> None:
    path = _int8_io_model_with_a_float_output(tmp_path / "model.tflite")
    model = SignatureModel(path)
    io = describe_io(model)
    assert io["inputs"]["x"]["dtype"] == "int8" and io["outputs"]["scores"]["dtype"] == "float32"
    variant = {"name": "int8_io", "mode": "int8", "io_dtype": "int8", "allow_float_ops": True}
    with pytest.raises(StageError) as err:
        check_variant(variant, io, inspect_tflite(path), None, model)
    text = str(err.value)
    assert "output 'scores' came back float32" in text
    assert "The op that writes it, NEG, computes in float" in text
    assert "a float copy (DEQUANTIZE) of the int8 tensor" in text and "hidden" in text
    assert "`int8` with `io_dtype: float32`" in text and "Check `variants" not in text
    with pytest.raises(StageError, match="Check `variants.int8_io.io_dtype`"):  # without the model: as before
        check_variant(variant, io, inspect_tflite(path))
