"""Checks of the files a config names, before any work starts (exit code 2); they need no TensorFlow.

Values out of their range are found earlier, when the config is composed (each stage's config.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipelines.engine.errors import ConfigError

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_WHAT = {
    "keras": "a .keras or .h5 file",
    "saved_model": "a SavedModel directory",
    "frozen_graph": "a frozen .pb graph",
}


def _is_tflite(path: Path) -> bool:
    """TFLite flatbuffers carry the file identifier 'TFL3' at bytes 4..8."""
    with open(path, "rb") as fh:
        return fh.read(8)[4:8] == b"TFL3"


def check_keras_file(path: Path) -> None:
    """A Keras model is a zip (.keras v3) or an HDF5 file (Keras 2-era .h5); anything else, or a damaged one,
    would reach Keras, whose messages mislead ("file not found" for a truncated .keras)."""
    import zipfile

    if path.is_dir():
        raise ConfigError(
            f"The model path {path} is a directory, but `model=keras` expects a .keras or .h5 file. For a "
            "SavedModel directory use `model=saved_model`."
        )
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head == _HDF5_SIGNATURE:
        try:
            import h5py

            with h5py.File(path, "r") as h5:
                if "model_config" not in h5.attrs and "model_weights" not in h5:
                    raise ConfigError(
                        f"{path} is an HDF5 file but holds no Keras model (only weights?). Save the "
                        "whole model "
                        "with `model.save('model.h5')` or `model.save('model.keras')`."
                    )
        except OSError as err:
            raise ConfigError(
                f"{path} is not a valid HDF5 (.h5) Keras file: {str(err).strip()[:200]}. It is "
                "damaged or was "
                "copied incompletely: copy it again or re-save the model."
            ) from None
        return
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            names, bad = [], str(err)
        if bad is None and "config.json" in names:
            return
        raise ConfigError(
            f"{path} is not a valid .keras file: the zip archive is damaged or lacks config.json "
            f"({bad or names[:5]}). "
            "Copy it again or re-save the model with `model.save('model.keras')`."
        )
    if _is_tflite(path):
        return  # reported by the caller
    kind = {".keras": "a valid .keras file (a zip archive)", ".h5": "a valid HDF5 (.h5) file"}.get(
        path.suffix, "a valid .keras file (a zip archive) nor a valid HDF5 .h5 file"
    )
    hint = " It looks like a frozen graph: use `model=frozen_graph`." if path.suffix in (".pb", ".pbtxt") else ""
    raise ConfigError(
        f"{path} is not {kind}: it is damaged, truncated or another format.{hint} Copy it again or "
        "re-save it "
        "with `model.save(...)`; a SavedModel directory needs `model=saved_model`, a .pb graph "
        "`model=frozen_graph`."
    )


def check_model_path(model: dict[str, Any]) -> None:
    """Existence, readability and the file's own signature against the chosen `model=` format."""
    path = Path(model["path"]).expanduser()
    fmt = model["format"]
    if not path.exists():
        raise ConfigError(f"The model path {path} does not exist. Set `model.path` to your model ({_WHAT[fmt]}).")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"The model path {path} is not readable: check its permissions.")
    if path.is_file() and (path.suffix == ".tflite" or _is_tflite(path)):
        raise ConfigError(
            f"{path} is already a TFLite model; this pipeline converts from the source model. Point "
            "`model.path` "
            "at the Keras file, SavedModel directory or frozen graph it came from."
        )
    if fmt == "saved_model" and not (path / "saved_model.pb").is_file():
        raise ConfigError(
            f"{path} is not a SavedModel directory (no saved_model.pb inside). Point `model.path` at the "
            "directory that `tf.saved_model.save` wrote, or pick `model=keras`/`model=frozen_graph`."
        )
    if fmt == "frozen_graph" and path.is_dir():
        raise ConfigError(f"The model path {path} is a directory; `model=frozen_graph` expects a .pb or .pbtxt file.")
    if fmt == "keras":
        check_keras_file(path)


def preflight(cfg: dict[str, Any], run_dir: Path) -> None:
    model, dataset = cfg["model"], cfg["dataset"]
    if model.get("path"):
        check_model_path(model)
    elif not model.get("build"):
        raise ConfigError("No model given: set `model.path` (with `model=keras`, `saved_model` or `frozen_graph`).")
    if model["format"] == "frozen_graph" and not (model.get("inputs") and model.get("outputs")):
        raise ConfigError("A frozen graph needs its tensor names: set `model.inputs=[...]` and `model.outputs=[...]`.")
    if dataset["kind"] == "npz":
        if not dataset.get("path"):
            raise ConfigError(
                "`dataset=npz` needs `dataset.path`: an .npz with key `x` (or one key per input "
                "name) and optional "
                "labels `y`, e.g. `dataset.path=data.npz`."
            )
        if not Path(dataset["path"]).expanduser().is_file():
            raise ConfigError(
                f"The dataset file {dataset.get('path')} does not exist. Set `dataset.path` to an "
                ".npz with key "
                "`x` (or one key per input name) and optional labels `y`."
            )
        from stages.calibrate.datasets import check_npz  # numpy only
        from stages.result import InputError

        try:
            check_npz(str(dataset["path"]))
        except InputError as err:
            raise ConfigError(str(err)) from None
    check_variants(cfg.get("variants") or {})
    target = ((cfg.get("split") or {}).get("postprocess") or {}).get("_target_")
    if target:
        from stages.result import InputError
        from stages.split.postprocess_target import check_findable  # finds the module, does not run it

        try:
            check_findable(str(target))
        except InputError as err:
            raise ConfigError(str(err)) from None
    if not os.access(run_dir, os.W_OK):
        raise ConfigError(f"The output directory {run_dir} is not writable. Choose another with `hydra.run.dir=...`.")
    check_writable(cfg)


def _nearest_existing(path: Path) -> Path:
    path = path.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(cfg: dict[str, Any]) -> None:
    """The cache and a sqlite tracking store must be creatable: found now, not after the first conversion."""
    targets = [("runtime.cache_dir", Path(str(cfg["runtime"]["cache_dir"])))]
    uri = str(cfg["tracking"]["uri"]) if cfg["tracking"]["enabled"] else ""
    if uri.startswith("sqlite:///"):
        targets.append(("tracking.uri", Path(uri.removeprefix("sqlite:///")).parent))
    for key, target in targets:
        existing = _nearest_existing(target)
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(
                f"`{key}` points at {target}, which cannot be written: {existing} is "
                f"{'not a directory' if not existing.is_dir() else 'not writable'}. Choose a writable location "
                f"with `{key}=...`."
            )


_AEQ_MODES = ("w8", "w4", "a8w8", "a16w8", "recipe")


def check_variants(variants: dict[str, Any]) -> None:
    """Each variant's mode belongs to its backend, and an AEQ recipe file exists and is a valid recipe."""
    for name, variant in variants.items():
        backend, mode = variant.get("backend", "converter"), variant.get("mode")
        if (backend == "aeq") != (mode in _AEQ_MODES):
            wanted = "aeq" if mode in _AEQ_MODES else "converter"
            raise ConfigError(
                f"Variant '{name}' has mode `{mode}` with backend `{backend}`; mode {mode} belongs to the "
                f"{wanted} backend (converter: fp32, fp16, dynamic, int8, int16x8; aeq: {', '.join(_AEQ_MODES)}). "
                f"Set `variants.{name}.backend={wanted}` or pick a mode of that backend."
            )
        if mode == "recipe":
            from stages.convert.quantization.aeq import variant_recipe  # AEQ itself is imported only for recipes
            from stages.result import StageError

            try:
                variant_recipe({"name": name, **variant})
            except StageError as err:
                raise ConfigError(str(err)) from None


def check_output_dirs(overrides: list[str]) -> None:
    """Checked before Hydra creates the run directory (its own failure there is a bare traceback): the
    nearest existing ancestor of `hydra.run.dir`, `hydra.sweep.dir` or the default `outputs/` must be a
    writable directory."""
    targets = [arg.split("=", 1)[1] for arg in overrides if arg.split("=", 1)[0].lstrip("+") in _DIR_KEYS]
    for target in targets or ["outputs"]:
        if "${" in target:
            continue
        path = Path(target).expanduser().absolute()
        while not path.exists() and path != path.parent:
            path = path.parent
        if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(
                f"The output directory {target} cannot be created: {path} is "
                f"{'not a directory' if not path.is_dir() else 'not writable'}. Choose another with "
                "`hydra.run.dir=...` (or run from a writable working directory)."
            )


_DIR_KEYS = ("hydra.run.dir", "hydra.sweep.dir")
