"""LiteRT timing settings (`conf/benchmark/default.yaml`, group `benchmark`) and their checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

from stages.result import InputError


@dataclass
class BenchmarkConfig:
    """LiteRT timing in a fresh process per thread count; see docs/benchmarks.md."""

    enabled: bool = True
    # An int, or a list of ints to time each (`'benchmark.num_threads=[1,2,4]'`); the first is the headline.
    num_threads: Any = 1
    use_xnnpack: bool = True
    # Untimed invokes after the first; warming stops once min_seconds passed since the first invoke started (a
    # model whose first invoke took that long is not warmed again).
    warmup: int = 10
    # Timed invokes continue until both are reached, unless max_seconds of timing is spent first.
    min_runs: int = 50
    min_seconds: float = 0.5
    max_seconds: float = 20.0
    # Or until the mean latency is known this closely (95% interval's half-width over the mean, after at least
    # 10 timed invokes and min_seconds): a model on LiteRT's reference kernels stops when its figure is steady,
    # not after min_runs seconds-long invokes. null: min_runs and min_seconds only.
    target_ci: Optional[float] = 0.02

    def __post_init__(self) -> None:
        if self.enabled:  # settings of a disabled benchmark are never used
            check_settings(asdict(self))


def thread_counts(value: Any) -> list[int]:
    """`benchmark.num_threads` as a list: an int, or a list of ints (a sweep), each at least 1."""
    values = list(value) if isinstance(value, list | tuple) else [value]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        raise InputError(
            f"`benchmark.num_threads` must be a positive integer or a list of them, got {value!r}. "
            "Use e.g. `benchmark.num_threads=2` or `'benchmark.num_threads=[1,2,4]'`."
        )
    return list(dict.fromkeys(int(v) for v in values))


def check_settings(settings: dict[str, Any]) -> list[int]:
    """The thread counts, after checking every timing setting (also when the config is composed)."""
    threads = thread_counts(settings["num_threads"])
    if int(settings["min_runs"]) < 1 or int(settings["warmup"]) < 0:
        raise InputError(
            f"`benchmark.min_runs` must be at least 1 and `benchmark.warmup` at least 0 (got "
            f"{settings['min_runs']} and {settings['warmup']}). Fix them, or skip timing with "
            "`benchmark.enabled=false`."
        )
    if float(settings["min_seconds"]) < 0 or float(settings["max_seconds"]) <= 0:
        raise InputError(
            f"`benchmark.min_seconds` must be >= 0 and `benchmark.max_seconds` > 0 (got {settings['min_seconds']} "
            f"and {settings['max_seconds']}); max_seconds caps the timed loop of each variant."
        )
    if settings.get("target_ci") is not None and not 0 < float(settings["target_ci"]) < 1:
        raise InputError(
            f"`benchmark.target_ci` must lie between 0 and 1 (a fraction of the mean), or be null, got "
            f"{settings['target_ci']}."
        )
    return threads
