"""Is `split.postprocess._target_` importable? Asked twice: by preflight in the main process, without running
the user's module (a missing package fails the run in a second, before TensorFlow is imported or a model
trained), and by the tail when it imports the function in the worker. Also: the tail's settings read from the
model itself (`from_keras`, `with_model_settings`) instead of written by the user, and whether the tail can be
deployed inside the .tflite (`split.deploy=in_graph`: `deploy_mode`)."""

from __future__ import annotations

import importlib.util
from typing import Any

from stages.result import InputError


def cannot_import(target: str, err: Exception) -> InputError:
    return InputError(
        f"`split.postprocess._target_={target}` cannot be imported ({type(err).__name__}: {err})."
        " Give the dotted path of a function importable from the working directory, e.g. "
        "stages.postprocess.nms.filter_detections."
    )


def check_findable(target: str) -> None:
    """Raise `cannot_import` when the target's module cannot be found (its parent packages are imported, the
    module itself is not run; a missing function is found when the worker imports it)."""
    module_name = target.rpartition(".")[0]
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as err:
        raise cannot_import(target, err) from None
    if spec is None:
        raise cannot_import(target, ModuleNotFoundError(f"No module named '{module_name}'"))


def with_model_settings(cfg: dict[str, Any] | None, input_shape: list[Any] | None) -> dict[str, Any] | None:
    """`split.postprocess` with `from_keras: path/detector.keras` expanded: the tail's settings read from the
    saved KerasHub detector's config (`stages.postprocess.keras_hub_config`), the user's own keys on top (an
    `anchors` block merged key by key). `input_shape` (the model's first input) gives the image size when the
    backbone was built for any size."""
    if not cfg or not cfg.get("from_keras"):
        return cfg
    from stages.postprocess.keras_hub_config import detect_settings, read_config

    path = str(cfg["from_keras"])
    given = {k: v for k, v in cfg.items() if k != "from_keras"}
    size = [int(d) for d in (input_shape or [])[1:3] if d] if input_shape and len(input_shape) == 4 else None
    try:
        settings = detect_settings(read_config(path), size)
    except (OSError, KeyError, ValueError) as err:
        raise InputError(
            f"`split.postprocess.from_keras={path}`: cannot read the detector's post-processing settings "
            f"({type(err).__name__}: {err}). Give the KerasHub detector's `.keras` file (or its config.json), or "
            "drop `from_keras` and give the settings themselves (docs/split.md, the `detect` table)."
        ) from None
    anchors = {**settings["anchors"], **dict(given.pop("anchors", None) or {})}
    return {**settings, **given, "anchors": anchors}


def deploy_mode(value: Any, target: str | None, kwargs: dict[str, Any]) -> str:
    """`split.deploy` as a string; for `in_graph` the tail must be one that has an in-graph form (InputError)."""
    deploy = str(getattr(value, "value", value) or "host")
    if deploy not in ("host", "in_graph"):
        raise InputError(f"`split.deploy={deploy}` is not a deploy mode: give `host` (default) or `in_graph`.")
    if deploy == "in_graph" and target:
        from stages.postprocess.in_graph import detect_settings

        detect_settings(target, kwargs)
    return deploy


def in_graph_note(target: str | None, kwargs: dict[str, Any]) -> str:
    from stages.postprocess.in_graph import detect_settings, semantics_note

    return semantics_note(detect_settings(str(target), kwargs))
