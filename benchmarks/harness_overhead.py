"""Harness p50 vs a bare LiteRT invoke loop on the same .tflite (target: within +-10%).

Usage: python benchmarks/harness_overhead.py [--rounds N] [model.tflite ...]
Without files it builds two fp32 models (a digits-sized CNN, microseconds per invoke, where any per-call
overhead would show most; and MobileNetV2 alpha 0.35 at 96x96, weights=None). For each model it alternates
the benchmark stage's timing process (`stages.benchmark.stage.run_child`) and a bare loop (a fresh process that sets
the inputs and times `interpreter.invoke()`; also the mean of one un-instrumented block of invokes), N rounds
each, and prints the medians side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import PYTHON, load_avg, median  # noqa: E402

BARE = r"""
import json, sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter
path, seconds = sys.argv[1], float(sys.argv[2])
it = Interpreter(model_path=path, num_threads=1)
it.allocate_tensors()
for d in it.get_input_details():
    it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
for _ in range(10):
    it.invoke()
samples, clock = [], time.perf_counter
end = clock() + seconds
while clock() < end or len(samples) < 100:
    t0 = clock(); it.invoke(); samples.append(clock() - t0)
n = len(samples)
t0 = clock()
for _ in range(n):
    it.invoke()
block = (clock() - t0) / n
print(json.dumps({"p50": float(np.median(samples)) * 1e3, "block_mean": block * 1e3, "count": n}))
"""


def build_models(root: Path) -> list[Path]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    small = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.Dense(64)(x)))
    mobilenet = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None)
    paths = []
    for name, model in (("digits_sized_cnn", small), ("mobilenetv2_035_96", mobilenet)):
        path = root / f"{name}.tflite"
        with contextlib.redirect_stdout(io.StringIO()):  # the converter prints the whole SavedModel signature
            path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    from stages.benchmark.stage import run_child

    with tempfile.TemporaryDirectory(prefix="harness-") as scratch:
        models = args.models or build_models(Path(scratch))
        rows = []
        for model in models:
            harness, bare, block = [], [], []
            for _ in range(args.rounds):
                spec = {
                    "model_path": str(model),
                    "num_threads": 1,
                    "use_xnnpack": True,
                    "warmup": 10,
                    "min_runs": 100,
                    "min_seconds": args.seconds,
                    "max_seconds": 60.0,
                }
                samples = run_child(spec, 300)["samples_ms"]
                harness.append(median(samples))
                out = subprocess.run(
                    [PYTHON, "-c", BARE, str(model), str(args.seconds)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                figures = json.loads(out.stdout.strip().splitlines()[-1])
                bare.append(figures["p50"])
                block.append(figures["block_mean"])
            rows.append((model.stem, median(harness), median(bare), median(block)))
    print(
        f"\nharness vs bare LiteRT loop, 1 thread, XNNPACK on, median of {args.rounds} alternating rounds "
        f"({load_avg()})"
    )
    print(f"{'model':<22}{'harness p50 ms':>16}{'bare p50 ms':>14}{'bare block mean':>17}{'harness/bare':>14}  target")
    ok = True
    for name, h, b, m in rows:
        ratio = h / b
        ok &= abs(ratio - 1) <= 0.10
        print(
            f"{name:<22}{h:>16.4f}{b:>14.4f}{m:>17.4f}{ratio:>14.3f}  within +-10%: "
            f"{'met' if abs(ratio - 1) <= 0.10 else 'NOT met'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
