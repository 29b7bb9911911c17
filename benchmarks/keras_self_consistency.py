"""Does a keras.applications model (weights=None) agree with itself? Keras against Keras: the evaluation images
of benchmarks/keras_applications.py predicted in one batch and one at a time, and with inputs scaled by 1+1e-6.
A model that disagrees with itself this way (EfficientNetV2M with its initial BatchNorm statistics) cannot match
any conversion to 1e-4 either.

    python benchmarks/keras_self_consistency.py EfficientNetV2M          # BatchNorm statistics from data
    python benchmarks/keras_self_consistency.py EfficientNetV2M init     # as initialised: chaotic
"""

from __future__ import annotations

import sys

import numpy as np
from _keras_apps import build


def main(name: str, bn_stats: str) -> None:
    import keras

    model, images = build(name, 96, bn_stats)  # the same weights and images as benchmarks/keras_applications.py
    x = images[12:]
    full = model.predict(x, batch_size=len(x), verbose=0)
    single = np.concatenate([model.predict(x[i : i + 1], verbose=0) for i in range(len(x))])
    nudged = model.predict(x * (1 + 1e-6), batch_size=len(x), verbose=0)
    features = keras.Model(model.input, model.layers[-1].input).predict(x, verbose=0)
    head = model.layers[-1].get_weights()  # a Dense with softmax (most), or a bare softmax Activation (MobileNetV3)
    logits = np.sort(features @ head[0] + head[1] if head else features, axis=1)
    gap = float(np.median(logits[:, -1] - logits[:, -2]))
    print(
        f"{name} (BatchNorm statistics: {bn_stats}): max |logit| {np.abs(logits).max():.6g}, median top-2 gap {gap:.6g}"
    )
    for label, other in (("batch 1 vs batch 12", single), ("input x(1+1e-6)", nudged)):
        agreement = (full.argmax(1) == other.argmax(1)).mean()
        print(f"{label}: max |diff| {np.abs(full - other).max():.3g}, argmax agreement {agreement:.2f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "EfficientNetV2M", sys.argv[2] if len(sys.argv) > 2 else "data")
