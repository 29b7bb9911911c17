"""Checks that need no TensorFlow and catch the common mistakes before any work starts (exit code 2)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipelines.errors import ConfigError


def preflight(cfg: dict[str, Any], run_dir: Path) -> None:
    model, dataset = cfg["model"], cfg["dataset"]
    if model.get("path"):
        path = Path(model["path"]).expanduser()
        if not path.exists():
            raise ConfigError(
                f"The model path {path} does not exist. Set `model.path` to your model "
                f"({'a .keras or .h5 file' if model['format'] == 'keras' else 'a SavedModel directory' if model['format'] == 'saved_model' else 'a frozen .pb graph'})."
            )
        if not os.access(path, os.R_OK):
            raise ConfigError(f"The model path {path} is not readable: check its permissions.")
        if model["format"] == "saved_model" and not (path / "saved_model.pb").is_file():
            raise ConfigError(
                f"{path} is not a SavedModel directory (no saved_model.pb inside). Point `model.path` at the "
                "directory that `tf.saved_model.save` wrote, or pick `model=keras`/`model=frozen_graph`."
            )
    elif not model.get("build"):
        raise ConfigError("No model given: set `model.path` (with `model=keras`, `saved_model` or `frozen_graph`).")
    if model["format"] == "frozen_graph" and not (model.get("inputs") and model.get("outputs")):
        raise ConfigError("A frozen graph needs its tensor names: set `model.inputs=[...]` and `model.outputs=[...]`.")
    if dataset["kind"] == "npz":
        if not dataset.get("path") or not Path(dataset["path"]).expanduser().is_file():
            raise ConfigError(
                f"The dataset file {dataset.get('path')} does not exist. Set `dataset.path` to an .npz with key "
                "`x` (or one key per input name) and optional labels `y`."
            )
    if not os.access(run_dir, os.W_OK):
        raise ConfigError(f"The output directory {run_dir} is not writable. Choose another with `hydra.run.dir=...`.")
