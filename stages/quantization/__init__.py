"""Quantization insight and repair: per-layer debugger statistics, calibration stability, the int8_mixed search.

`debugger` runs tf.lite.experimental.QuantizationDebugger once per integer variant; `mixed_search` drives a
search over "moves" (keep an op in float, ...) to the variant's gates; `stability` re-quantizes with a second,
disjoint calibration subset. All of it runs inside the convert stage, so in the engine's worker process.
"""
