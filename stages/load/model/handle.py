"""The handle every source format becomes: a TF function with named inputs and outputs keyed by output name."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from stages.load.batch_axis import (
    UNKNOWN,
    describe,
    input_axis,
    output_axis,
    probe_outputs,
    to_model,
    to_samples,
)
from stages.load.batch_axis import batch_size as inputs_batch
from stages.result import InputError, StageError


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
    # Which axis holds the samples (stages/load/batch_axis.py); None: none; UNKNOWN until the handle finds it.
    batch_axis: int | None = UNKNOWN

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key": self.key,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "batch_axis": self.batch_axis,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TensorInfo:
        return cls(data["name"], data["key"], tuple(data["shape"]), data["dtype"], data.get("batch_axis", UNKNOWN))


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

    def __post_init__(self) -> None:
        """Batch axes from the signature (stages/load/batch_axis.py); outputs it leaves open wait for a probe."""
        self.inputs = [
            i if i.batch_axis != UNKNOWN else replace(i, batch_axis=input_axis(i.shape)) for i in self.inputs
        ]
        batch = inputs_batch(self.inputs)
        self.outputs = [
            o if o.batch_axis != UNKNOWN else replace(o, batch_axis=output_axis(o.shape, batch)) for o in self.outputs
        ]

    def adopt_axes(self, recorded: dict[str, int | None]) -> None:
        """Take the batch axes the load stage recorded, so every process batches as the report says."""
        fix = lambda t: t if recorded.get(t.name, UNKNOWN) == UNKNOWN else replace(t, batch_axis=recorded[t.name])  # noqa: E731
        self.inputs, self.outputs = [fix(i) for i in self.inputs], [fix(o) for o in self.outputs]

    def resolve_axes(self, feeds: dict[str, np.ndarray]) -> list[str]:
        """Probe the outputs whose batch axis the signature leaves open, on the first samples of `feeds`
        (batch-first); returns notes saying what was found."""
        open_ = [o.name for o in self.outputs if o.batch_axis == UNKNOWN]
        if not open_:
            return []
        dynamic = inputs_batch(self.inputs) is None
        first = {k: np.concatenate([v[:2]] * 2)[:2] if dynamic else v[:1] for k, v in feeds.items()}
        try:
            found = probe_outputs(self._invoke, first, dynamic)
        except Exception as err:  # noqa: BLE001 - the probe is a diagnostic; the run itself reports the error
            found, why = {}, (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            notes = [f"batch axis of {open_} assumed 0: probing the model failed ({why})"]
        else:
            notes = [f"output '{n}': {describe(found.get(n, 0))}, found by a probe (1 vs 2 samples)" for n in open_]
        self.adopt_axes({n: found.get(n, 0) for n in open_})
        return notes

    def _invoke(self, chunk: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One call of the model on batch-first samples; outputs in the model's own layout, keyed by name."""
        import tensorflow as tf

        function = self.live if self.live is not None else self.fn
        given = {i.name: to_model(chunk[i.name], i.batch_axis) for i in self.inputs}
        try:
            result = function(*[tf.constant(given[i.name]) for i in self.inputs])
        except Exception as err:  # noqa: BLE001 - TF raises ValueError, TypeError, InvalidArgumentError, ...
            raise InputError(shape_error(err, self.inputs, given)) from None
        return {o.name: np.asarray(result[o.key]) for o in self.outputs}

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
        """Run the original model on batch-first numpy inputs keyed by input name; batch-first outputs keyed by
        output name. Each chunk is moved to the model's layout (batch on each tensor's own axis) and back."""
        self.resolve_axes(feeds)
        count = len(next(iter(feeds.values())))
        chunks: dict[str, list[np.ndarray]] = {o.name: [] for o in self.outputs}
        fixed = inputs_batch(self.inputs)
        unbatched = any(t.batch_axis is None for t in [*self.inputs, *self.outputs])
        step = 1 if unbatched else (fixed or batch_size)
        for start in range(0, count, step):
            chunk = {k: v[start : start + step] for k, v in feeds.items()}
            result = self._invoke(chunk)
            size = len(next(iter(chunk.values())))
            for out in self.outputs:
                part = to_samples(result[out.name], out.batch_axis)
                if len(part) != size:
                    raise StageError(
                        f"The model's output '{out.name}' has shape {list(result[out.name].shape)} for {size} "
                        f"samples: its {describe(out.batch_axis)} (from the signature {list(out.shape)}) does not "
                        "hold the samples. Export the model with the batch on a dim of its own, or report this "
                        "message with the model's signature."
                    )
                chunks[out.name].append(part)
        return {name: np.concatenate(parts) for name, parts in chunks.items()}

    def with_shapes(self, shapes: dict[str, tuple[int | None, ...]]) -> ModelHandle:
        """The same function traced for more specific input shapes (fixed spatial dims, batch 1)."""
        if all(tuple(shapes.get(i.name, i.shape)) == tuple(i.shape) for i in self.inputs):
            return self
        inputs = [replace(i, shape=tuple(shapes.get(i.name, i.shape))) for i in self.inputs]
        if self.retrace is not None:  # trace the source model itself for the shapes (it stays lazily frozen)
            return self.retrace(shapes)
        return replace(self, _fn=_reshaped(self.fn, inputs), inputs=inputs, live=None, export=None)


def shape_error(err: BaseException, inputs: list[TensorInfo], given: dict[str, np.ndarray]) -> str:
    """One paragraph for the model failing on the data: TF's first line, then the input(s) whose shape is
    suspect (given a shape its signature does not take, or named in TF's message), expected vs given."""
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]

    def fits(info: TensorInfo) -> bool:
        shape = np.shape(given[info.name])
        return len(shape) == len(info.shape) and all(
            e is None or e == g for e, g in zip(info.shape, shape, strict=True)
        )

    suspects = [i for i in inputs if not fits(i)] or [i for i in inputs if i.name in first or i.key in first] or inputs
    shown = "; ".join(
        f"input '{i.name}' expects {['?' if d is None else d for d in i.shape]} ({describe(i.batch_axis)}) and was "
        f"given {list(np.shape(given[i.name]))}"
        for i in suspects
    )
    return (
        f"The original model failed on the data ({type(err).__name__}: {first}). {shown}. Check that the dataset's "
        "samples have the shapes the model takes (one sample per row of each input, or the model's own layout "
        "with the sample count on its batch axis), or fix unknown dims with `model.input_shapes`."
    )


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
