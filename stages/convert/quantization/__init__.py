"""Quantization backends and repair, all run inside the convert stage (so in the engine's worker process).

`aeq`: LiteRT's AI Edge Quantizer backend (recipes on the fp32 .tflite); `aeq_convert`: its conversion path.
`repair`: per-op repair of a variant that fails for a few ops without a kernel at its precision.
`debugger`: per-layer error table of int8/int16x8 variants (tf.lite.experimental.QuantizationDebugger).
`stage`: what convert calls: the table, the calibration stability check, and the int8_mixed conversion.
`mixed_search`: the search over moves, judged by `judge` (the same compare + gates as verification).
`moves`: moves and the converter backend; `aeq_moves`: moves through the AI Edge Quantizer backend (`aeq`).
"""
