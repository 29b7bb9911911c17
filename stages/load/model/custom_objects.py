"""`model.custom_objects`: the model author's own layers and activations, and naming the one a file lacks.

A Keras file stores its custom classes and functions by name only; Keras needs the Python objects to rebuild the
model. The user gives them as modules (every public class and function *defined* in a module is registered, so
a module's `from tf_keras.layers import Dropout` does not replace Keras's own Dropout) or as `{name: dotted.path}`.
When they are missing, Keras's message names the object in one of a handful of phrasings, which `missing_names`
reads so that the error can say which one to provide.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

from stages.result import InputError

# How Keras 3 and tf_keras say that a name in the file has no Python object behind it.
_MISSING = [
    re.compile(
        r"Unknown (?:layer|activation function|initializer|regularizer|constraint|loss|metric|object)"
        r"(?: class)?: '?([A-Za-z_][\w>.]*)'?"
    ),
    re.compile(r"Could not locate (?:class|function) '([A-Za-z_][\w>.]*)'"),
    re.compile(
        r"Could not interpret (?:activation function|initializer|regularizer|constraint) identifier: "
        r"'?([A-Za-z_][\w>.]*)'?"
    ),
]
# A plain function saved by Keras >= 2.13 reads `{'class_name': 'function', 'config': '<its name>', ...}`: tf_keras
# then says "Unknown activation function: 'function'", and the real name is in the config beside it.
_FUNCTION_CONFIG = re.compile(r"'config': '([A-Za-z_][\w>.]*)', 'registered_name': 'function'")


def _import_attr(dotted: str) -> Any:
    """`pkg.mod.Name` (or `pkg.mod.Outer.Name`): the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            target: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            target = getattr(target, attr)
        return target
    raise ModuleNotFoundError(f"No module named '{parts[0]}'")


def _public_members(module: Any) -> dict[str, Any]:
    """The module's `__all__`, else its public classes and functions defined in it (not the ones it imports).
    Made in it counts too: a class or function a factory returns (`FixedDropout = get_dropout(layers=...)`, as
    qubvel's `efficientnet` builds its own for each Keras) carries the factory's module, but `<locals>` in its
    qualified name says no other module offers it."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return {n: getattr(module, n) for n in names}
    return {
        name: obj
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and (getattr(obj, "__module__", None) == module.__name__ or "<locals>" in getattr(obj, "__qualname__", ""))
    }


def resolve(spec: Any) -> dict[str, Any]:
    """{name in the file: Python object} from `model.custom_objects` (a module, a list of modules, a mapping)."""
    if not spec:
        return {}
    entries = [spec] if isinstance(spec, str) else spec
    objects: dict[str, Any] = {}
    for entry in entries if not isinstance(entries, dict) else entries.items():
        name, dotted = entry if isinstance(entry, tuple) else (None, entry)
        try:
            if name is None:
                objects.update(_public_members(importlib.import_module(dotted)))
            else:
                objects[name] = _import_attr(dotted)
        except Exception as err:  # noqa: BLE001 - a user module may raise anything while importing
            shown = f"{name}: {dotted}" if name else dotted
            raise InputError(
                f"`model.custom_objects` names '{shown}', which cannot be imported ({type(err).__name__}: "
                f"{str(err).strip()[:200]}). Give a module (or, in a mapping, a class or function) importable from "
                "the working directory or PYTHONPATH, e.g. `model.custom_objects=[my_pkg.layers]` or "
                "`'model.custom_objects={FixedDropout: my_pkg.layers.FixedDropout}'`."
            ) from None
    return objects


def missing_names(text: str) -> list[str]:
    """The names Keras could not find, in the order its message gives them (empty when it is another error)."""
    names: list[str] = []
    for pattern in _MISSING:
        for found in pattern.findall(text):
            if found == "function":
                found = next(iter(_FUNCTION_CONFIG.findall(text)), found)
            if found not in names:
                names.append(found)
    return names
