"""The convert stage: the TFLite converter, the per-variant applicability checks and the quantization
backends with the mixed-precision search (quantization/).
"""
