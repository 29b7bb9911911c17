"""Which Keras reads a Keras file: Keras 3 first, then tf_keras (Google's Keras 2 package) for what it cannot rebuild.

Every MobileNet or EfficientNet saved by tf.keras 2.x stores `groups` in its DepthwiseConv2D config, which Keras 3
refuses (`Unrecognized keyword arguments ... {'groups': 1}`); functional models that call TF ops directly hold
`TFOpLambda` layers, a Keras 2 class; a Keras 2 SavedModel directory is not a file Keras 3 opens at all. tf_keras
reads all of them, and a tf_keras model is a `tf.Module` like any other, so conversion takes the same roads.
Which one loaded the model is the handle's `load_path` (`keras` or `tf_keras`), kept in report.json.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.load.model.custom_objects import missing_names, resolve
from stages.result import InputError

_FIX = (
    "`model.custom_objects=[my_pkg.layers]` (a module: each public class and function defined in it is "
    "registered under its name) or `'model.custom_objects={{{name}: my_pkg.layers.{name}}}'`"
)
# Keras's generic advice after a missing name, which `_FIX` replaces with the pipeline's own.
_BOILERPLATE = re.compile(
    r"\s*(Please ensure you are using a `keras.utils.custom_object_scope`|Make sure custom classes).*"
)
_LAMBDA = re.compile(r'"class_name":\s*"Lambda"')


@dataclass
class LoadedKeras:
    model: Any
    loader: str  # "keras" (Keras 3) or "tf_keras" (Keras 2): the handle's load_path
    notes: list[str] = field(default_factory=list)


def essence(err: BaseException) -> str:
    """The part of a Keras error that says what went wrong: Keras 3 puts it after a layer's whole config."""
    text = str(err).strip()
    if "Exception encountered:" in text:
        text = text.rsplit("Exception encountered:", 1)[1].strip()
    first = _BOILERPLATE.sub("", (text.splitlines() or [""])[0])
    return f"{type(err).__name__}: {first[:300]}" if first else type(err).__name__


def _lambda_refused(path: str) -> InputError:
    return InputError(
        f"The Keras model {path} contains arbitrary Python code (a Lambda layer), which is refused by default "
        "because loading it runs that code. If you trust the file, set `model.safe_mode=false`."
    )


def _saved_config(path: Path) -> str:
    """The model's architecture as Keras wrote it (h5 attribute, .keras config.json, SavedModel metadata)."""
    if path.is_dir():
        meta = path / "keras_metadata.pb"
        return meta.read_bytes().decode("utf-8", "replace") if meta.is_file() else ""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return archive.read("config.json").decode("utf-8", "replace")
    import h5py

    with h5py.File(path, "r") as h5:
        raw = h5.attrs.get("model_config", "")
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _keras3(path: str, safe_mode: bool, objects: dict[str, Any]) -> Any:
    import keras

    # Fresh Keras name state: the graph's scopes are then the same however many models this process loaded
    # before (otherwise `dense` traces as `dense_1_1/...`, and a cut named by layer must match that).
    keras.backend.clear_session()
    try:
        return keras.models.load_model(path, compile=False, safe_mode=safe_mode, custom_objects=objects)
    except ValueError as err:
        if "safe_mode" in str(err):
            raise _lambda_refused(path) from None
        raise


def _tf_keras(path: str, safe_mode: bool, objects: dict[str, Any]) -> Any:
    import tf_keras

    # tf_keras rebuilds a legacy .h5's Lambda layers whatever `safe_mode` says: refuse them here as Keras 3 does.
    if safe_mode and _LAMBDA.search(_saved_config(Path(path))):
        raise _lambda_refused(path)
    tf_keras.backend.clear_session()
    return tf_keras.models.load_model(path, compile=False, safe_mode=safe_mode, custom_objects=objects)


def load_keras_model(path: str, safe_mode: bool, custom_objects: Any = None) -> LoadedKeras:
    """The model as Keras 3 rebuilds it; else as tf_keras does, with a note saying why Keras 3 could not."""
    objects = resolve(custom_objects)
    first: BaseException | None = None
    if not Path(path).is_dir():  # a directory is a Keras 2 SavedModel: only tf_keras reads it
        try:
            return LoadedKeras(_keras3(path, safe_mode, objects), "keras")
        except InputError:
            raise
        except Exception as err:  # noqa: BLE001 - deserialization raises TypeError, ValueError, KeyError, ...
            first = err
    try:
        import tf_keras
    except ImportError:
        raise _failure(path, first, None, objects, custom_objects) from None
    try:
        model = _tf_keras(path, safe_mode, objects)
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - as above
        raise _failure(path, first, err, objects, custom_objects) from None
    why = f"Keras 3 could not ({essence(first)})" if first else "a Keras 2 SavedModel directory"
    return LoadedKeras(model, "tf_keras", [f"Loaded with tf_keras {tf_keras.__version__} (Keras 2): {why}"])


def _failure(
    path: str, keras3: BaseException | None, keras2: BaseException | None, objects: dict[str, Any], given: Any = None
) -> InputError:
    """One paragraph: the class or function the file lacks and how to provide it, else both Kerases' errors."""
    errors = [e for e in (keras2, keras3) if e is not None]
    missing = [n for e in errors for n in missing_names(str(e)) if n not in objects]
    tried = "; ".join(
        f"{who}: {essence(e)}" for who, e in (("Keras 3", keras3), ("tf_keras (Keras 2)", keras2)) if e is not None
    )
    if keras2 is None and keras3 is not None:
        tried += "; tf_keras (Keras 2) is not installed (`pip install tf_keras`), so it could not try"
    if missing:
        name = missing[0]
        return InputError(
            f"The Keras model {path} uses '{name}', a custom class or function that neither Keras nor this "
            f"pipeline defines ({tried}).{_given(given, objects)} Provide it, and any others it names, with "
            f"{_FIX.format(name=name)}; for a Keras 2 file (.h5, saved by tf.keras 2.x) they must be written for "
            "tf_keras (`import tf_keras as keras` in that module)."
        )
    return InputError(
        f"Could not load the Keras model {path} with Keras 3 nor with tf_keras, Google's Keras 2 package ({tried}). "
        "If it needs its author's custom layers or functions, provide them with "
        f"{_FIX.format(name='MyLayer')}; else re-save it with the Keras that wrote it (`model.save('model.keras')`) "
        "or export a SavedModel (`model.export(dir)`) and use `model=saved_model`."
    )


def _given(spec: Any, objects: dict[str, Any]) -> str:
    """What `model.custom_objects` did provide, when it was set: the names, or that its modules define none."""
    if not spec:
        return ""
    if objects:
        return f" `model.custom_objects` provided {', '.join(sorted(objects))}, not that name."
    return (
        f" `model.custom_objects` ({spec}) provided no class or function: its modules define none at their top "
        "level. A package that makes its classes inside functions or registers them with Keras when imported "
        "(qubvel's `efficientnet.tfkeras`) registers Keras 3 objects here, which a tf_keras file cannot use: "
        "write a module that builds them with tf_keras and names them at its top level."
    )
