"""A hand-written conversion and nothing else: load the Keras model, convert one variant, write the file.

Usage: python benchmarks/_bare_conversion.py MODEL.keras VARIANT OUT.tflite [SAMPLES]
The yardstick issue 26 compares the pipeline with (the calibrated variants get SAMPLES random images, default
16, the same count as the pipeline's run in speed.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _seed_style_variant import converter_for  # noqa: E402


def main(model_path: str, variant: str, out: str, samples: str = "16") -> None:
    import keras

    model = keras.models.load_model(model_path)
    calib = np.random.default_rng(0).random([int(samples), *model.input_shape[1:]], dtype=np.float32)
    Path(out).write_bytes(converter_for(model, variant, calib).convert())  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(*sys.argv[1:5])
