"""Up to N worker processes side by side, admitted by cores and by memory, with timing runs kept alone.

The runner hands the pool one stage at a time (`start`) and collects what finished (`wait`), all from its main
thread: each stage still runs in a `Worker`, so a crash or a timeout fails that stage only, and Ctrl-C or SIGTERM
reach the main thread as before. How many run at once:

- never more than `size` (default: the usable cores, or `runtime.workers`);
- one at a time until a *gauge* stage finished (the runner marks the first per-variant stage, a conversion in
  the default pipeline), whose worker's peak resident memory (`VmHWM`) is the measure of what one more stage may
  take; from then on another stage starts only when the memory the machine has available, less what the running
  stages may still grow by, holds one more such peak. A big model thus never runs two conversions that do not
  fit, however many cores there are;
- an *exclusive* stage (benchmarks: `runtime.exclusive_stages`) runs alone: it starts only when nothing runs,
  and nothing starts while it runs, so the latencies it measures are not shared with another stage's work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_any
from typing import Any

from pipelines.engine.errors import StageFailed
from pipelines.engine.worker import WARM, Worker, resident_mb
from stages.host import usable_cpus


def available_mb() -> float | None:
    """Memory the machine can give without swapping (`MemAvailable`), in MiB; None where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


@dataclass
class _Slot:
    tag: Any
    exclusive: bool
    gauge: bool


class WorkerPool:
    """Worker processes created on demand, each running one stage at a time."""

    def __init__(
        self,
        size: int | None = None,
        log_path: str | None = None,
        max_rss_mb: float | None = None,
        workers: list[Worker] | None = None,
        memory_mb: float | None = None,
        warm: str | None = WARM,
    ) -> None:
        self.size = max(1, size or usable_cpus())
        self._warm = warm  # what each new worker imports ahead of its first stage (Worker's `warm`)
        self.memory_mb = memory_mb  # what the workers together may hold; None: what the machine has available
        self._log_path = log_path
        self._max_rss_mb = max_rss_mb
        self._workers: list[Worker] = list(workers or [])
        self._running: dict[Worker, _Slot] = {}
        self._gauged = False
        self.peak_mb: float | None = None  # the largest stage peak seen: what one more stage may need
        self.most_at_once = 0  # how many stages ran side by side at most (for tests and the docs' figures)

    @classmethod
    def around(cls, worker: Worker) -> WorkerPool:
        """One given worker, one stage at a time: the runner's behaviour before the pool existed."""
        return cls(size=1, workers=[worker])

    def warm_up(self) -> None:
        """Let the first worker import TensorFlow while the caller waits for something else."""
        (self._workers[0] if self._workers else self._new()).warm_up()

    def may_start(self, exclusive: bool) -> bool:
        """Whether one more stage (an exclusive one: alone) may start now."""
        if any(slot.exclusive for slot in self._running.values()):
            return False
        if exclusive or not self._running:
            return not self._running
        if len(self._running) >= self.size or not self._gauged:
            return False
        return self._fits()

    def _fits(self) -> bool:
        """Whether the memory available holds one more stage at the measured peak, after reserving what the
        running stages may still grow by (up to that peak each)."""
        held_by_all = sum(resident_mb(w.pid) or 0.0 for w in self._workers if w.pid is not None)
        free = available_mb() if self.memory_mb is None else self.memory_mb - held_by_all
        if free is None or self.peak_mb is None:
            return True  # not measurable here: the cores are the only bound
        held = {id(w): resident_mb(w.pid) or 0.0 for w in self._running if w.pid is not None}
        reserve = sum(max(0.0, self.peak_mb - rss) for rss in held.values())
        idle = self._idle()
        need = self.peak_mb - ((resident_mb(idle.pid) or 0.0) if idle is not None and idle.pid else 0.0)
        return free - reserve >= need

    def start(self, tag: Any, target: str, kwargs: dict[str, Any], timeout_s: float, what: str, **kind: bool) -> None:
        """Run `target(**kwargs)` in an idle worker (or a new one). `kind`: `exclusive` (runs alone) and
        `gauge` (its peak memory sizes the pool)."""
        worker = self._idle() or self._new()
        worker.submit(target, kwargs, timeout_s, what)
        self._running[worker] = _Slot(tag, kind.get("exclusive", False), kind.get("gauge", False))
        # A second worker imports TensorFlow while the first runs the run's first stage (the model's load), so it
        # is ready by the first conversions; each later one while the gauge runs, ready if the memory allows it.
        first = len(self._workers) == 1 and not kind.get("exclusive")
        if (first or kind.get("gauge")) and len(self._workers) < self.size:
            self._new().warm_up()
        self.most_at_once = max(self.most_at_once, len(self._running))

    @property
    def running(self) -> int:
        return len(self._running)

    def wait(self, timeout_s: float | None = None) -> list[tuple[Any, Any, StageFailed | None]]:
        """Block until at least one stage finished (or `timeout_s` passed: then nothing); returns (tag, result,
        None) or (tag, None, error) for each finished stage."""
        until = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            finished = [w for w in self._running if w.poll()]
            if finished:
                break
            if until is not None and time.monotonic() >= until:
                return []
            wait_any([obj for w in self._running for obj in w.waitables()], timeout=0.2)  # 0.2 s: timeouts
        done: list[tuple[Any, Any, StageFailed | None]] = []
        for worker in finished:
            slot = self._running.pop(worker)
            try:
                done.append((slot.tag, worker.collect(), None))
            except StageFailed as err:
                done.append((slot.tag, None, err))
            if worker.last_peak_mb is not None:
                self.peak_mb = max(self.peak_mb or 0.0, worker.last_peak_mb)
            self._gauged = self._gauged or slot.gauge
        return done

    def _idle(self) -> Worker | None:
        return next((w for w in self._workers if w not in self._running), None)

    def _new(self) -> Worker:
        worker = Worker(log_path=self._log_path, max_rss_mb=self._max_rss_mb, warm=self._warm)
        self._workers.append(worker)
        return worker

    def close(self) -> None:
        """Stop busy workers at once (an interrupted run), let idle ones exit on their own."""
        for worker in self._running:
            worker.kill()
        self._running.clear()
        for worker in self._workers:
            worker.close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
