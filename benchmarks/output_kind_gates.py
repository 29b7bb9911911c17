"""Measure the per-kind gate figures of each variant on small models trained here on scikit-learn's digits:
a class-score CNN (the default example's shape), a multi-label tagger (4 sigmoid tags) and a 3-value regression
head. Prints one row per (model, variant): the figure each kind is judged by. Usage:
    python benchmarks/output_kind_gates.py OUT_DIR
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

VARIANTS = "[fp32,fp16,dynamic,int8,int16x8]"


def build(out: Path) -> dict[str, Path]:
    import keras

    from stages.calibrate.datasets import digits_split

    x, y = digits_split()[:2]
    keras.utils.set_random_seed(0)
    tags = np.stack([y % 2 == 0, y >= 5, np.isin(y, [2, 3, 5, 7]), np.isin(y, [0, 6, 8, 9])], 1).astype("float32")
    ink = x.reshape(len(x), -1)
    targets = np.stack([y / 9.0, ink.mean(1), ink[:, :32].mean(1) - ink[:, 32:].mean(1)], 1).astype("float32")
    paths = {}
    for name, (target, act, loss) in {
        "softmax_cnn": (y, "softmax", "sparse_categorical_crossentropy"),
        "multilabel_tags": (tags, "sigmoid", "binary_crossentropy"),
        "regression_3": (targets, None, "mse"),
    }.items():
        inputs = keras.Input((8, 8, 1), name="image")
        h = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
        h = keras.layers.Dense(64, activation="relu")(keras.layers.Flatten()(h))
        width = 10 if name == "softmax_cnn" else target.shape[1]
        model = keras.Model(inputs, keras.layers.Dense(width, activation=act, name="out")(h))
        model.compile("adam", loss)
        model.fit(x, target, epochs=15, batch_size=64, verbose=0)
        paths[name] = out / f"{name}.keras"
        model.save(paths[name])
    return paths


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, path in build(out).items():
        run = out / name
        cmd = [sys.executable, "-m", "pipelines", "model=keras", f"model.path={path}", f"variants={VARIANTS}"]
        cmd += ["tracking.enabled=false", "benchmark.enabled=false", f"hydra.run.dir={run}"]
        subprocess.run(cmd, cwd=out, capture_output=True, text=True)
        report = json.loads((run / "report.json").read_text())
        kinds = {k: v["kind"] for k, v in (report["reference"].get("output_kinds") or {}).items()}
        for variant, entry in sorted(report["variants"].items()):
            m = entry["metrics"]
            figures = {
                "argmax_agreement": m.get("argmax_agreement"),
                "label_agreement": min((m.get("label_agreement") or {}).values(), default=None),
                "relative_rmse": max((m.get("relative_rmse") or {}).values(), default=None),
                "rmse": max((m.get("rmse") or {}).values(), default=None),
            }
            shown = {k: round(v, 5) for k, v in figures.items() if v is not None}
            print(json.dumps({"model": name, "kinds": kinds, "variant": variant, "status": entry["status"]} | shown))


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
