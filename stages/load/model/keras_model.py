"""Keras files (.keras/.h5): the model called in inference mode, frozen, outputs keyed by output name."""

from __future__ import annotations

from typing import Any

from stages.load.model.handle import ModelHandle, freeze_or_keep, infos
from stages.result import InputError


def load_keras(path: str, safe_mode: bool, shapes: dict[str, tuple[int | None, ...]] | None = None) -> ModelHandle:
    """The model traced for its own input shapes, or for `shapes` ({input name: shape}) when given."""
    import keras
    import tensorflow as tf

    try:
        model = keras.models.load_model(path, compile=False, safe_mode=safe_mode)
    except ValueError as err:
        if "safe_mode" in str(err) or "Lambda" in str(err):
            raise InputError(
                f"The Keras model {path} contains arbitrary Python code (a Lambda layer), which is "
                "refused by "
                "default because loading it runs that code. If you trust the file, set "
                "`model.safe_mode=false`."
            ) from None
        raise
    inputs = infos([(t.name, tf.TensorSpec((shapes or {}).get(t.name, t.shape), t.dtype)) for t in model.inputs])
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

    fn, frozen, notes = freeze_or_keep(serve.get_concrete_function(), inputs)
    handle = ModelHandle(fn, inputs, outputs_infos, "keras", frozen, None if frozen else model, notes)
    handle.retrace = lambda fixed: load_keras(path, safe_mode, fixed)
    return handle
