"""The per-layer debugger's samples are bounded in time (`quantization.debug_max_seconds`): an instrumented model
runs off XNNPACK (int16x8 on reference kernels), seconds a sample on a large model, so the table is made from
the samples run by then, at least MIN_DEBUG_SAMPLES, and says how many."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np

from stages.convert.quantization.debugger import MIN_DEBUG_SAMPLES, DebugSamples

HANDLE = SimpleNamespace(inputs=[SimpleNamespace(name="x", batch_axis=0)])
CALIB = {"x": np.arange(20, dtype=np.float32).reshape(10, 2)}


def _consume(samples: DebugSamples, seconds_each: float) -> list[np.ndarray]:
    seen = []
    for sample in samples():
        time.sleep(seconds_each)  # the instrumented invoke between two samples
        seen.append(sample[0])
    return seen


def test_samples_stop_once_the_time_is_spent_but_never_below_the_minimum() -> None:
    samples = DebugSamples(HANDLE, CALIB, 8, max_seconds=0.05)
    seen = _consume(samples, 0.04)
    assert samples.used == len(seen) == MIN_DEBUG_SAMPLES
    np.testing.assert_array_equal(seen[1], CALIB["x"][1:2])  # one sample at a time, in order, batch 1
    assert samples.note() == f"{MIN_DEBUG_SAMPLES} of 8 calibration samples (quantization.debug_max_seconds=0.05)"


def test_without_a_limit_every_asked_sample_runs() -> None:
    samples = DebugSamples(HANDLE, CALIB, 32, max_seconds=None)
    assert len(_consume(samples, 0.0)) == samples.used == 10  # asked 32, the calibration set holds 10
    assert samples.note() == "10 calibration samples"
