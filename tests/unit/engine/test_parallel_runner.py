"""Tier 2: the runner with a worker pool, on toy stages in real worker processes (which import nothing heavy):
independent variants run side by side after the first one sized the pool, exclusive stages (benchmarks) run
alone, memory bounds the pool, and a crash, a timeout or Ctrl-C stays as contained as with one worker."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from pipelines.engine.cache import StageCache
from pipelines.engine.dag import build_dag
from pipelines.engine.pool import WorkerPool
from pipelines.engine.runner import Outcome, run_dag

STAGES = "tests.unit.engine.parallel_stages"


def _stages(log: Path, seconds: float = 1.0) -> dict[str, Any]:
    common = {"log_file": str(log), "seconds": seconds}
    return {
        "source": {"_target_": f"{STAGES}.source", "config": common},
        "work": {"_target_": f"{STAGES}.work", "needs": ["source"], "per_variant": True, "config": common},
        "bench": {"_target_": f"{STAGES}.bench", "needs": ["work"], "per_variant": True, "config": common},
    }


def _run(
    tmp_path: Path,
    variants: dict[str, Any],
    pool: WorkerPool,
    timeout_s: float = 60,
    seconds: float = 1.0,
    progress_every_s: float | None = None,
) -> dict[str, Outcome]:
    nodes = build_dag(_stages(tmp_path / "log", seconds), variants)
    with pool:
        cache = StageCache(tmp_path / "cache")
        return run_dag(nodes, cache, pool, timeout_s, exclusive=["bench"], progress_every_s=progress_every_s)


def _intervals(log: Path) -> dict[str, dict[str, Any]]:
    return {line["name"]: line for line in map(json.loads, log.read_text().splitlines())}


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


THREE = {"a": {}, "b": {}, "c": {}}


def test_variants_run_side_by_side_and_benchmarks_alone(tmp_path: Path) -> None:
    pool = WorkerPool(warm=None, size=2)  # toy stages: no worker imports TensorFlow (`warm=None`)
    # The second worker starts while the first variant's stage runs: a second long enough for that.
    variants = {"a": {"seconds": 2}, "b": {"seconds": 1.5}, "c": {"seconds": 1.5}}
    outcomes = _run(tmp_path, variants, pool, seconds=0.3)  # 0.3 s: the source and the benchmarks
    assert all(o.status == "ok" for o in outcomes.values())
    runs = _intervals(tmp_path / "log")
    # The first variant's stage runs alone (its peak memory sizes the pool), the next two side by side.
    assert not any(_overlap(runs["work[a]"], runs[f"work[{v}]"]) for v in "bc")
    assert _overlap(runs["work[b]"], runs["work[c]"])
    assert runs["work[b]"]["pid"] != runs["work[c]"]["pid"]
    assert pool.most_at_once == 2 and pool.peak_mb is not None and pool.peak_mb > 10
    for name in ("bench[a]", "bench[b]", "bench[c]"):  # timing never shares the machine with another stage
        assert not any(_overlap(runs[name], other) for key, other in runs.items() if key != name)
    again = _run(tmp_path, variants, WorkerPool(warm=None, size=2), seconds=0.3)
    assert all(o.cached for o in again.values())


def test_a_long_stage_is_named_while_it_runs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # With a line due every 0.6 s, a 1.5 s stage is named (with how long it has run) before it finishes.
    caplog.set_level(logging.INFO, logger="tflite_pipeline")
    _run(tmp_path, {"a": {"seconds": 1.5}}, WorkerPool(warm=None, size=1), seconds=0.05, progress_every_s=0.6)
    lines = [r.getMessage() for r in caplog.records]
    running = [n for n, line in enumerate(lines) if "still running: work[a] " in line]
    done = next(n for n, line in enumerate(lines) if "work[a]" in line and "done in" in line)
    assert len(running) >= 2 and max(running) < done, lines
    assert not any("still running" in line and "bench" in line for line in lines)  # 0.05 s: never named


def test_one_worker_runs_one_stage_at_a_time(tmp_path: Path) -> None:
    pool = WorkerPool(warm=None, size=1)
    _run(tmp_path, THREE, pool, seconds=0.3)
    runs = list(_intervals(tmp_path / "log").values())
    assert pool.most_at_once == 1
    assert not any(_overlap(x, y) for i, x in enumerate(runs) for y in runs[i + 1 :])


def test_a_memory_budget_below_two_peaks_keeps_stages_one_at_a_time(tmp_path: Path) -> None:
    # Each toy worker holds tens of MB (the measured peak); a 1 MB budget cannot hold a second one.
    pool = WorkerPool(warm=None, size=2, memory_mb=1.0)
    _run(tmp_path, THREE, pool, seconds=0.3)
    assert pool.peak_mb is not None and pool.most_at_once == 1


def test_a_crash_beside_a_running_stage_fails_only_that_stage(tmp_path: Path) -> None:
    variants = {"a": {}, "b": {"crash": True}, "c": {}}
    outcomes = _run(tmp_path, variants, WorkerPool(warm=None, size=2), seconds=0.3)
    assert outcomes["work[b]"].status == "error" and "SIGSEGV" in (outcomes["work[b]"].error or "")
    assert outcomes["bench[b]"].status == "skipped"
    assert outcomes["bench[a]"].status == outcomes["bench[c]"].status == "ok"


def test_a_hanging_stage_times_out_while_its_sibling_finishes(tmp_path: Path) -> None:
    variants = {"a": {}, "b": {"hang": True}, "c": {}}
    started = time.monotonic()
    outcomes = _run(tmp_path, variants, WorkerPool(warm=None, size=2), timeout_s=2, seconds=0.3)
    assert "did not finish within 2 s" in (outcomes["work[b]"].error or "")
    assert outcomes["bench[c]"].status == "ok"
    assert time.monotonic() - started < 30


def test_ctrl_c_stops_every_busy_worker_and_keeps_nothing_half_written(tmp_path: Path) -> None:
    variants = {"a": {"seconds": 0.1}, "b": {"interrupt": True}, "c": {}}
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, variants, WorkerPool(warm=None, size=2), seconds=30)
    assert time.monotonic() - started < 15  # work[b] and work[c] would take 30 s each: not waited for
    work = tmp_path / "cache" / "work"
    # Only work[a]'s entry: the interrupted stages' temp folders are gone, nothing half-written.
    assert [(p / "result.json").exists() for p in work.iterdir()] == [True]
