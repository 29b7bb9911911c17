"""The engine's own config schemas, the root `Config`, and where every group's schema is registered.

Each stage package declares its config in its own `config.py` (plain dataclasses, ranges checked in
`__post_init__`); the engine's settings (tracking, registry, runtime, the DAG) live here. Hydra validates each
YAML file against these dataclasses at compose time, so a typo in a key (`model.pth=...`) or an enum value
(`variants.int8.mode=int4`) fails before any TensorFlow work, with exit code 2; `validate` then builds the
typed objects, so a value out of its range fails the same way. Keep them pure data: no I/O here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from pipelines.engine.errors import ConfigError
from stages.benchmark.config import BenchmarkConfig
from stages.calibrate.config import CalibrateConfig, DatasetConfig
from stages.convert.config import QuantizationConfig, VariantConfig
from stages.load.config import ModelConfig
from stages.result import InputError
from stages.settings import BadSetting
from stages.split.config import SplitConfig
from stages.verify.config import Gates, VerifyConfig


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
class RuntimeConfig:
    """How the engine executes stages."""

    # A local path, or any fsspec URL shared by a cluster's nodes (`s3://bucket/prefix`; docs/sweeps.md).
    cache_dir: str = "outputs/cache"
    use_cache: bool = True
    # With a URL cache_dir: this node's working copy (null: outputs/cache), and how long a node's claim on an
    # entry it computes lasts without renewal (a dead node delays the others by at most this).
    local_cache_dir: Optional[str] = None
    lease_s: float = 300.0
    # An fsspec URL (or path) where each run also copies report.json/.md and variants/*/*.tflite; null: none.
    outputs_url: Optional[str] = None
    # Seconds a single stage may run in the worker process before it is killed.
    stage_timeout_s: float = 1800.0
    # The worker is replaced after a stage once it holds more than this (TensorFlow keeps what conversions
    # allocated); null never replaces it.
    worker_max_rss_mb: Optional[float] = 2000.0
    # Worker processes running independent stages side by side; null: the usable cores. Either way a second one
    # starts only when the first conversion's measured peak memory fits again (pipelines/engine/pool.py).
    workers: Optional[int] = None
    # Stages that run alone, nothing beside them: timing shares no core with another stage's work.
    exclusive_stages: list[str] = field(default_factory=lambda: ["benchmark"])
    # While stages run this long (seconds) without one finishing, a line names them and how long each has run;
    # null: no such line.
    progress_every_s: Optional[float] = 30.0
    debug: bool = False

    def __post_init__(self) -> None:
        if self.lease_s <= 0:
            raise BadSetting("lease_s", self.lease_s, " must be positive (seconds a shared-cache lease lasts).")
        if self.stage_timeout_s <= 0:
            raise BadSetting("stage_timeout_s", self.stage_timeout_s, " must be positive (seconds per stage).")
        if self.worker_max_rss_mb is not None and self.worker_max_rss_mb <= 0:
            raise BadSetting(
                "worker_max_rss_mb", self.worker_max_rss_mb, " must be positive (MB), or null to never replace it."
            )
        if self.progress_every_s is not None and self.progress_every_s <= 0:
            raise BadSetting(
                "progress_every_s", self.progress_every_s, " must be positive (seconds), or null for no such line."
            )
        if self.workers is not None and self.workers < 1:
            raise BadSetting("workers", self.workers, " must be at least 1, or null for the number of cores.")


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
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)


# Each group's schema, stored in its group as `<group>_schema`: every YAML option of the group lists it first in
# its own defaults, so a reader goes from `conf/calibrate/default.yaml` to `stages/calibrate/config.py`.
GROUP_SCHEMAS: dict[str, type] = {
    "model": ModelConfig,
    "dataset": DatasetConfig,
    "split": SplitConfig,
    "calibrate": CalibrateConfig,
    "variants": VariantConfig,
    "gates": Gates,
    "quantization": QuantizationConfig,
    "benchmark": BenchmarkConfig,
    "verify": VerifyConfig,
    "tracking": TrackingConfig,
    "runtime": RuntimeConfig,
    "pipeline": PipelineConfig,
}


def register_configs() -> None:
    """Register the root schema (conf/config.yaml lists it first, so every key is typed) and each group's."""
    store = ConfigStore.instance()
    store.store(name="config_schema", node=Config)
    for group, node in GROUP_SCHEMAS.items():
        store.store(group=group, name=f"{group}_schema", node=node)


def validate(cfg: DictConfig) -> None:
    """Build each group's typed objects once, so every config's own range checks run right after composition;
    ConfigError (exit 2) names the full key of a bad value. Call it once the mandatory values are known set."""
    for key in cfg:
        child = cfg[key]
        if isinstance(child, DictConfig) and key != "pipeline":  # the DAG's stage configs repeat the groups
            _check_nodes(child, f"{key!s}.")


def _check_nodes(node: DictConfig, at: str) -> None:
    """Innermost first, so a bad `variants.int8_mixed.search.beam` is named there rather than at its variant."""
    for key in node:
        child = node[key]
        if isinstance(child, DictConfig):
            _check_nodes(child, f"{at}{key!s}.")
    if not dataclasses.is_dataclass(OmegaConf.get_type(node)):
        return
    try:
        OmegaConf.to_object(node)
    except BadSetting as err:
        raise ConfigError(err.at(at)) from None
    except InputError as err:  # a stage's own check, whose message names the full key
        raise ConfigError(str(err)) from None
