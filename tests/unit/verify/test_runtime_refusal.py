"""A converted model LiteRT will not run gets a message naming the op, the type it was given and what to do:
TF 2.21's int16x8 quantizes a LayerNorm's SQUARED_DIFFERENCE to int16, which LiteRT 2.3 has no kernel for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def test_an_int16_layernorm_names_the_op_the_type_and_the_alternative(tmp_path: Path) -> None:
    import keras
    import tensorflow as tf

    from stages.litert_runtime import SignatureModel, runtime_refusal

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 16), name="x")
    x = keras.layers.LayerNormalization()(keras.layers.Dense(16)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(4, name="y")(x))
    rng = np.random.default_rng(0)

    def samples() -> object:
        for _ in range(4):
            yield [rng.random((1, 8, 16), dtype=np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = samples
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS,  # NEG has no 16x8 rule: kept in float, as the pipeline's repair does
    ]
    path = tmp_path / "int16x8.tflite"
    path.write_bytes(converter.convert())
    runner = SignatureModel(path, {})
    with pytest.raises(RuntimeError) as refused:
        runner({name: rng.random((2, 8, 16), dtype=np.float32) for name in runner.input_details})
    message = runtime_refusal({"name": "int16x8", "mode": "int16x8"}, str(refused.value))
    assert "its SQUARED_DIFFERENCE op int16" in message and "supports only float32 and int32" in message
    assert "aeq_a16w8" in message and "'variants=[...]'" in message
    other = runtime_refusal({"name": "v", "mode": "int8"}, "tflite/kernels/conv.cc:349 something else")
    assert "LiteRT cannot run it (tflite/kernels/conv.cc:349 something else)" in other
