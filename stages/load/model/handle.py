"""The handle every source format becomes: a TF function with named inputs and outputs keyed by output name."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


def signature_key(name: str) -> str:
    """A tensor name as a TFLite signature key: `input_1:0` -> `input_1`, `a/b` -> `a_b`."""
    key = re.sub(r":0$", "", name)
    key = re.sub(r"[^A-Za-z0-9_]", "_", key)
    return key if key and not key[0].isdigit() else f"t_{key}"


@dataclass(frozen=True)
class TensorInfo:
    name: str  # the original model's name
    key: str  # the TFLite signature key
    shape: tuple[int | None, ...]
    dtype: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "key": self.key, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TensorInfo:
        return cls(data["name"], data["key"], tuple(data["shape"]), data["dtype"])


@dataclass
class ModelHandle:
    """A concrete function `fn(*inputs) -> {output key: tensor}` plus its named I/O.

    `fn` is frozen (variables inlined as constants) unless freezing failed, in which case `keepalive` holds the
    loaded object that owns the variables. `load_path` says which loader produced it (shown in the report).

    Keras and SavedModel (`v2`) handles freeze lazily: `live` (the model's own function, variables kept) runs
    the model, and `export` gives a SavedModel that the converter freezes itself (Keras's export; the user's
    own file); `fn` is frozen only when a stage needs the graph (a cut, the frozen-function road). Why:
    freezing in Python holds about ten copies of the weights and converting the frozen function twenty more
    (ConvNeXtTiny, 114 MB of weights: 4.8 GB), while the exported road peaks at 1.9 GB, which is what lets
    the largest models convert at all.
    """

    _fn: Any
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    load_path: str = "frozen"
    _frozen: bool = True
    keepalive: Any = None
    notes: list[str] = field(default_factory=list)
    # Traces the source model again for fixed input shapes (Keras: a recurrent layer's state shape is fixed
    # only when the model itself is traced with a fixed batch); None where the source cannot be retraced.
    retrace: Callable[[dict[str, tuple[int | None, ...]]], ModelHandle] | None = None
    live: Any = None
    # A SavedModel of the source with its variables, for the converter to freeze itself: (directory, signature
    # key) of Keras's export (written once) or of the user's own file (SavedModels); `export_road` names it.
    export: Callable[[], tuple[str, str]] | None = None
    export_road: str = "keras_export"

    @property
    def fn(self) -> Any:
        """The frozen function (frozen now if this handle was waiting), or the live one if freezing failed."""
        if self._fn is None:
            self._fn, self._frozen, notes = freeze_or_keep(self.live, self.inputs)
            self.notes.extend(notes)
        return self._fn

    def weight_bytes(self) -> int:
        """Bytes of the variables the live function reads (0 once only the frozen function is left)."""
        if self.live is None:
            return 0
        return sum(v.shape.num_elements() * v.dtype.size for v in self.live.variables)

    @property
    def frozen(self) -> bool:
        """Whether `fn` has its variables as constants. Asking freezes a lazily frozen handle first (as `fn`
        does), so `roads` asks only once the model's own SavedModel road has been tried."""
        return self.fn is not None and self._frozen

    def run(self, feeds: dict[str, np.ndarray], batch_size: int = 64) -> dict[str, np.ndarray]:
        """Run the original model on numpy inputs keyed by input name; outputs keyed by output name."""
        import tensorflow as tf

        function = self.live if self.live is not None else self.fn
        count = len(next(iter(feeds.values())))
        chunks: dict[str, list[np.ndarray]] = {o.name: [] for o in self.outputs}
        fixed = self.inputs[0].shape[0] if self.inputs[0].shape else None
        step = fixed if fixed else batch_size
        for start in range(0, count, step):
            args = [tf.constant(feeds[i.name][start : start + step]) for i in self.inputs]
            result = function(*args)
            for out in self.outputs:
                chunks[out.name].append(np.asarray(result[out.key]))
        return {name: np.concatenate(parts) for name, parts in chunks.items()}

    def with_shapes(self, shapes: dict[str, tuple[int | None, ...]]) -> ModelHandle:
        """The same function traced for more specific input shapes (fixed spatial dims, batch 1)."""
        if all(tuple(shapes.get(i.name, i.shape)) == tuple(i.shape) for i in self.inputs):
            return self
        inputs = [replace(i, shape=tuple(shapes.get(i.name, i.shape))) for i in self.inputs]
        if self.retrace is not None:  # trace the source model itself for the shapes (it stays lazily frozen)
            return self.retrace(shapes)
        return replace(self, _fn=_reshaped(self.fn, inputs), inputs=inputs, live=None, export=None)


def _reshaped(inner: Any, inputs: list[TensorInfo]) -> Any:
    import tensorflow as tf

    specs = [tf.TensorSpec(i.shape, i.dtype, name=i.key) for i in inputs]

    @tf.function(input_signature=specs)
    def serve(*args: Any) -> dict[str, Any]:
        return dict(inner(*args))

    return serve.get_concrete_function()


def rekeyed(handle: ModelHandle, inputs: list[TensorInfo], outputs: list[TensorInfo], load_path: str) -> ModelHandle:
    """The same function with other I/O names and keys (same order as the handle's inputs and outputs)."""
    import tensorflow as tf

    inner, old = handle.fn, [o.key for o in handle.outputs]
    specs = [tf.TensorSpec(i.shape, i.dtype, name=i.key) for i in inputs]

    @tf.function(input_signature=specs)
    def serve(*args: Any) -> dict[str, Any]:
        result = inner(*args)
        return {o.key: result[k] for o, k in zip(outputs, old, strict=True)}

    return ModelHandle(serve.get_concrete_function(), inputs, outputs, load_path)


def freeze(concrete: Any, inputs: list[TensorInfo]) -> Any:
    """Inline variables as constants and re-wrap so the outputs stay a dict keyed by name."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    keys = sorted(concrete.structured_outputs)  # tf.nest flattens dicts in sorted-key order
    frozen = convert_variables_to_constants_v2(concrete)
    specs = [tf.TensorSpec(i.shape, i.dtype, name=i.key) for i in inputs]

    @tf.function(input_signature=specs)
    def serve(*args: Any) -> dict[str, Any]:
        return dict(zip(keys, frozen(*args), strict=True))

    return serve.get_concrete_function()


def freeze_or_keep(concrete: Any, inputs: list[TensorInfo]) -> tuple[Any, bool, list[str]]:
    """Freeze when TF can (the usual case); else keep the variables, which the converter handles itself.

    Freezing fails on functions that assign variables (state updates in a serving function), which TF
    itself still runs and converts; refusing such a model would be wrong.
    """
    try:
        return freeze(concrete, inputs), True, []
    except Exception as err:  # noqa: BLE001 - convert_to_constants raises ValueError, InvalidArgumentError, ...
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        return concrete, False, [f"variables kept (freezing failed: {first})"]


def infos(pairs: list[tuple[str, Any]]) -> list[TensorInfo]:
    """TensorInfos with unique signature keys, from (name, TensorSpec or None) pairs."""
    result, seen = [], set()
    for name, spec in pairs:
        key = signature_key(name)
        while key in seen:
            key += "_"
        seen.add(key)
        shape = tuple(None if d is None else int(d) for d in spec.shape) if spec is not None else ()
        result.append(TensorInfo(name, key, shape, spec.dtype.name if spec is not None else "float32"))
    return result
