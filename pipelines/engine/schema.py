"""Structured-config schemas behind every config group.

Hydra validates each YAML file against these dataclasses at compose time, so a typo in a key
(`model.pth=...`) or an enum value (`variants.int8.mode=int4`) fails before any TensorFlow work, with
exit code 2. Keep them pure data: no I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class ModelFormat(str, Enum):
    keras = "keras"
    saved_model = "saved_model"
    frozen_graph = "frozen_graph"


class DatasetKind(str, Enum):
    digits = "digits"
    npz = "npz"
    random = "random"


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


class SplitMode(str, Enum):
    auto = "auto"
    none = "none"
    manual = "manual"


@dataclass
class ModelConfig:
    # Default: the model file's (or directory's) name without extension.
    name: Optional[str] = None
    format: ModelFormat = ModelFormat.keras
    path: Optional[str] = None
    # Dotted path of a function `build(path: str, **build_args) -> None` that creates the model file when
    # `path` does not exist yet (the bundled examples); its source is part of the cache key.
    build: Optional[str] = None
    build_args: dict[str, Any] = field(default_factory=dict)
    # Frozen graphs only: tensor names (with or without ':0').
    inputs: Optional[list[str]] = None
    outputs: Optional[list[str]] = None
    # {name: [dims]}: frozen graphs' static shapes; for every format, fixes unknown dims (spatial size, sequence
    # length) before conversion, else they come from the dataset's shape. Typed Any: OmegaConf 2.3 cannot
    # merge an override dict into a None Optional[dict] field.
    input_shapes: Any = None
    # SavedModel only.
    signature: str = "serving_default"
    # Keras only: refuse Lambda layers and other arbitrary code unless the user opts in.
    safe_mode: bool = True
    # The numpy tail matching this model's cut-off post-processing ({_target_, ...kwargs}); used when
    # `split.postprocess` is not set. Typed Any for the same OmegaConf reason as input_shapes.
    postprocess: Any = None
    # Bundled examples only: the data they are meant for, used instead of the default `dataset=digits`
    # (e.g. {kind: random, num_samples: 64}). Any explicit non-digits dataset wins.
    example_dataset: Any = None


@dataclass
class DatasetConfig:
    name: str = MISSING
    kind: DatasetKind = DatasetKind.digits
    path: Optional[str] = None
    # Name of the model output that holds class scores (for accuracy and argmax agreement); default: among the
    # outputs shaped like class scores, the one whose width fits the labels (the report says which was chosen).
    label_output: Optional[str] = None
    # Fraction of the data held out for evaluation (npz/random); digits uses its own held-out test split.
    eval_fraction: float = 0.5
    max_eval_samples: int = 1000
    # npz/random: which samples are held out for evaluation (and, for random, the noise itself).
    # `calibrate.seed` then picks the calibration samples from the rest.
    seed: int = 0
    # random only: how many samples to generate.
    num_samples: int = 256


@dataclass
class Gates:
    """Limits a variant must meet to pass; null disables a gate."""

    max_accuracy_drop: Optional[float] = None
    min_argmax_agreement: Optional[float] = None
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


@dataclass
class SplitConfig:
    mode: SplitMode = SplitMode.auto
    # manual: tensor names to cut at (they become the head's outputs).
    outputs: Optional[list[str]] = None
    # Numpy tail: `{_target_: pkg.module.fn, ...kwargs}`; `_target_: null` runs the cut-off subgraph with
    # TensorFlow. Declared with its `_target_` key so `split.postprocess._target_=pkg.fn` works without `+`
    # (add keyword arguments with `+split.postprocess.name=value`). Typed Any: OmegaConf 2.3 cannot merge an
    # override dict into a None Optional[dict] field.
    postprocess: Any = field(default_factory=lambda: {"_target_": None})


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: str = "sqlite:///mlflow.db"
    # Default: the model's name (one experiment per model).
    experiment: Optional[str] = None


class RegistryObjective(str, Enum):
    size = "size"  # smallest .tflite file
    latency = "latency"  # lowest p50 latency
    accuracy = "accuracy"  # highest accuracy on the evaluation data


@dataclass
class RegistryConfig:
    """MLflow model registry for scheduled jobs; `name: null` disables it."""

    name: Optional[str] = None
    # How the best variant is chosen among those that pass their gates (ties: smaller file).
    objective: RegistryObjective = RegistryObjective.size
    alias: str = "champion"
    # Accuracy the candidate may lose against the current champion on the same evaluation data; null: no check.
    max_regression: Optional[float] = 0.0


@dataclass
class CalibrateConfig:
    num_samples: int = 100
    # Picks the calibration samples from the data not held out for evaluation (every dataset kind).
    seed: int = 0
    # Also quantize with a second, disjoint calibration subset and report each metric's spread.
    stability: bool = False
    # Labelled samples from the calibration pool, outside calibration and evaluation, that int8_mixed judges on.
    holdout_samples: int = 300


@dataclass
class QuantizationConfig:
    """Per-layer statistics of int8/int16x8 variants (tf.lite.experimental.QuantizationDebugger)."""

    debugger: bool = True
    # Calibration samples the debugger runs (bounded: it invokes an instrumented model once per sample).
    debug_samples: int = 32


@dataclass
class BenchmarkConfig:
    """LiteRT timing in a fresh process per thread count; see docs/benchmarks.md."""

    enabled: bool = True
    # An int, or a list of ints to time each (`'benchmark.num_threads=[1,2,4]'`); the first is the headline.
    num_threads: Any = 1
    use_xnnpack: bool = True
    warmup: int = 10
    # Timed invokes continue until both are reached, unless max_seconds of timing is spent first.
    min_runs: int = 50
    min_seconds: float = 0.5
    max_seconds: float = 20.0


@dataclass
class RuntimeConfig:
    """How the engine executes stages."""

    cache_dir: str = "outputs/cache"
    use_cache: bool = True
    # Seconds a single stage may run in the worker process before it is killed.
    stage_timeout_s: float = 1800.0
    # The worker is replaced after a stage once it holds more than this (TensorFlow keeps what conversions
    # allocated); null never replaces it.
    worker_max_rss_mb: Optional[float] = 2000.0
    debug: bool = False


@dataclass
class StageSpec:
    _target_: str = MISSING
    needs: list[str] = field(default_factory=list)
    per_variant: bool = False
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineConfig:
    stages: dict[str, StageSpec] = field(default_factory=dict)


@dataclass
class Config:
    model: ModelConfig = MISSING
    dataset: DatasetConfig = MISSING
    variants: dict[str, VariantConfig] = field(default_factory=dict)
    split: SplitConfig = field(default_factory=SplitConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    calibrate: CalibrateConfig = field(default_factory=CalibrateConfig)
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)


def register_configs() -> None:
    """Register the root schema; conf/config.yaml lists it first in its defaults, so every group is typed."""
    ConfigStore.instance().store(name="config_schema", node=Config)
