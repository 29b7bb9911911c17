"""Checks of the files a config names, before any work starts (exit code 2); they need no TensorFlow.

Values out of their range are found earlier, when the config is composed (each stage's config.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipelines.engine.errors import ConfigError


def _is_tflite(path: Path) -> bool:
    """TFLite flatbuffers carry the file identifier 'TFL3' at bytes 4..8."""
    with open(path, "rb") as fh:
        return fh.read(8)[4:8] == b"TFL3"


def check_model(model: dict[str, Any]) -> None:
    """Existence and readability of `model.path`, then the chosen `model=` format's own checks (the file's
    signature, the names it needs: `stages.load.model.formats`, TensorFlow-free)."""
    from stages.load.model.formats import model_format
    from stages.result import InputError

    fmt = model_format(model["format"])
    path = None
    if model.get("path"):
        path = Path(model["path"]).expanduser()
        if not path.exists():
            raise ConfigError(f"The model path {path} does not exist. Set `model.path` to your model ({fmt.what}).")
        if not os.access(path, os.R_OK):
            raise ConfigError(f"The model path {path} is not readable: check its permissions.")
        if path.is_file() and (path.suffix == ".tflite" or _is_tflite(path)):
            raise ConfigError(
                f"{path} is already a TFLite model; this pipeline converts from the source model. Point "
                "`model.path` "
                "at the Keras file, SavedModel directory or frozen graph it came from."
            )
    elif not model.get("build"):
        raise ConfigError("No model given: set `model.path` (with `model=keras`, `saved_model` or `frozen_graph`).")
    try:
        fmt.check(model, path)
    except InputError as err:
        raise ConfigError(str(err)) from None


def preflight(cfg: dict[str, Any], run_dir: Path) -> None:
    dataset = cfg["dataset"]
    check_model(cfg["model"])
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


def check_variants(variants: dict[str, Any]) -> None:
    """An AEQ recipe file exists and is a valid recipe (a variant's mode and backend were checked when the config
    was composed: stages/convert/config.py)."""
    from stages.convert.schemes import scheme

    for name, variant in variants.items():
        if scheme(str(variant.get("mode"))).user_recipe:
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
