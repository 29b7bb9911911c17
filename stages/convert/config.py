"""A variant (`conf/variants/*.yaml`, group `variants`) and the per-layer statistics (`conf/quantization/`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from stages.settings import BadSetting
from stages.verify.config import Gates


class QuantMode(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    dynamic = "dynamic"
    int8 = "int8"
    int16x8 = "int16x8"
    # AI Edge Quantizer only (backend: aeq): weight-only int8, dynamic int4, static int8 / int16 activations
    # with int8 weights, or the user's recipe file (`recipe`).
    w8 = "w8"
    w4 = "w4"
    a8w8 = "a8w8"
    a16w8 = "a16w8"
    recipe = "recipe"


class Backend(str, Enum):
    converter = "converter"  # the TFLite converter's post-training quantization
    aeq = "aeq"  # LiteRT's AI Edge Quantizer, applied to the fp32 .tflite by recipe


# The modes only the AI Edge Quantizer runs; every other mode belongs to the converter.
AEQ_MODES = (QuantMode.w8, QuantMode.w4, QuantMode.a8w8, QuantMode.a16w8, QuantMode.recipe)


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
    mode: QuantMode = QuantMode.fp32
    # Full-integer variants only: dtype of the model's inputs and outputs.
    io_dtype: IODtype = IODtype.float32
    # Full-integer variants only: let ops without an integer kernel stay in float (between quantize and
    # dequantize ops) instead of refusing the variant; the report lists them.
    allow_float_ops: bool = False
    gates: Gates = field(default_factory=Gates)
    backend: Backend = Backend.converter
    # backend aeq, mode recipe: path of the AEQ recipe JSON (docs/quantization.md); its content is in the cache key.
    recipe: Optional[str] = None
    # backend aeq, built-in modes: how weights are scaled (per output channel, or per block of N values).
    granularity: WeightGranularity = WeightGranularity.CHANNELWISE
    # int8_mixed only: search for ops to keep in float (null: plain conversion).
    search: Optional[SearchConfig] = None

    def __post_init__(self) -> None:
        wanted = Backend.aeq if self.mode in AEQ_MODES else Backend.converter
        if self.backend != wanted:
            raise BadSetting(
                "backend",
                self.backend,
                f": mode `{self.mode.value}` with backend `{self.backend.value}`; mode {self.mode.value} belongs "
                f"to the {wanted.value} backend (converter: fp32, fp16, dynamic, int8, int16x8; aeq: "
                f"{', '.join(m.value for m in AEQ_MODES)}). Set backend={wanted.value} or pick a mode of that "
                "backend.",
            )
        if self.search is not None and (self.mode != QuantMode.int8 or self.io_dtype != IODtype.float32):
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

    def __post_init__(self) -> None:
        if self.debug_samples < 1:
            raise BadSetting("debug_samples", self.debug_samples, " must be at least 1 (samples the debugger runs).")
