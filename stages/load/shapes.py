"""Fixed input shapes for conversion: unknown non-batch dims come from `model.input_shapes` or the data.

A TFLite model with unknown spatial or sequence dims converts, but XNNPACK cannot reshape it at run time and
the benchmark fails; so every unknown dim except the batch is fixed before conversion, and the convert
stage records the shapes it used.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stages.result import InputError


def fixed_shapes(
    inputs: list[dict[str, Any]], overrides: dict[str, Any] | None, data: dict[str, np.ndarray] | None
) -> dict[str, list[int | None]]:
    """{input name: shape} with every non-batch dim known; the batch dim stays as the model has it.

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
        if any(d is None for d in shape[1:]):
            if data is not None and name in data:
                sample = np.shape(data[name])[1:]
                shape = [shape[0], *(s if s is not None else int(d) for s, d in zip(shape[1:], sample, strict=False))]
            else:
                raise InputError(
                    f"Input '{name}' has unknown dims {['?' if d is None else d for d in shape]} and no data fixes "
                    f"them. Give them with `'model.input_shapes={{{name}: [1, ...]}}'`, or use a dataset "
                    "(`dataset=npz dataset.path=...`) whose samples have the shape you will run."
                )
        shapes[name] = shape
    return shapes
