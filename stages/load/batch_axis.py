"""Which axis of each model input and output holds the samples, and the moves between layouts.

Inside the pipeline every sample array is batch-first (axis 0 = sample: the calibration and evaluation files,
the reference outputs, the metrics, a single sample sliced for latency). Models do not all agree: an onnx2tf
CTC recognizer returns `[T, batch, classes]`, Silero VAD's LSTM state is `[2, batch, 128]`. So each input's and
output's batch axis is found once, when the model is loaded (from its signature, or a probe where the signature
cannot say), recorded in the load stage's meta (and report.json), and arrays are moved only at the model's
boundary: `ModelHandle.run`, `SignatureModel`, the converter's representative samples and the timing inputs.

`None` means the tensor has no batch axis (a scalar input, or an output of a fixed-batch model that drops it):
such a model runs one sample per call and its outputs are stacked along a new axis 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Shape = Sequence[int | None]
# A TensorInfo whose axis the signature leaves open (several unknown dims, or none): a probe decides.
UNKNOWN = -1


def input_axis(shape: Shape) -> int | None:
    """Axis 0 when it is unknown or 1 (batch-first, dynamic or exported with batch 1); else the unknown dim (a
    state `[2, None, 128]`); else the first dim of size 1 (`[2, 1, 128]`, exported with batch 1); else 0."""
    if not len(shape):
        return None
    if shape[0] is None or shape[0] == 1:
        return 0
    unknown = [axis for axis, dim in enumerate(shape) if dim is None]
    ones = [axis for axis, dim in enumerate(shape) if dim == 1]
    return (unknown or ones or [0])[0]


def batch_size(inputs: Sequence[Any]) -> int | None:
    """The inputs' batch size: None when any input's batch dim is dynamic (the usual case)."""
    sizes = [i.shape[i.batch_axis] for i in inputs if i.batch_axis not in (None, UNKNOWN)]
    return None if not sizes or any(s is None for s in sizes) else int(sizes[0])


def output_axis(shape: Shape, batch: int | None) -> int | None:
    """From the output's signature: with a dynamic batch, its one unknown dim (`[T, None, C]` -> 1) or UNKNOWN
    when there are several or none; with a fixed batch `b`, the first dim of size b (`[T?, 1, C]` -> 1, as
    onnx2tf's CTC outputs), UNKNOWN when an unknown dim might be it, else None (no batch axis). An empty shape
    is an unknown rank (a frozen graph's output): batch-first, as the pipeline always assumed."""
    if not len(shape):
        return 0
    unknown = [axis for axis, dim in enumerate(shape) if dim is None]
    if batch is None:
        return unknown[0] if len(unknown) == 1 else UNKNOWN
    sized = [axis for axis, dim in enumerate(shape) if dim == batch]
    if sized:
        return sized[0]
    return UNKNOWN if unknown else None


def probe_outputs(
    run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], feeds: dict[str, np.ndarray], dynamic: bool
) -> dict[str, int | None]:
    """Each output's batch axis seen on the model itself: with a dynamic batch, the axis that grows from one
    sample to two; with a fixed one, the first axis of size 1 in a one-sample run (None: there is none).
    `feeds`: batch-first samples (at least 2 when dynamic); `run` takes and returns model-layout arrays keyed
    by output name."""
    one = {name: np.asarray(v) for name, v in run({k: a[:1] for k, a in feeds.items()}).items()}
    if not dynamic:
        return {name: next((a for a, d in enumerate(v.shape) if d == 1), None) for name, v in one.items()}
    two = {name: np.asarray(v) for name, v in run({k: a[:2] for k, a in feeds.items()}).items()}
    found: dict[str, int | None] = {}
    for name, value in one.items():
        grew = [a for a, (x, y) in enumerate(zip(value.shape, two[name].shape, strict=False)) if (x, y) == (1, 2)]
        found[name] = grew[0] if len(grew) == 1 else (0 if value.ndim else None)
    return found


def to_model(array: np.ndarray, axis: int | None) -> np.ndarray:
    """Batch-first samples -> the model's layout (a tensor without batch axis takes one sample, unbatched)."""
    if axis is None:
        if len(array) != 1:
            raise ValueError(f"a tensor without batch axis takes one sample per call, not {len(array)}")
        return array[0]
    return np.moveaxis(array, 0, axis) if axis else array


def to_samples(array: np.ndarray, axis: int | None) -> np.ndarray:
    """The model's layout -> batch-first (a tensor without batch axis is one sample)."""
    if axis is None:
        return array[None]
    return np.moveaxis(array, axis, 0) if axis else array


def sample_shape(shape: Shape, axis: int | None) -> list[int | None]:
    """One sample's dims: the shape without its batch axis."""
    return [d for a, d in enumerate(shape) if a != axis]


def with_batch(shape: Shape, axis: int | None, size: int | None) -> list[int | None]:
    """The shape with its batch dim set to `size` (unchanged when the tensor has no batch axis)."""
    return [size if a == axis else d for a, d in enumerate(shape)]


def one_sample_each(feeds: dict[str, np.ndarray], axes: dict[str, int | None]) -> list[dict[str, np.ndarray]]:
    """Every sample alone in the model's layout (batch 1 at each input's batch axis): what the converter's
    representative dataset and the quantizers' calibration feed the model."""
    count = len(next(iter(feeds.values())))
    return [{n: to_model(a[i : i + 1], axes.get(n, 0)) for n, a in feeds.items()} for i in range(count)]


def axes_of(model_meta: dict[str, Any]) -> dict[str, int | None]:
    """{tensor name: batch axis} as the load stage recorded them (entries cached before axes read as 0); empty
    for a model config (a frozen graph's `model.inputs` lists names, not recorded tensors)."""
    tensors = [*(model_meta.get("inputs") or []), *(model_meta.get("outputs") or [])]
    return {t["name"]: t.get("batch_axis", 0) for t in tensors if isinstance(t, dict)}


def describe(axis: int | None) -> str:
    return "no batch axis (one sample per call)" if axis is None else f"batch on axis {axis}"
