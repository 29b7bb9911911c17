"""Run the DAG in order: cache look-up, call the stage in the worker, store, report progress."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pipelines.engine.cache import StageCache, node_key
from pipelines.engine.dag import Node
from pipelines.engine.errors import StageFailed
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


def run_dag(
    nodes: list[Node],
    cache: StageCache,
    worker: Worker,
    timeout_s: float,
    before_work: Callable[[], object] | None = None,
) -> dict[str, Outcome]:
    """Run every node whose upstream succeeded; one node's failure only skips what depends on it.

    `before_work` is called once, before the first node that is not in the cache (the tracker uses it to
    fail fast on an unusable store without delaying a fully cached re-run); meanwhile the worker imports
    TensorFlow, so the two take their seconds side by side. Without it nothing is warmed: stages that need no
    TensorFlow (toy stages, a rerun that only times) do not pay for its import.
    """
    outcomes: dict[str, Outcome] = {}
    width = len(str(len(nodes)))
    for index, node in enumerate(nodes, 1):
        prefix = f"[{index:>{width}}/{len(nodes)}] {node.id:<22}"
        failed = [nid for nid in node.needs if outcomes[nid].status == "error"]
        failed += [f for nid in node.needs if outcomes[nid].status == "skipped" for f in outcomes[nid].failed]
        failed = list(dict.fromkeys(failed))
        if failed:
            outcomes[node.id] = Outcome("skipped", error=f"skipped because {', '.join(failed)} failed", failed=failed)
            log.info("%s skipped (%s failed)", prefix, ", ".join(failed))
            continue
        upstream = {arg: outcomes[nid] for arg, nid in node.upstream.items()}
        key = node_key(node, {arg: o.key for arg, o in upstream.items()})
        if before_work is not None and not cache.has(node.stage, key):
            worker.warm_up()
            before_work()  # raises (an unusable tracking store) before any work
            before_work = None
        started = time.perf_counter()
        try:
            result, cached = _run_node(node, key, {a: o.result for a, o in upstream.items()}, cache, worker, timeout_s)
        except StageFailed as err:
            seconds = time.perf_counter() - started
            outcomes[node.id] = Outcome(
                "error",
                key=key,
                seconds=seconds,
                error=str(err),
                details=err.details,
                input_error=err.input_error,
            )
            log.error("%s FAILED after %.1fs: %s", prefix, seconds, err)
            continue
        seconds = time.perf_counter() - started
        outcomes[node.id] = Outcome("ok", result=result, key=key, cached=cached, seconds=seconds)
        log.info("%s %s", prefix, "cached" if cached else f"done in {seconds:.1f}s")
    return outcomes


def _run_node(
    node: Node,
    key: str,
    upstream: dict[str, StageResult | None],
    cache: StageCache,
    worker: Worker,
    timeout_s: float,
) -> tuple[StageResult, bool]:
    hit = cache.lookup(node.stage, key)
    if hit is not None:
        return hit, True
    with cache.locked(node.stage, key):
        hit = cache.lookup(node.stage, key)  # a parallel job may have finished it while we waited
        if hit is not None:
            return hit, True
        work = cache.new_workdir(node.stage, key)
        try:
            result: StageResult = worker.call(
                node.target, {"cfg": node.config, "out_dir": str(work), **upstream}, timeout_s, what=node.id
            )
            return cache.commit(node.stage, key, work, result), False
        finally:
            cache.discard(work)


def stage_output(outcomes: dict[str, Outcome], node_id: str) -> StageResult | None:
    outcome = outcomes.get(node_id)
    return outcome.result if outcome and outcome.status == "ok" else None
