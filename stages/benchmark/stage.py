"""Benchmark stage: LiteRT latency of one variant, batch 1, measured in its own fresh process.

The pipeline's worker has TensorFlow loaded, its thread pools started and hundreds of MB allocated; timing
there would measure all of that too. Each thread count is timed by `stages.benchmark.child` in a new Python
process that imports only numpy and ai_edge_litert. Every sample is kept (`samples.json`); the summary
carries what the figures depend on: CPU and SIMD flags, threads, XNNPACK on/off, LiteRT/TF versions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from stages.benchmark import child  # noqa: F401 - part of this stage's code (and so of its cache key)
from stages.benchmark.config import check_settings
from stages.benchmark.timing import summarize
from stages.result import StageError, StageResult

PROJECT_ROOT = Path(__file__).resolve().parents[2]


_NOT_METRICS = ("capped", "stopped", "warmup_runs")  # how the loop went: meta, not figures


def run_child(spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run one measurement in a fresh `python -m stages.benchmark.child`; its JSON result, or StageError."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "TF_NUM_"))}
    # numpy's BLAS pool must not compete with the interpreter's threads; LiteRT's own pool is num_threads.
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "stages.benchmark.child"],
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            cwd=PROJECT_ROOT,
        )
    except subprocess.TimeoutExpired:
        raise StageError(
            f"The timing process for {spec['model_path']} ran past {timeout_s:.0f} s and was stopped. "
            "Lower `benchmark.max_seconds` or `benchmark.warmup`, or turn timing off with `benchmark.enabled=false`."
        ) from None
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        tail = (done.stderr or "").strip().splitlines()[-3:]
        how = f"was killed by signal {-done.returncode}" if done.returncode < 0 else f"exited {done.returncode}"
        raise StageError(
            f"The timing process {how} without a result while running {spec['model_path']} "
            f"({' | '.join(tail) or 'no output'}). The model may not run under LiteRT with these settings; "
            "try `benchmark.use_xnnpack=false`, or skip timing with `benchmark.enabled=false`."
        ) from None
    if "error" in result:
        raise StageError(
            f"Timing {spec['model_path']} failed: {result['error']}. Check that the model runs with the LiteRT "
            "interpreter (the verify stage shows), or skip timing with `benchmark.enabled=false`."
        )
    return result


def _timing_inputs(convert: StageResult, calibrate: StageResult | None, out_dir: Path) -> tuple[str | None, str]:
    """Write the evaluation samples as the .tflite's raw inputs (`inputs.npz`, keyed by signature input key,
    quantized for integer I/O); (file or None, what feeds the timing). Raises _NoTiming when only made-up
    integers could feed it: token ids or indices drawn at random index out of bounds, or time the wrong path."""
    import numpy as np

    from stages.litert_runtime import SignatureModel
    from stages.samples import load_samples

    try:
        model = SignatureModel(convert.path("tflite"), convert.meta.get("names"))
    except Exception:  # noqa: BLE001 - an unreadable model: the timing process reports it in one line
        return None, "random"
    integer = [
        model.name(k)
        for k, d in model.input_details.items()
        if np.dtype(d["dtype"]).kind in "iub" and not d["quantization"][0]
    ]
    random_data = calibrate is None or bool(calibrate.meta.get("random"))
    if random_data and integer:
        raise _NoTiming(
            f"no timing: the model reads integer inputs {integer} (ids, indices) and there is no dataset, so only "
            "made-up integers could feed it. Give real samples with `dataset=npz dataset.path=...`."
        )
    if calibrate is None:
        return None, "random"
    feeds, _ = load_samples(calibrate.path("eval"))
    raw: dict[str, Any] = model.quantized_feeds(feeds)
    np.savez(out_dir / "inputs.npz", **raw)
    count = len(next(iter(raw.values())))
    source = "random samples (dataset=random)" if random_data else "evaluation samples"
    return "inputs.npz", f"{count} {source}, cycled, batch 1"


def _batch_axes(convert: StageResult, calibrate: StageResult | None) -> dict[str, int | None]:
    """{signature input key: batch axis} for the inputs not batched on axis 0 (stages/load/batch_axis.py): the
    timing process puts each sample there."""
    axes = (calibrate.meta.get("batch_axes") if calibrate is not None else None) or {}
    names = convert.meta.get("names") or {}
    return {key: axes[name] for key, name in names.items() if axes.get(name, 0) != 0}


class _NoTiming(Exception):
    """Timing would be meaningless or crash; the reason goes into the stage's meta."""


def benchmark(
    cfg: dict[str, Any], out_dir: str, convert: StageResult, calibrate: StageResult | None = None
) -> StageResult:
    """Latency summary (mean/p50/p90/p99/stdev), init and first-invoke times, peak memory, per thread count.

    The timed invokes are fed the evaluation samples in turn (cycled, each in the dataset's own shape), so
    data-dependent work (an NMS loop, a variable sequence length) is timed as it runs on real data.
    """
    settings = cfg["benchmark"]
    if convert.meta.get("skipped"):
        return StageResult(meta={"skipped": convert.meta["skipped"]})
    if not settings["enabled"]:
        return StageResult(meta={"skipped": True})
    if convert.meta.get("skipped"):
        return StageResult(meta={"skipped": convert.meta["skipped"]})
    threads = check_settings(settings)
    try:
        inputs_file, inputs_source = _timing_inputs(convert, calibrate, Path(out_dir))
    except _NoTiming as reason:
        return StageResult(meta={"timing_skipped": str(reason)})
    budget = float(settings["max_seconds"]) + 120.0  # + process start, model load and warm-up
    figures: dict[str, dict[str, Any]] = {}
    samples: dict[str, list[float]] = {}
    environment: dict[str, Any] = {}
    for count in threads:
        spec = {
            "model_path": str(convert.path("tflite")),
            "inputs_path": str(Path(out_dir) / inputs_file) if inputs_file else None,
            "num_threads": count,
            "use_xnnpack": bool(settings["use_xnnpack"]),
            "warmup": int(settings["warmup"]),
            "min_runs": int(settings["min_runs"]),
            "min_seconds": float(settings["min_seconds"]),
            "max_seconds": float(settings["max_seconds"]),
            "target_ci": settings.get("target_ci"),
            "seed": 0,
            "batch_axes": _batch_axes(convert, calibrate),
        }
        result = run_child(spec, budget)
        samples[str(count)] = result["samples_ms"]
        environment = result["environment"]
        figures[str(count)] = {
            "latency_ms": summarize(result["samples_ms"]),
            "init_ms": result["init_ms"],
            "first_invoke_ms": result["first_invoke_ms"],
            **result["memory"],
            "capped": result["capped"],
            "stopped": result["stopped"],
            "warmup_runs": result["warmup_runs"],
        }
    (Path(out_dir) / "samples.json").write_text(
        json.dumps({"unit": "ms", "order": "as measured", "by_threads": samples})
    )
    primary = figures[str(threads[0])]
    metrics = {k: v for k, v in primary.items() if k not in _NOT_METRICS}
    if len(threads) > 1:
        metrics["by_threads"] = {k: {m: v for m, v in f.items() if m not in _NOT_METRICS} for k, f in figures.items()}
    meta = {
        "num_threads": threads[0],
        "threads": threads,
        "use_xnnpack": bool(settings["use_xnnpack"]),
        "capped": sorted(int(k) for k, f in figures.items() if f["capped"]),
        # Why each timing loop ended: min_runs (the count), target_ci (steady early) or max_seconds (the cap).
        "stopped": {k: f["stopped"] for k, f in figures.items()},
        "warmup_runs": {k: f["warmup_runs"] for k, f in figures.items()},  # after the first invoke
        "settings": {k: settings.get(k) for k in ("warmup", "min_runs", "min_seconds", "max_seconds", "target_ci")},
        "inputs": inputs_source,
        "environment": environment,
    }
    files = {"samples": "samples.json"} | ({"inputs": inputs_file} if inputs_file else {})
    return StageResult(files=files, meta=meta, metrics=metrics)
