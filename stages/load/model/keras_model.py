"""Keras files (.keras/.h5, and Keras 2 SavedModel directories): the model called in inference mode, outputs keyed
by output name, frozen only when a stage needs the graph (see `ModelHandle`); the file's own signature, checked
without TensorFlow for preflight."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages.load.model.handle import ModelHandle, infos
from stages.load.model.keras_versions import load_keras_model
from stages.load.model.scratch import scratch_dir
from stages.result import InputError

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def check_keras_file(path: Path) -> None:
    """A Keras model is a zip (.keras v3) or an HDF5 file (Keras 2-era .h5); anything else, or a damaged one,
    would reach Keras, whose messages mislead ("file not found" for a truncated .keras)."""
    import zipfile

    if path.is_dir():
        if (path / "keras_metadata.pb").is_file() and (path / "saved_model.pb").is_file():
            return  # a Keras 2 SavedModel (tf.keras 2.x `model.save(dir)`): tf_keras reads it
        raise InputError(
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
                    raise InputError(
                        f"{path} is an HDF5 file but holds no Keras model (only weights?). Save the "
                        "whole model "
                        "with `model.save('model.h5')` or `model.save('model.keras')`."
                    )
        except OSError as err:
            raise InputError(
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
        raise InputError(
            f"{path} is not a valid .keras file: the zip archive is damaged or lacks config.json "
            f"({bad or names[:5]}). "
            "Copy it again or re-save the model with `model.save('model.keras')`."
        )
    kind = {".keras": "a valid .keras file (a zip archive)", ".h5": "a valid HDF5 (.h5) file"}.get(
        path.suffix, "a valid .keras file (a zip archive) nor a valid HDF5 .h5 file"
    )
    hint = " It looks like a frozen graph: use `model=frozen_graph`." if path.suffix in (".pb", ".pbtxt") else ""
    raise InputError(
        f"{path} is not {kind}: it is damaged, truncated or another format.{hint} Copy it again or "
        "re-save it "
        "with `model.save(...)`; a SavedModel directory needs `model=saved_model`, a .pb graph "
        "`model=frozen_graph`."
    )


def check(model: dict[str, Any], path: Path | None) -> None:
    """Preflight's check: the file's signature (a built model needs none)."""
    if path is not None:
        check_keras_file(path)


def load(path: str, options: dict[str, Any]) -> ModelHandle:
    """The loader as the format table calls it (`options`: the model config's loader keys)."""
    return load_keras(path, options.get("safe_mode", True), custom_objects=options.get("custom_objects"))


def saved_converter(path: str, model: dict[str, Any]) -> Any:
    """The TFLite converter on the file as saved (functional control flow kept): split's second opinion."""
    import tensorflow as tf

    loaded = load_keras_model(path, model.get("safe_mode", True), model.get("custom_objects"))
    return tf.lite.TFLiteConverter.from_keras_model(loaded.model)


def load_keras(
    path: str,
    safe_mode: bool,
    shapes: dict[str, tuple[int | None, ...]] | None = None,
    custom_objects: Any = None,
) -> ModelHandle:
    """The model traced for its own input shapes, or for `shapes` ({input name: shape}) when given; read by
    Keras 3, or by tf_keras when Keras 3 cannot (see `keras_versions`)."""
    loaded = load_keras_model(path, safe_mode, custom_objects)
    handle = keras_handle(loaded.model, shapes or {}, loaded.loader)
    handle.notes.extend(loaded.notes)
    return handle


def keras_handle(model: Any, shapes: dict[str, tuple[int | None, ...]], loader: str = "keras") -> ModelHandle:
    """A lazily frozen handle on `model` traced for its input shapes, overridden per input name by `shapes`;
    `loader` is the Keras that built `model` (`keras`: Keras 3, `tf_keras`: Keras 2), its `load_path`."""
    import tensorflow as tf

    inputs = infos([(t.name, tf.TensorSpec(shapes.get(t.name, t.shape), t.dtype)) for t in model.inputs])
    out_names = list(getattr(model, "output_names", None) or [f"output_{i}" for i in range(len(model.outputs))])
    outputs_infos = infos([(n, tf.TensorSpec(t.shape, t.dtype)) for n, t in zip(out_names, model.outputs, strict=True)])
    specs = [tf.TensorSpec(i.shape, i.dtype, name=i.key) for i in inputs]

    @tf.function(input_signature=specs)
    def serve(*args: Any) -> dict[str, Any]:
        result = model(list(args) if len(args) > 1 else args[0], training=False)
        if isinstance(result, dict):
            result = [result[n] for n in out_names]
        elif not isinstance(result, list | tuple):
            result = [result]
        return {o.key: r for o, r in zip(outputs_infos, result, strict=True)}

    written: list[Path] = []

    def export() -> tuple[str, str]:
        """Keras's own SavedModel export (variables tracked, inference mode), which the converter freezes.

        Written once per process and handle, in a scratch folder removed when the process exits: every
        conversion of the model (each variant, the quantization debugger's) reads the same one. A tf_keras model
        is a tf.Module whose variables TF's own saver tracks.
        """
        if written and (written[0] / "saved_model.pb").exists():
            return str(written[0]), "serving_default"
        directory = scratch_dir("tflite-pipeline-export-")
        options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
        if loader == "tf_keras":
            holder = tf.Module()
            holder.model = model
            tf.saved_model.save(holder, str(directory), signatures={"serving_default": live}, options=options)
        else:
            import keras

            archive = keras.export.ExportArchive()
            archive.track(model)
            archive.add_endpoint("serving_default", serve)
            archive.write_out(str(directory), options=options, verbose=False)
        written[:] = [directory]
        return str(directory), "serving_default"

    live = serve.get_concrete_function()
    handle = ModelHandle(None, inputs, outputs_infos, loader, live=live, export=export)
    handle.retrace = lambda fixed: keras_handle(model, fixed, loader)
    return handle
