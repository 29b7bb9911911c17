"""Benchmark stage: LiteRT latency of one variant, batch 1, after warm-up."""

from __future__ import annotations

import time
from typing import Any

from stages.result import StageResult
from stages.timing import summarize


def benchmark(cfg: dict[str, Any], out_dir: str, convert: StageResult) -> StageResult:
    from stages.datasets import random_inputs
    from stages.litert_runtime import SignatureModel, quantize

    settings = cfg["benchmark"]
    if not settings["enabled"]:
        return StageResult(meta={"skipped": True})
    started = time.perf_counter()
    model = SignatureModel(
        convert.path("tflite"), num_threads=settings["num_threads"], use_xnnpack=settings["use_xnnpack"]
    )
    init_ms = (time.perf_counter() - started) * 1e3
    specs = [
        {"name": k, "shape": [1, *[max(1, int(d)) for d in v["shape_signature"][1:]]], "dtype": "float32"}
        for k, v in model.input_details.items()
    ]
    raw = {k: quantize(v, model.input_details[k]) for k, v in random_inputs(specs, 1, 0).items()}
    for _ in range(settings["warmup"]):
        model.invoke_raw(raw)
    samples: list[float] = []
    deadline = time.perf_counter() + settings["min_seconds"]
    hard_stop = time.perf_counter() + settings["max_seconds"]
    while (len(samples) < settings["min_runs"] or time.perf_counter() < deadline) and time.perf_counter() < hard_stop:
        start = time.perf_counter()
        model.invoke_raw(raw)
        samples.append((time.perf_counter() - start) * 1e3)
    metrics = {"latency_ms": summarize(samples), "init_ms": round(init_ms, 3)}
    meta = {"num_threads": settings["num_threads"], "use_xnnpack": settings["use_xnnpack"]}
    return StageResult(meta=meta, metrics=metrics)
