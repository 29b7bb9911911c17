"""A TFLiteConverter set up for one variant: its scheme's flags, the representative dataset and the I/O types.

Every conversion of the converter backend starts here (a variant's, split's check, the shared calibration, the
per-layer debugger's), so one variant's settings mean the same converter everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from stages.convert.schemes import scheme
from stages.load.model.conversion_roads import plain_converter
from stages.result import StageError


def _representative(feeds: dict[str, np.ndarray], keys: dict[str, str], axes: dict[str, int | None]) -> Any:
    """One batch-first sample at a time, in the model's layout (batch 1 on each input's batch axis)."""
    from stages.load.batch_axis import one_sample_each

    def generate() -> Any:
        for sample in one_sample_each(feeds, axes):
            yield {keys[name]: array for name, array in sample.items()}

    return generate


def make_converter(
    handle: Any,
    variant: dict[str, Any],
    calib: dict[str, np.ndarray],
    workdir: Path | None = None,
    via: str | None = None,
) -> Any:
    """A TFLiteConverter configured for the variant's converter scheme (stages/convert/schemes.py).

    `via`: one of `roads(handle)`, the first by default (see the module docstring).
    """
    import tensorflow as tf

    converter = plain_converter(handle, workdir, via)
    mode, chosen = variant["mode"], scheme(variant["mode"])
    if chosen.optimize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if chosen.supported_types:
        converter.target_spec.supported_types = [getattr(tf, t) for t in chosen.supported_types]
    if chosen.ops_set:  # full integer: calibrated on the representative dataset
        converter.representative_dataset = _representative(
            calib, {i.name: i.key for i in handle.inputs}, {i.name: i.batch_axis for i in handle.inputs}
        )
        # allow_float_ops: ops without an integer kernel stay in float instead of failing the variant.
        converter.target_spec.supported_ops = [
            getattr(tf.lite.OpsSet, chosen.ops_set),
            *([tf.lite.OpsSet.TFLITE_BUILTINS] * bool(variant.get("allow_float_ops"))),
        ]
        io = variant.get("io_dtype", "float32")
        if io != "float32":
            if io not in chosen.io_dtypes:
                raise StageError(
                    f"Variant '{variant['name']}' asks for {io} input/output, but {mode} supports "
                    f"{chosen.io_dtypes} or float32. Set `variants.{variant['name']}.io_dtype` to one of those."
                )
            converter.inference_input_type = getattr(tf, io)
            converter.inference_output_type = getattr(tf, io)
    return converter
