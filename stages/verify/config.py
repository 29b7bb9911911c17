"""A variant's gates (`conf/gates/*.yaml` presets, taken by each `conf/variants/*.yaml`)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

from stages.settings import BadSetting


@dataclass
class Gates:
    """Limits a variant must meet to pass; null disables a gate."""

    max_accuracy_drop: Optional[float] = None
    min_argmax_agreement: Optional[float] = None
    # Multi-label outputs: share of per-label decisions (score >= 0.5) made as the original model makes them.
    min_label_agreement: Optional[float] = None
    # Absolute limits, in the output's own units: no preset sets them (a limit right for probabilities fails
    # pixel boxes on rounding); they read the outputs judged element-wise (class scores, multi-label, regression).
    max_rmse: Optional[float] = None
    max_abs_err: Optional[float] = None
    # RMSE divided by the reference output's standard deviation: scale-free, for regression/embedding outputs.
    max_relative_rmse: Optional[float] = None
    # Detection models: fraction of the original model's detections matched (same label, IoU >= 0.5).
    min_detection_match: Optional[float] = None
    # Detection models: the candidate's detections that match none of the original's, per original detection
    # (against an empty reference, every confident candidate counts): the false positives a variant adds.
    max_unmatched_fraction: Optional[float] = None
    # The error gates (max_rmse, max_relative_rmse, max_abs_err) also pass an output whose error is within this
    # multiple of the original model's own rounding noise (how far it moves when its inputs move by one float
    # step; at most 10x the limit). The report notes every pass it makes. null: the limits as configured.
    rounding_noise_factor: Optional[float] = 3.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None:
                continue
            # A fraction's floor above 1 cannot be met: allowed, as the way to make a gate fail on purpose (an
            # alert's dry run); a negative limit is a typo.
            if value < 0:
                raise BadSetting(item.name, value, " must be 0 or more; null disables the gate.")


@dataclass
class VerifyConfig:
    """How long a variant's verification may take (`conf/verify/default.yaml`): a variant that would need more
    than `max_seconds` for the whole evaluation set, on one interpreter per core (stages/verify/budget.py), is
    verified on its first samples, never fewer than `min_samples`, and the report says so. null: always the whole
    set."""

    max_seconds: Optional[float] = 120.0
    min_samples: int = 200

    def __post_init__(self) -> None:
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise BadSetting("max_seconds", self.max_seconds, " must be above 0, or null for the whole set.")
        if self.min_samples < 1:
            raise BadSetting("min_samples", self.min_samples, " must be at least 1.")
