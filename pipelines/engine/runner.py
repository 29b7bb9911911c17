"""Run the DAG: order, cache look-up, call the stages in the worker pool, store, report progress.

Nodes whose inputs are ready run side by side, as many as the pool admits (pipelines/engine/pool.py: cores,
memory, and exclusive stages such as benchmarks alone); the order among ready nodes is the DAG's static order,
exclusive stages last. Progress lines are printed as nodes finish, numbered in that order.
"""

from __future__ import annotations

import graphlib
import logging
import time
from collections.abc import Callable, Collection
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.engine.cache import StageCache, node_key
from pipelines.engine.dag import Node
from pipelines.engine.errors import StageFailed
from pipelines.engine.pool import WorkerPool
from pipelines.engine.worker import Worker
from stages.result import StageResult

log = logging.getLogger("tflite_pipeline")


@dataclass
class Outcome:
    """One node's fate: `ok` (fresh or cached), `error` (it failed) or `skipped` (upstream failed)."""

    status: str
    result: StageResult | None = None
    key: str = ""
    cached: bool = False
    seconds: float = 0.0
    error: str | None = None
    details: str = ""
    input_error: bool = False
    failed: list[str] = field(default_factory=list)  # for skipped nodes: the failed nodes upstream


@dataclass
class _Started:
    node: Node
    key: str
    work: Path
    lock: ExitStack
    started: float


def run_dag(
    nodes: list[Node],
    cache: StageCache,
    worker: Worker | WorkerPool,
    timeout_s: float,
    before_work: Callable[[], object] | None = None,
    exclusive: Collection[str] = (),
    progress_every_s: float | None = None,
) -> dict[str, Outcome]:
    """Run every node whose upstream succeeded; one node's failure only skips what depends on it.

    `worker`: a pool, or one worker (stages then run one at a time). `exclusive`: stage names that run alone.
    `before_work` is called once, before the first node that is not in the cache (the tracker uses it to
    fail fast on an unusable store without delaying a fully cached re-run); meanwhile the worker imports
    TensorFlow, so the two take their seconds side by side. Without it nothing is warmed: stages that need no
    TensorFlow (toy stages, a rerun that only times) do not pay for its import.
    """
    pool = worker if isinstance(worker, WorkerPool) else WorkerPool.around(worker)
    by_id = {node.id: node for node in nodes}
    rank = {node.id: (node.stage in exclusive, index) for index, node in enumerate(nodes)}
    sorter = graphlib.TopologicalSorter({node.id: node.needs for node in nodes})
    sorter.prepare()
    outcomes: dict[str, Outcome] = {}
    progress = _Progress(len(nodes), progress_every_s)
    ready: list[Node] = []
    running: dict[str, _Started] = {}
    gauged = False

    def settle(node: Node, outcome: Outcome) -> None:
        outcomes[node.id] = outcome
        sorter.done(node.id)
        progress.tell(node.id, outcome)

    try:
        while sorter.is_active():
            ready += [by_id[nid] for nid in sorter.get_ready()]
            ready.sort(key=lambda n: rank[n.id])
            for node in list(ready):  # what needs no worker: skipped (upstream failed) or served by the cache
                skipped = _skipped(node, outcomes)
                key = "" if skipped else node_key(node, {a: outcomes[nid].key for a, nid in node.upstream.items()})
                hit = None if skipped else cache.lookup(node.stage, key)
                if skipped or hit is not None:
                    ready.remove(node)
                    settle(node, skipped or Outcome("ok", result=hit, key=key, cached=True))
            while ready and pool.may_start(ready[0].stage in exclusive):
                node = ready.pop(0)
                key = node_key(node, {a: outcomes[nid].key for a, nid in node.upstream.items()})
                if before_work is not None:
                    pool.warm_up()
                    before_work()  # raises (an unusable tracking store) before any work
                    before_work = None
                lock = ExitStack()
                started = time.perf_counter()
                lock.enter_context(cache.locked(node.stage, key))
                hit = cache.lookup(node.stage, key)  # a parallel job may have finished it while we waited
                if hit is not None:
                    lock.close()
                    settle(node, Outcome("ok", result=hit, key=key, cached=True, seconds=time.perf_counter() - started))
                    continue
                work = cache.new_workdir(node.stage, key)
                running[node.id] = _Started(node, key, work, lock, started)
                upstream = {arg: outcomes[nid].result for arg, nid in node.upstream.items()}
                kwargs = {"cfg": node.config, "out_dir": str(work), **upstream}
                gauge, gauged = not gauged and node.variant is not None, gauged or node.variant is not None
                pool.start(node.id, node.target, kwargs, timeout_s, node.id, exclusive=rank[node.id][0], gauge=gauge)
            if not running:
                continue
            finished = pool.wait(progress.quiet_for())
            if not finished:  # a long stage: say what is still running rather than nothing for minutes
                progress.still_running({nid: job.started for nid, job in running.items()})
            for nid, result, error in finished:
                job = running.pop(nid)
                try:
                    settle(job.node, _finish(job, result, error, cache))
                finally:
                    cache.discard(job.work)
                    job.lock.close()
    finally:
        for job in running.values():  # interrupted (Ctrl-C, SIGTERM, a failed disk): nothing half-written kept
            cache.discard(job.work)
            job.lock.close()
    return outcomes


def _skipped(node: Node, outcomes: dict[str, Outcome]) -> Outcome | None:
    failed = [nid for nid in node.needs if outcomes[nid].status == "error"]
    failed += [f for nid in node.needs if outcomes[nid].status == "skipped" for f in outcomes[nid].failed]
    failed = list(dict.fromkeys(failed))
    if not failed:
        return None
    return Outcome("skipped", error=f"skipped because {', '.join(failed)} failed", failed=failed)


def _finish(job: _Started, result: StageResult | None, error: StageFailed | None, cache: StageCache) -> Outcome:
    seconds = time.perf_counter() - job.started
    if error is not None:
        return Outcome(
            "error",
            key=job.key,
            seconds=seconds,
            error=str(error),
            details=error.details,
            input_error=error.input_error,
        )
    assert result is not None
    committed = cache.commit(job.node.stage, job.key, job.work, result)
    return Outcome("ok", result=committed, key=job.key, seconds=time.perf_counter() - job.started)


class _Progress:
    """`[ 3/22] convert[int8]          done in 4.2s`: one line per node as it finishes, numbered in that order;
    with `every_s`, a line naming the stages still running whenever that long passed without one."""

    def __init__(self, total: int, every_s: float | None = None) -> None:
        self.total, self.count, self.width = total, 0, len(str(total))
        self.every_s, self.last = every_s, time.perf_counter()

    def quiet_for(self) -> float | None:
        """How long to wait for a stage before saying what is still running (None: no such line)."""
        if not self.every_s:
            return None
        return max(0.0, self.last + self.every_s - time.perf_counter())

    def still_running(self, started: dict[str, float]) -> None:
        now = self.last = time.perf_counter()
        stages = ", ".join(f"{nid} {_duration(now - since)}" for nid, since in started.items())
        log.info("%s still running: %s", " " * (2 * self.width + 3), stages)

    def tell(self, node_id: str, outcome: Outcome) -> None:
        self.last = time.perf_counter()
        self.count += 1
        prefix = f"[{self.count:>{self.width}}/{self.total}] {node_id:<22}"
        if outcome.status == "skipped":
            log.info("%s skipped (%s failed)", prefix, ", ".join(outcome.failed))
        elif outcome.status == "error":
            log.error("%s FAILED after %.1fs: %s", prefix, outcome.seconds, outcome.error)
        else:
            log.info("%s %s", prefix, "cached" if outcome.cached else f"done in {outcome.seconds:.1f}s")


def _duration(seconds: float) -> str:
    """`48s`, `3m05s`, `1h02m`."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def stage_output(outcomes: dict[str, Outcome], node_id: str) -> StageResult | None:
    outcome = outcomes.get(node_id)
    return outcome.result if outcome and outcome.status == "ok" else None
