"""int8_mixed: start from full int8 and keep a few tensors in float until the variant's gates pass.

Each trial builds a model from a set of moves (stages.convert.quantization.moves) and judges it by the end metric, with
the same `compare` and `evaluate_gates` as verification, on the calibrate stage's held-out search samples
(disjoint from the calibration samples and from the evaluation set `verify` reports on). The per-layer table
only orders the candidates. Two strategies:

- `greedy`: each step tries the next `beam` untried candidates (interleaving three rankings: RMSE/scale,
  activation range, max abs error), keeps the one that brings the gates closest, stops once one passes, then
  drops every move the passing set does not need.
- `ranking`: the debugger's usual recipe, for comparison: add candidates in RMSE/scale order until it passes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from stages.convert.quantization.judge import Judge, summary
from stages.convert.quantization.moves import Backend, Move


@dataclass
class Trial:
    backend: str
    moves: tuple[Move, ...]
    flatbuffer: bytes
    metrics: dict[str, Any]
    passed: bool
    shortfall: float
    float_fraction: float
    seconds: float

    def to_json(self, index: int) -> dict[str, Any]:
        return {
            "trial": index,
            "backend": self.backend,
            "moves": [f"{m.target} -> {m.kind}" for m in self.moves],
            "float_tensors": [m.target for m in self.moves if m.kind == "float"],
            "float_ops": sorted({op for m in self.moves if m.kind == "float" for op in m.ops}),
            "float_weight_fraction": round(self.float_fraction, 4),
            "size_bytes": len(self.flatbuffer),
            "metrics": summary(self.metrics),
            "passed": self.passed,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Search:
    backend: Backend
    judge: Judge
    max_trials: int
    max_float_fraction: float
    trials: list[Trial] = field(default_factory=list)
    _seen: dict[frozenset[Move], Trial] = field(default_factory=dict)

    def budget_left(self) -> bool:
        return len(self.trials) < self.max_trials

    def allowed(self, moves: tuple[Move, ...]) -> bool:
        return self.backend.float_weights(moves) <= self.max_float_fraction + 1e-9

    def trial(self, moves: tuple[Move, ...]) -> Trial:
        key = frozenset(moves)
        if key in self._seen:
            return self._seen[key]
        started = time.perf_counter()
        flatbuffer = self.backend.build(moves)
        metrics = self.judge.metrics(flatbuffer)
        _, passed, shortfall = self.judge.judge(metrics)
        result = Trial(
            self.backend.name,
            moves,
            flatbuffer,
            metrics,
            passed,
            shortfall,
            self.backend.float_weights(moves),
            time.perf_counter() - started,
        )
        self.trials.append(result)
        self._seen[key] = result
        return result

    def best(self) -> Trial:
        """The passing trial with the fewest float weights, else the one closest to passing."""
        passing = [t for t in self.trials if t.passed]
        if passing:
            return min(passing, key=lambda t: (t.float_fraction, len(t.flatbuffer)))
        return min(self.trials, key=lambda t: (t.shortfall, _error(t), t.float_fraction))


def _error(trial: Trial) -> float:
    return float(summary(trial.metrics).get("max_relative_rmse", 0.0))


def order_candidates(moves: list[Move], layers: list[dict[str, Any]]) -> list[Move]:
    """Interleave three rankings so that a tensor leading any of them is tried early."""
    row = {r["name"]: r for r in layers}

    def ranked(key: str) -> list[Move]:
        return sorted(moves, key=lambda m: -(row[m.target].get(key) or 0.0))

    by_range = sorted(moves, key=lambda m: -((row[m.target]["range_max"] or 0.0) - (row[m.target]["range_min"] or 0.0)))
    merged: dict[Move, None] = {}
    for trio in zip(ranked("rmse_over_scale"), by_range, ranked("max_abs_error"), strict=True):
        merged.update(dict.fromkeys(trio))
    return list(merged)


def greedy(search: Search, candidates: list[Move], beam: int) -> None:
    chosen: tuple[Move, ...] = ()
    current = search.trial(chosen)
    remaining = list(candidates)
    while not current.passed and remaining and search.budget_left():
        pool = [m for m in remaining if search.allowed((*chosen, m))][:beam]
        if not pool:
            break
        tried = []
        for move in pool:
            if not search.budget_left():
                break
            tried.append(search.trial((*chosen, move)))
            remaining.remove(move)
            if tried[-1].passed:
                break
        step = min(tried, key=lambda t: (not t.passed, t.shortfall, _error(t)))
        chosen, current = step.moves, step
    if current.passed:  # drop moves the passing set does not need
        for move in list(chosen):
            if len(chosen) < 2 or not search.budget_left():
                break
            smaller = tuple(m for m in chosen if m != move)
            if search.trial(smaller).passed:
                chosen = smaller


def ranking_only(search: Search, candidates: list[Move], layers: list[dict[str, Any]]) -> None:
    row = {r["name"]: r for r in layers}
    chosen: tuple[Move, ...] = ()
    if search.trial(chosen).passed:
        return
    for move in sorted(candidates, key=lambda m: -(row[m.target].get("rmse_over_scale") or 0.0)):
        if not search.budget_left() or not search.allowed((*chosen, move)):
            continue
        chosen = (*chosen, move)
        if search.trial(chosen).passed:
            return


def run_search(
    backends: list[Backend], judge: Judge, layers: list[dict[str, Any]], settings: dict[str, Any]
) -> tuple[Trial, list[Trial]]:
    """Search with each backend in turn (each with the whole trial budget); the winner is the smallest model
    that passes, else the trial closest to passing. A backend whose unchanged model passes ends the search."""
    searches = []
    for backend in backends:
        search = Search(backend, judge, int(settings["max_trials"]), float(settings["max_float_fraction"]))
        candidates = backend.moves(layers)
        if settings["strategy"] == "ranking":
            ranking_only(search, candidates, layers)
        else:
            greedy(search, order_candidates(candidates, layers), int(settings["beam"]))
        searches.append(search)
        if search.best().passed and not search.best().moves:
            break
    bests = [s.best() for s in searches]
    passing = [t for t in bests if t.passed]
    if passing:
        best = min(passing, key=lambda t: (len(t.flatbuffer), t.float_fraction))
    else:
        best = min(bests, key=lambda t: (t.shortfall, _error(t), t.float_fraction))
    return best, [t for s in searches for t in s.trials]


def advice(variant: str, best: Trial, trials: list[Trial], max_float_fraction: float) -> str:
    """What the user reads when the budget ran out: the best trial and what to try next."""
    figures = ", ".join(f"{k} {v}" for k, v in summary(best.metrics).items())
    index = trials.index(best)
    return (
        f"The int8_mixed search spent its budget ({len(trials)} trials, at most "
        f"{max_float_fraction:.0%} of the weights in float) without passing the gates on the held-out "
        f"search samples; it kept its best trial #{index} ({best.backend}: "
        f"{[f'{m.target} -> {m.kind}' for m in best.moves]}; "
        f"{figures}). Try a larger budget (`variants.{variant}.search.max_trials`, "
        f"`variants.{variant}.search.max_float_fraction`), the int16x8 variant, or a calibration set closer to "
        "real inputs (`calibrate.num_samples`, `dataset=npz`)."
    )
