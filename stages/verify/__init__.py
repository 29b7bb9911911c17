"""The verify and reference stages: the full-precision reference outputs and the comparison metrics
(detection metrics included).
"""
