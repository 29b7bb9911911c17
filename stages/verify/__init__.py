"""The verify and reference stages: the full-precision reference outputs, the comparison metrics (detection
metrics included; `candidate.py` is the one comparison), and the one judge (gates, verdicts: `gates.py`, `judge.py`).
"""
