"""The data (`conf/dataset/*.yaml`) and how calibration samples are drawn from it (`conf/calibrate/`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Optional

from omegaconf import MISSING

from stages.settings import BadSetting


class DatasetKind(str, Enum):
    digits = "digits"
    npz = "npz"
    random = "random"


@dataclass
class DatasetConfig:
    name: str = MISSING
    kind: DatasetKind = DatasetKind.digits
    path: Optional[str] = None
    # Name of the model output that holds class scores (for accuracy and argmax agreement); default: among the
    # outputs shaped like class scores, the one whose width fits the labels (the report says which was chosen).
    label_output: Optional[str] = None
    # What each model output holds, {output: kind}, where the classification from the reference's values is
    # wrong (the report's reference.output_kinds says what it found and why); kinds: class_scores, multilabel,
    # regression, boxes, packed_detections, yolo (stages/verify/output_kinds.py). An empty map, not null: OmegaConf
    # 2.3 cannot merge an override dict (`dataset.output_kinds={prob: regression}`) into a null field.
    output_kinds: dict[str, str] = field(default_factory=dict)
    # Fraction of the data held out for evaluation (npz/random); digits uses its own held-out test split.
    eval_fraction: float = 0.5
    max_eval_samples: int = 1000
    # npz/random: which samples are held out for evaluation (and, for random, the noise itself).
    # `calibrate.seed` then picks the calibration samples from the rest.
    seed: int = 0
    # random only: how many samples to generate.
    num_samples: int = 256

    def __post_init__(self) -> None:
        from stages.verify.output_kinds import KINDS

        unknown = {n: k for n, k in (self.output_kinds or {}).items() if k not in KINDS}
        if unknown:
            raise BadSetting(
                "output_kinds", unknown, f" names unknown kinds; each output's kind is one of {', '.join(KINDS)}."
            )
        if self.kind == DatasetKind.random and self.num_samples < 2:
            raise BadSetting(
                "num_samples",
                self.num_samples,
                ": random data needs at least 2 samples, one for calibration and one for evaluation. Set it to 2 "
                "or more; the default is 256.",
            )
        if not 0 < self.eval_fraction < 1:
            raise BadSetting(
                "eval_fraction",
                self.eval_fraction,
                " must lie strictly between 0 and 1: it is the share of the data held out for evaluation, the "
                "rest calibrates. The default is 0.5.",
            )
        if self.max_eval_samples < 1:
            raise BadSetting(
                "max_eval_samples",
                self.max_eval_samples,
                " leaves nothing to verify the variants on. Set it to at least 1; the default is 1000.",
            )


@dataclass
class CalibrateConfig:
    num_samples: int = 100
    # Picks the calibration samples from the data not held out for evaluation (every dataset kind).
    seed: int = 0
    # Also quantize with a second, disjoint calibration subset and report each metric's spread.
    stability: bool = False
    # Labelled samples from the calibration pool, outside calibration and evaluation, that int8_mixed judges on.
    holdout_samples: int = 300

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise BadSetting(
                "num_samples",
                self.num_samples,
                ": the variants need calibration samples (full-integer quantization derives every tensor's "
                "range from them). Set it to at least 1; the default is 100.",
            )
        if self.holdout_samples < 0:
            raise BadSetting(
                "holdout_samples", self.holdout_samples, " must be 0 or more (0: int8_mixed has none to judge on)."
            )
