"""Parallel jobs (a sweep's) share one stage cache: one computes an entry under its file lock, the other waits
and reuses it."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any


def _contend(cache_root: str, log_file: str, start: Any, results: Any) -> None:
    from pipelines.engine.cache import StageCache
    from pipelines.engine.dag import build_dag
    from pipelines.engine.runner import run_dag
    from pipelines.engine.worker import Worker

    stages = {
        "produce": {
            "_target_": "tests.helpers.sweep_stages.slow_produce",
            "config": {"log_file": log_file, "sleep_s": 3, "value": 7},
        }
    }
    nodes = build_dag(stages, {})
    start.wait()
    with Worker() as worker:
        outcome = run_dag(nodes, StageCache(Path(cache_root)), worker, timeout_s=60)["produce"]
    results.put((outcome.status, outcome.cached, outcome.seconds, outcome.result.metrics["value"]))


def test_parallel_jobs_wait_for_and_reuse_each_others_cache_entries(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    log_file = tmp_path / "computed.log"
    procs = [
        ctx.Process(target=_contend, args=(str(tmp_path / "cache"), str(log_file), start, results)) for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    start.set()
    outcomes = sorted(results.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
    assert len(log_file.read_text().splitlines()) == 1  # computed once
    (_, cached_first, _, v1), (_, cached_second, waited, v2) = sorted(outcomes, key=lambda o: o[1])
    assert (cached_first, cached_second, v1, v2) == (False, True, 7, 7)
    assert waited >= 2.0  # the second job blocked on the lock while the first computed, then reused it
