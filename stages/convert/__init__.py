"""The convert stage: the TFLite converter (`converter_settings`: one variant's flags; `converter`: the roads and
the converter's errors; `calibrated`: one calibration per run for every full-integer variant), the per-variant
applicability checks and the quantization backends with the mixed-precision search (quantization/).
"""
