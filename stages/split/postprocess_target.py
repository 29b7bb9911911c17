"""Is `split.postprocess._target_` importable? Asked twice: by preflight in the main process, without running
the user's module (a missing package fails the run in a second, before TensorFlow is imported or a model
trained), and by the tail when it imports the function in the worker."""

from __future__ import annotations

import importlib.util

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
