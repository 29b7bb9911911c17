"""One variant "the seeds' way": a standalone script that loads the Keras model, converts, checks and times.

Usage: python benchmarks/_seed_style_variant.py MODEL.keras VARIANT OUT_DIR [SAMPLES]
(SAMPLES: calibration and evaluation images, default 100 and 128.) Each invocation pays for its own
TensorFlow import, model load and reference predictions, as the seed scripts (/work/shared/seeds) did;
mobilenet_vs_scripts.py runs it once per variant.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np


def converter_for(model: object, variant: str, calib: np.ndarray) -> object:
    """The TFLiteConverter for one variant, configured as the seeds did (and as docs/quantization.md says)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if variant != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if variant in ("int8", "int8_io", "int16x8"):
        converter.representative_dataset = lambda: ([calib[i : i + 1]] for i in range(len(calib)))
    if variant == "int8_io":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    if variant == "int16x8":  # with float builtins beside: ops without a 16x8 kernel (ConvNeXt's NEG) stay float
        ops = tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        converter.target_spec.supported_ops = [ops, tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


def main(model_path: str, variant: str, out_dir: str, samples: str | None = None) -> None:
    import tensorflow as tf

    model = tf.keras.models.load_model(model_path)
    shape = [1, *model.input_shape[1:]]
    rng = np.random.default_rng(0)
    calib = rng.random([int(samples or 100), *shape[1:]], dtype=np.float32)
    evals = rng.random([int(samples or 128), *shape[1:]], dtype=np.float32)
    expected = model.predict(evals, batch_size=32, verbose=0)

    tflite = converter_for(model, variant, calib).convert()  # type: ignore[attr-defined]
    Path(out_dir, f"{variant}.tflite").write_bytes(tflite)

    interpreter = tf.lite.Interpreter(model_content=tflite, num_threads=1)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    outputs = []
    for x in evals:
        x = x[None]
        if inp["dtype"] == np.int8:
            scale, zero = inp["quantization"]
            x = np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])
        if out["dtype"] == np.int8:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        outputs.append(y)
    err = float(np.abs(np.concatenate(outputs) - expected).max())
    agree = float((np.concatenate(outputs).argmax(-1) == expected.argmax(-1)).mean())
    for _ in range(10):
        interpreter.invoke()
    times = []
    for _ in range(50):
        start = time.time()
        interpreter.invoke()
        times.append(time.time() - start)
    print(
        f"{variant}: size {len(tflite) / 1024:.0f} KiB, max abs err {err:.3g}, argmax agreement {agree:.3f}, "
        f"mean {np.mean(times) * 1e3:.3f} ms"
    )


if __name__ == "__main__":
    main(*sys.argv[1:5])
