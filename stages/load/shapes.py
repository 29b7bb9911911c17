"""Fixed input shapes for conversion: unknown non-batch dims come from `model.input_shapes` or the data.

A TFLite model with unknown spatial or sequence dims converts, but XNNPACK cannot reshape it at run time and
the benchmark fails; so every unknown dim except the batch is fixed before conversion, and the convert
stage records the shapes it used. The batch is each input's own batch axis (stages/load/batch_axis.py: a state
`[2, None, 128]` keeps its axis 1 open), and the data, batch-first, gives one sample's dims.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stages.load.batch_axis import UNKNOWN, input_axis, with_batch
from stages.result import InputError


def axis_of(spec: dict[str, Any]) -> int | None:
    """An input's batch axis as the load stage recorded it (found from its shape for entries without one)."""
    axis = spec.get("batch_axis", UNKNOWN)
    return input_axis(spec["shape"]) if axis == UNKNOWN else axis


def batch_one(inputs: list[dict[str, Any]], shapes: dict[str, list[int | None]]) -> dict[str, list[int | None]]:
    """The shapes with batch 1 at each input's batch axis (recurrent layers convert to fused kernels only so)."""
    axes = {spec["name"]: axis_of(spec) for spec in inputs}
    return {name: with_batch(shape, axes.get(name, 0), 1) for name, shape in shapes.items()}


def fixed_shapes(
    inputs: list[dict[str, Any]], overrides: dict[str, Any] | None, data: dict[str, np.ndarray] | None
) -> dict[str, list[int | None]]:
    """{input name: shape} with every non-batch dim known; the batch dim (at the input's batch axis) stays as the
    model has it.

    `overrides` is `model.input_shapes` ({name: [dims]}, batch included; -1/null leaves a dim as is).
    """
    shapes: dict[str, list[int | None]] = {}
    for spec in inputs:
        name, shape = spec["name"], list(spec["shape"])
        given = (overrides or {}).get(name)
        if given is not None:
            if len(given) != len(shape) or any(
                g is not None and g >= 0 and s is not None and g != s for g, s in zip(given, shape, strict=True)
            ):
                raise InputError(
                    f"`model.input_shapes` gives input '{name}' the shape {list(given)}, but the model's input is "
                    f"{['?' if d is None else d for d in shape]}. Give one value per dim (unknown '?' dims may be "
                    "fixed), or drop the entry."
                )
            shape = [s if g is None or g < 0 else int(g) for g, s in zip(given, shape, strict=True)]
        axis = axis_of(spec)
        open_dims = [a for a, d in enumerate(shape) if d is None and a != axis]
        if open_dims:
            if data is not None and name in data:
                positions = [a for a in range(len(shape)) if a != axis]  # the data is batch-first: one sample's
                for a, size in zip(positions, np.shape(data[name])[1:], strict=False):  # dims, in order
                    shape[a] = int(size) if shape[a] is None else shape[a]
            else:
                raise InputError(
                    f"Input '{name}' has unknown dims {['?' if d is None else d for d in shape]} and no data fixes "
                    f"them. Give them with `'model.input_shapes={{{name}: [1, ...]}}'`, or use a dataset "
                    "(`dataset=npz dataset.path=...`) whose samples have the shape you will run."
                )
        shapes[name] = shape
    return shapes
