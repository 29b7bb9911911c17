"""The verify and reference stages: the full-precision reference outputs, the comparison metrics (detection included)."""
