"""How much of the evaluation set a variant runs on, and on how many interpreters at once.

A variant on LiteRT's reference kernels (int16x8: 24-116x slower than fp32) can take minutes over the
evaluation set, on one core while the others idle. Its samples are independent and LiteRT's `invoke` releases
the GIL, so once the rest of the set would take longer than PARALLEL_AFTER_S it is split across one interpreter
per usable core, in threads. When even that would take longer than `verify.max_seconds`, only the first samples
are verified (never fewer than `verify.min_samples`) and the stage says so, with the uncertainty that implies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np

from stages import host

PROBE_SAMPLES = 16  # at most, timed one at a time after a warm-up sample, to project the whole set's time
PROBE_SECONDS = 2.0  # ... or fewer once this long has passed: a slow variant is known after one or two
PARALLEL_AFTER_S = 10.0  # a shorter rest runs on the one interpreter (a second costs its memory and set-up)


class Budgeted(NamedTuple):
    """The variant's outputs on the samples verified; what was shortened and why (None: nothing); and how many
    interpreters ran them side by side."""

    outputs: dict[str, np.ndarray]
    shortened: dict[str, Any] | None
    interpreters: int


def run_within_budget(
    open_model: Callable[[], Any], feeds: dict[str, np.ndarray], budget: dict[str, Any], variant: str
) -> Budgeted:
    """Run the variant (`open_model()`: a SignatureModel, one per interpreter) on the evaluation samples.

    The first sample warms the interpreter up; the next ones, one at a time, time it (at most PROBE_SAMPLES or
    PROBE_SECONDS); the rest runs in one call, or split across cores, or is cut to the budget (module doc)."""
    model = open_model()
    count = len(next(iter(feeds.values())))
    if count <= 2 or model.samples_per_call(1) != 1:  # a fixed batch above 1 takes whole batches only
        return Budgeted(model(feeds), None, 1)
    parts = [model(rows(feeds, 0, 1))]
    started, done = time.perf_counter(), 1
    while done < min(count, PROBE_SAMPLES + 1) and (done == 1 or time.perf_counter() - started < PROBE_SECONDS):
        parts.append(model(rows(feeds, done, done + 1)))
        done += 1
    per_sample = (time.perf_counter() - started) / (done - 1)
    rest = count - done
    workers = min(host.usable_cpus(), rest) if per_sample * rest > PARALLEL_AFTER_S else 1
    limit, floor = float(budget.get("max_seconds") or 0.0), int(budget.get("min_samples", 200))
    keep = count
    if limit and per_sample * count / workers > limit:
        keep = min(count, max(floor, done, int(limit * workers / per_sample)))
        workers = max(1, min(workers, keep - done))
    bounds = np.linspace(done, keep, workers + 1).round().astype(int)
    models = [model, *(open_model() for _ in range(workers - 1))]
    with ThreadPoolExecutor(workers) as pool:
        shards = pool.map(lambda m, a, b: m(rows(feeds, a, b)) if b > a else None, models, bounds[:-1], bounds[1:])
        parts += [shard for shard in shards if shard is not None]
    outputs = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    if keep == count:
        return Budgeted(outputs, None, workers)
    return Budgeted(outputs, _why_shortened(variant, per_sample, count, keep, workers, limit, floor), workers)


def rows(arrays: dict[str, np.ndarray], start: int, stop: int) -> dict[str, np.ndarray]:
    """Samples `start:stop` of every array (batch-first)."""
    return {k: v[start:stop] for k, v in arrays.items()}


def _why_shortened(
    variant: str, per_sample: float, count: int, keep: int, workers: int, limit: float, floor: int
) -> dict[str, Any]:
    side_by_side = f" on {workers} interpreters at once" if workers > 1 else ""
    return {
        "samples": keep,
        "of": count,
        "ms_per_sample": round(per_sample * 1e3, 3),
        "why": (
            f"{variant} runs at {per_sample * 1e3:.3g} ms a sample, so the {count} evaluation samples would take "
            f"about {per_sample * count / workers:.0f} s{side_by_side}: verified on the first {keep} "
            f"(verify.max_seconds={limit}, verify.min_samples={floor}); with {keep} samples a share such as "
            f"accuracy or agreement is known to about ±{1.96 * (0.25 / keep) ** 0.5:.3f} at worst (95%)"
        ),
    }
