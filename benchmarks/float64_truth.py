"""Who is right when fp32 misses 1e-4? TensorFlow's float32 output and LiteRT's fp32 conversion, each against a
float64 run of the same Keras weights, beside the rounding noise the pipeline's reference stage measures
(`stages/verify/reference.py: rounding_noise`, which the error gates allow 3x of).

    python benchmarks/float64_truth.py ResNet152 ResNet101 MobileNetV2     # BatchNorm statistics from data

Same models and evaluation images as benchmarks/keras_applications.py (weights=None, 96x96, 10 classes).
Prints RMSE per pair over the 12 evaluation images (class probabilities), and the ratio LiteRT-vs-TF to noise.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _keras_apps import build


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def float64_twin(name: str, model: object) -> object:
    """The same architecture built with float64 variables and compute, holding the float32 model's weights."""
    import keras

    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        twin = getattr(keras.applications, name)(weights=None, input_shape=model.input_shape[1:], classes=10)
    finally:
        keras.config.set_dtype_policy(policy)
    twin.set_weights([w.astype(np.float64) for w in model.get_weights()])
    return twin


def main(names: list[str]) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from stages.convert.converter import convert_flatbuffer
    from stages.load.model.keras_model import keras_handle
    from stages.verify.reference import rounding_noise

    print("| model | TF fp32 vs float64 | LiteRT fp32 vs float64 | LiteRT vs TF fp32 | rounding noise | ratio | s |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        started = time.perf_counter()
        model, images = build(name, 96, "data")
        x = images[12:]
        handle = keras_handle(model, {})
        feed, out = handle.inputs[0], handle.outputs[0]
        tf32 = handle.run({feed.name: x})[out.name]  # what the pipeline's reference stage compares against
        noise = rounding_noise(handle.run, {feed.name: x}, {out.name: tf32})["rmse"][out.name]
        try:
            truth = np.asarray(float64_twin(name, model).predict(x.astype(np.float64), verbose=0))
        except Exception as err:  # noqa: BLE001 - an architecture Keras cannot build in float64: say so, go on
            print(f"| {name} | no float64 twin: {type(err).__name__}: {str(err)[:120]} |", flush=True)
            continue
        if truth.dtype != np.float64:
            print(f"| {name} | no float64 twin: Keras computed it in {truth.dtype} |", flush=True)
            continue
        with tempfile.TemporaryDirectory() as work:  # the pipeline's conversion: the first road with a signature
            flatbuffer, _ = convert_flatbuffer(handle, {"mode": "fp32", "name": "fp32"}, {}, Path(work))
        runner = Interpreter(model_content=flatbuffer).get_signature_runner()
        lite = np.concatenate([runner(**{feed.key: x[i : i + 1]})[out.key] for i in range(len(x))])
        row = [rmse(tf32, truth), rmse(lite, truth), rmse(lite, tf32), noise]
        cells = " | ".join(f"{v:.2e}" for v in row)
        print(f"| {name} | {cells} | {row[2] / noise:.2f} | {time.perf_counter() - started:.0f} |", flush=True)
        del model, handle


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main(sys.argv[1:] or ["ResNet152", "ResNet101", "MobileNetV2"])
