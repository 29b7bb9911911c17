"""The timing process: `python -m stages.benchmark.child < spec.json > result.json`.

Latency is measured in a fresh process that imports only numpy and ai_edge_litert (never TensorFlow, never
the pipeline), so the figures carry none of the pipeline's memory, threads or allocator state, and peak RSS
is the interpreter's own. With `inputs_path` (an .npz of the evaluation samples, keyed by signature input
key, already in each input's dtype) every invoke gets the next sample, cycled, set before the first clock read;
only `interpreter.invoke()` sits between the two clock reads. Without it (no dataset), seeded random floats
are set once.

Spec: {"model_path", "inputs_path" (or null), "num_threads", "use_xnnpack", "warmup", "min_runs",
"min_seconds", "max_seconds", "seed", "batch_axes" ({input key: batch axis} where not 0; optional)}.
Result: {"init_ms", "first_invoke_ms", "samples_ms" (every timed invoke,
in order), "capped", "memory": {...}, "environment": {...}}; on failure {"error": "..."} and exit code 1.
"""

from __future__ import annotations

import array
import gc
import json
import os
import platform
import resource
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from stages.host import usable_cpus

# The SIMD features LiteRT's kernels (XNNPACK, ruy, the reference kernels) dispatch on: they explain most
# differences between hosts, so every figure carries them.
_RELEVANT_FLAGS = (
    "sse4_1",
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "sve",
    "i8mm",
    "bf16",
)


def _status_kib(field: str) -> int:
    """A /proc/self/status figure in KiB (VmRSS: now, VmHWM: peak); 0 where /proc is absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _peak_kib() -> int:
    """Peak RSS of this process. VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child
    of the TensorFlow-laden worker would report the worker's peak."""
    return _status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """What a latency figure depends on besides the model: CPU, its SIMD flags, cores, load, versions."""
    model, flags = platform.processor() or platform.machine(), set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model name") and model in (platform.processor(), platform.machine()):
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return {
        "cpu": model,
        "cpu_flags": [f for f in _RELEVANT_FLAGS if f in flags],
        "machine": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "litert": _version("ai-edge-litert"),
        "tensorflow": _version("tensorflow") or _version("tensorflow-cpu"),
        "numpy": _version("numpy"),
    }


def _inputs(details: dict[str, dict[str, Any]], seed: int) -> dict[str, Any]:
    """Random data in each input's own dtype and (resized) shape; integer inputs get quantized normals."""
    import numpy as np

    rng = np.random.default_rng(seed)
    raw = {}
    for name, d in details.items():
        shape = [int(s) for s in d["shape"]]
        dtype = np.dtype(d["dtype"])
        if dtype.kind == "f":
            raw[name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            raw[name] = rng.integers(0, 2, shape).astype(dtype)
        else:
            info = np.iinfo(dtype)
            scale, zero_point = d["quantization"]
            if scale:  # values a real float input would quantize to
                values = np.round(rng.standard_normal(shape) / scale) + zero_point
            else:
                values = rng.integers(0, min(info.max, 100), shape)
            raw[name] = np.clip(values, info.min, info.max).astype(dtype)
    return raw


def _dataset_feeds(interpreter: Any, path: str | None, axes: dict[str, int | None]) -> dict[int, Any] | None:
    """{tensor index: samples [count, 1, ...]} from the inputs file, the inputs resized to one sample; `axes`:
    {input key: batch axis} where it is not 0 (the spec's `batch_axes`)."""
    if not path:
        return None
    import numpy as np

    runner_inputs = interpreter.get_signature_runner().get_input_details() if interpreter.get_signature_list() else {}
    by_name = {d["name"]: d for d in interpreter.get_input_details()}
    feeds = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            detail = runner_inputs.get(key) or by_name.get(key)
            if detail is None:
                raise ValueError(f"the inputs file names '{key}', which is not an input of the model")
            values = data[key]
            axis = axes.get(key, 0)  # each sample with batch 1 on the input's batch axis (None: none)
            one = values if axis is None else np.expand_dims(values, axis + 1)
            interpreter.resize_tensor_input(detail["index"], list(one.shape[1:]))
            feeds[int(detail["index"])] = one
    return feeds


CONFIDENT_RUNS = 10  # timed invokes before the confidence target may end the loop


def _half_width(samples: Any, total: float, squares: float) -> float:
    """The 95% interval's half-width of the mean latency, as a fraction of the mean (normal approximation)."""
    n = len(samples)
    mean = total / n
    variance = max(0.0, (squares - n * mean * mean) / (n - 1))
    return 1.96 * (variance / n) ** 0.5 / mean if mean > 0 else 0.0


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Init, first invoke, warm-up, then timed invokes until min_runs and min_seconds, or the confidence target
    (`target_ci`) after min_seconds, or max_seconds."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    rss_before, clock = _status_kib("VmRSS"), time.perf_counter
    content = Path(spec["model_path"]).read_bytes()
    resolver = OpResolverType.AUTO if spec["use_xnnpack"] else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    start = clock()
    interpreter = Interpreter(
        model_content=content, num_threads=int(spec["num_threads"]), experimental_op_resolver_type=resolver
    )
    feeds = _dataset_feeds(interpreter, spec.get("inputs_path"), spec.get("batch_axes") or {})
    if feeds is None:
        for d in interpreter.get_input_details():  # dynamic dimensions (batch) become 1
            if any(int(s) < 0 for s in d["shape_signature"]):
                interpreter.resize_tensor_input(d["index"], [max(1, int(s)) for s in d["shape_signature"]])
    interpreter.allocate_tensors()
    init_ms = (clock() - start) * 1e3
    if feeds is None:
        raw = _inputs({d["name"]: d for d in interpreter.get_input_details()}, int(spec.get("seed", 0)))
        feeds = {d["index"]: raw[d["name"]][None] for d in interpreter.get_input_details()}
    count = len(next(iter(feeds.values())))
    set_tensor = interpreter.set_tensor

    def set_sample(i: int) -> None:
        for index, values in feeds.items():
            set_tensor(index, values[i % count])

    start = clock()
    set_sample(0)
    interpreter.invoke()
    first_ms = (clock() - start) * 1e3
    invoke = interpreter.invoke
    warm_until, warmed = start + float(spec["min_seconds"]), 0  # from the first invoke's start
    for i in range(int(spec["warmup"])):
        if clock() >= warm_until:  # a slow model: its first invoke(s) already warmed it (int16x8 on reference
            break  # kernels: one invoke of several seconds, which one more warm-up invoke would only repeat)
        set_sample(i)
        invoke()
        warmed += 1
    min_runs, samples = int(spec["min_runs"]), array.array("d")  # 8 bytes a sample
    target = spec.get("target_ci")
    total = squares = 0.0
    stopped = "max_seconds"
    begin = clock()
    enough, stop = begin + float(spec["min_seconds"]), begin + float(spec["max_seconds"])
    gc.disable()
    try:
        while True:
            if count > 1:
                set_sample(len(samples) + 1)
            t0 = clock()
            invoke()
            t1 = clock()
            took = t1 - t0
            samples.append(took)
            total, squares = total + took, squares + took * took
            if t1 >= stop:
                break
            if t1 >= enough and len(samples) >= min_runs:
                stopped = "min_runs"
                break
            if (
                target
                and t1 >= enough
                and len(samples) >= CONFIDENT_RUNS
                and _half_width(samples, total, squares) <= target
            ):
                stopped = "target_ci"
                break
    finally:
        gc.enable()
    peak_kib = _peak_kib()
    samples_ms = np.frombuffer(samples, dtype=np.float64) * 1e3
    return {
        "init_ms": round(init_ms, 3),
        "first_invoke_ms": round(first_ms, 3),
        "warmup_runs": warmed,
        "samples_ms": [round(float(v), 6) for v in samples_ms],
        "timed_s": round(float(samples_ms.sum()) / 1e3, 3),
        "capped": stopped == "max_seconds" and len(samples) < min_runs,
        "stopped": stopped,
        "memory": {
            # peak of the whole timing process, and the part added by the interpreter (model bytes included)
            "peak_rss_mb": round(peak_kib / 1024, 2),
            "interpreter_peak_mb": round(max(0, peak_kib - rss_before) / 1024, 2),
        },
        "environment": environment(),
        # evidence of isolation: a separate process with no TensorFlow loaded
        "process": {"pid": os.getpid(), "tensorflow_loaded": "tensorflow" in sys.modules},
    }


def main() -> int:
    try:
        result = measure(json.loads(sys.stdin.read()))
    except Exception as err:  # noqa: BLE001 - reported to the parent, which raises a StageError
        json.dump({"error": f"{type(err).__name__}: {err}"}, sys.stdout)
        return 1
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
