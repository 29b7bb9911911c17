"""A variant (`conf/variants/*.yaml`, group `variants`) and the per-layer statistics (`conf/quantization/`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from stages.convert.schemes import BACKENDS, SCHEMES, backend_mismatch
from stages.settings import BadSetting
from stages.verify.config import Gates

# The modes and backends are the scheme table's (stages/convert/schemes.py): a new scheme is one entry there, and
# Hydra then accepts its mode here without a second list.
QuantMode = Enum("QuantMode", {mode: mode for mode in SCHEMES}, type=str)  # type: ignore[misc]
Backend = Enum("Backend", {backend: backend for backend in BACKENDS}, type=str)  # type: ignore[misc]


class WeightGranularity(str, Enum):
    CHANNELWISE = "CHANNELWISE"
    BLOCKWISE_32 = "BLOCKWISE_32"
    BLOCKWISE_64 = "BLOCKWISE_64"
    BLOCKWISE_128 = "BLOCKWISE_128"
    BLOCKWISE_256 = "BLOCKWISE_256"


class IODtype(str, Enum):
    float32 = "float32"
    int8 = "int8"
    uint8 = "uint8"
    int16 = "int16"


class SearchStrategy(str, Enum):
    greedy = "greedy"  # end-metric driven, candidates ordered by the per-layer table (docs/quantization.md)
    ranking = "ranking"  # the debugger's RMSE/scale order only, kept for comparison


class SearchBackend(str, Enum):
    converter = "converter"  # keep ops in float: QuantizationDebugOptions(denylisted_nodes=...)
    aeq = "aeq"  # AI Edge Quantizer recipes: a tensor to int16 activations, or to float


@dataclass
class SearchConfig:
    """int8_mixed: which ops to keep in float until the variant's gates pass, within a budget."""

    strategy: SearchStrategy = SearchStrategy.greedy
    max_trials: int = 16
    # Fraction of the model's weight elements that may stay float.
    max_float_fraction: float = 0.5
    # greedy: candidates tried per step.
    beam: int = 4
    # Backends searched in turn, each with the whole budget; the smallest passing model wins.
    backends: list[SearchBackend] = field(default_factory=lambda: [SearchBackend.converter])
    # The limits the search aims at: the variant's gates (conf/variants/int8_mixed.yaml interpolates them), a copy
    # because gates stay out of what stages receive; the variant's verdict still comes from the engine's judge.
    gates: Any = None

    def __post_init__(self) -> None:
        if self.max_trials < 1:
            raise BadSetting("max_trials", self.max_trials, " must be at least 1 (conversions the search may try).")
        if self.beam < 1:
            raise BadSetting("beam", self.beam, " must be at least 1 (candidates tried per step).")
        if not 0 < self.max_float_fraction <= 1:
            raise BadSetting(
                "max_float_fraction",
                self.max_float_fraction,
                " must lie in (0, 1]: the share of the model's weights that may stay float.",
            )


@dataclass
class VariantConfig:
    mode: QuantMode = QuantMode["fp32"]
    # Full-integer variants only: dtype of the model's inputs and outputs.
    io_dtype: IODtype = IODtype.float32
    # Full-integer variants only: let ops without an integer kernel stay in float (between quantize and
    # dequantize ops) instead of refusing the variant; the report lists them.
    allow_float_ops: bool = False
    # Per-op repair: when ops have no kernel at the variant's precision (int16x8 stops on SQRT, LiteRT refuses
    # one of AEQ's int16 depthwise convs), rebuild with them moved to a precision that runs (the scheme's `repair`,
    # stages/convert/schemes.py), in at most this many rebuilds, and list them in the report; 0: fail naming the
    # op. The converter moves every kernel-less op in one rebuild; AEQ one op per rebuild, each a full quantization.
    repair_budget: int = 32
    gates: Gates = field(default_factory=Gates)
    backend: Backend = Backend["converter"]
    # backend aeq, mode recipe: path of the AEQ recipe JSON (docs/quantization.md); its content is in the cache key.
    recipe: Optional[str] = None
    # backend aeq, built-in modes: how weights are scaled (per output channel, or per block of N values).
    granularity: WeightGranularity = WeightGranularity.CHANNELWISE
    # int8_mixed only: search for ops to keep in float (null: plain conversion).
    search: Optional[SearchConfig] = None

    def __post_init__(self) -> None:
        if self.repair_budget < 0:
            raise BadSetting("repair_budget", self.repair_budget, " must be 0 (no repair) or more (rebuilds).")
        wrong = backend_mismatch(self.mode.value, self.backend.value)
        if wrong:
            raise BadSetting("backend", self.backend, f": {wrong}")
        if self.search is not None and (self.mode != QuantMode["int8"] or self.io_dtype != IODtype.float32):
            raise BadSetting(
                "mode",
                self.mode,
                f" with io_dtype {self.io_dtype.value}: the search for ops to keep in float starts from int8 "
                "with float input/output. Set mode=int8 and io_dtype=float32, or remove the `search` block.",
            )


@dataclass
class QuantizationConfig:
    """Per-layer statistics of int8/int16x8 variants (tf.lite.experimental.QuantizationDebugger)."""

    debugger: bool = True
    # Calibration samples the debugger runs (bounded: it invokes an instrumented model once per sample).
    debug_samples: int = 32
    # ... and the seconds they may take: an instrumented model runs without XNNPACK (int16x8: reference kernels),
    # seconds a sample on a large model. After this long the table is made from the samples run (at least 4).
    debug_max_seconds: Optional[float] = 30.0

    def __post_init__(self) -> None:
        if self.debug_samples < 1:
            raise BadSetting("debug_samples", self.debug_samples, " must be at least 1 (samples the debugger runs).")
        if self.debug_max_seconds is not None and self.debug_max_seconds <= 0:
            raise BadSetting("debug_max_seconds", self.debug_max_seconds, " must be above 0, or null for no limit.")
