"""A user's .npz in either layout, stored batch-first: samples first (`[N, 2, 128]`), or the model's own layout
with the sample count on the input's batch axis (`[2, N, 128]` for Silero's state, stages/load/batch_axis.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from stages.load.batch_axis import describe, sample_shape
from stages.load.shapes import axis_of
from stages.result import InputError


def _fits(dims: Sequence[int | None], expected: Sequence[int | None]) -> bool:
    return len(dims) == len(expected) and all(e is None or e == d for e, d in zip(expected, dims, strict=True))


def batch_first(
    feeds: dict[str, np.ndarray], inputs: list[dict[str, Any]], source: str
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
    """The arrays with samples on axis 0, and for each input whose batch is not on axis 0, where the data had
    it ({"batch_axis": the model's, "data_axis": 0 or the model's}). The sample count is the one of the inputs
    batched on axis 0; when the two layouts fit the same array (N equal to a fixed dim), the model's is read."""
    count = next((len(feeds[i["name"]]) for i in inputs if axis_of(i) == 0 and np.ndim(feeds[i["name"]])), None)
    arrays, layouts = dict(feeds), {}
    for spec in inputs:
        name, shape, axis = spec["name"], list(spec["shape"]), axis_of(spec)
        if not axis:  # axis 0 (batch-first already) or no batch axis (samples stacked on a new axis 0)
            continue
        array = np.asarray(feeds[name])
        sample = sample_shape(shape, axis)
        model_layout = array.ndim == len(shape) and _fits(sample_shape(array.shape, axis), sample)
        model_layout = model_layout and (count is None or array.shape[axis] == count)
        samples_first = _fits(array.shape[1:], sample) and (count is None or len(array) == count)
        if not (model_layout or samples_first):
            dims = ["?" if d is None else d for d in sample]
            model_dims = [*dims[:axis], "N", *dims[axis:]]
            raise InputError(
                f"The dataset {source} gives input '{name}' an array of shape {list(array.shape)}, but the model "
                f"takes {['?' if d is None else d for d in shape]} ({describe(axis)}): give it in the model's "
                f"layout {model_dims} or samples first {['N', *dims]}, with N the sample count"
                + (f" ({count}, as the other inputs)." if count is not None else ".")
            )
        arrays[name] = np.moveaxis(array, axis, 0) if model_layout else array
        layouts[name] = {"batch_axis": axis, "data_axis": axis if model_layout else 0}
    return arrays, layouts
