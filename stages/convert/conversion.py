"""What a conversion path hands back to the convert stage, which turns it into the one StageResult shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Conversion:
    """A `.tflite` a conversion path wrote as `files["tflite"]` in the stage folder, and what only that path knows.

    The stage adds what every path shares: meta `variant`, `io`, `contents`, `names` (then `meta`), metrics
    `size_bytes`, `convert_s` (then `metrics`), and checks the model against its scheme unless `checked` is off.
    """

    names: dict[str, str]  # signature key -> original tensor name
    seconds: float  # `convert_s`: the whole path, calibration and search included
    files: dict[str, str]
    meta: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    checked: bool = True  # AEQ models may have integer I/O read with their own scales: not the converter's promise
    kept_float: bool = False  # the path chose to keep some ops in float: not a failure of a full-integer scheme
