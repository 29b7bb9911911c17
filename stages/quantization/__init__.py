"""Quantization backends and searches beyond the converter's one-scheme-per-model options."""
