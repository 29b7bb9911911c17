"""What the convert stage adds for integer variants (per-layer table, stability check) and the int8_mixed
variant's conversion, which is a search instead of one converter call."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from stages.convert.conversion import Conversion
from stages.convert.quantization.debugger import DebugSamples, layer_table, open_debugger, record_layers, write_csv
from stages.convert.quantization.judge import Judge, summary
from stages.convert.schemes import FLOAT
from stages.result import StageError, StageResult
from stages.samples import load_samples


def io_names(handle: Any) -> dict[str, str]:
    """Signature key -> original tensor name, as the convert stage records them."""
    return {i.key: i.name for i in [*handle.inputs, *handle.outputs]}


def integer_info(
    cfg: dict[str, Any],
    out_dir: str,
    load: StageResult,
    split: StageResult,
    calibrate: StageResult,
    tflite: Path,
) -> tuple[dict[str, Any], dict[str, str]]:
    """`quantization` metadata of a converted int8/int16x8 variant: the debugger's table and, when
    `calibrate.stability=true`, the same variant calibrated on a second, disjoint subset."""
    from stages.convert.calibrated import converted
    from stages.load.model.access import deployed_handle

    variant, handle = cfg["variant"], deployed_handle(load, split)
    calib, _ = load_samples(calibrate.path("calib"))
    settings, calibration = cfg.get("quantization") or {}, str(calibrate.path("calib"))
    info, files = record_layers(handle, variant, calib, settings, out_dir, tflite, calibration)
    if "calib_b" in calibrate.files:

        def requantize(second: dict[str, np.ndarray]) -> bytes:
            return converted(handle, variant, second)

        info["stability"] = stability(load, split, calibrate, variant, tflite, requantize)
    return info, files


def stability(
    load: StageResult,
    split: StageResult,
    calibrate: StageResult,
    variant: dict[str, Any],
    tflite: Path,
    requantize: Callable[[dict[str, np.ndarray]], bytes],
) -> dict[str, Any]:
    """Metrics on the evaluation set of the variant as converted and as calibrated on the second subset, and
    their spread: a gate passed by a lucky calibration subset shows as a large spread or a disagreement."""
    from stages.load.model.access import deployed_handle

    second, _ = load_samples(calibrate.path("calib_b"))
    feeds, labels = load_samples(calibrate.path("eval"))
    random_data = bool(calibrate.meta.get("random"))
    names = io_names(deployed_handle(load, split))
    judge = Judge(
        load,
        split,
        feeds,
        labels,
        names,
        {},
        random_data,
        calibrate.meta.get("label_output"),
        calibrate.meta.get("output_kinds"),
    )
    first_metrics = judge.metrics(tflite.read_bytes())
    second_metrics = judge.metrics(requantize(second))
    a, b = summary(first_metrics), summary(second_metrics)
    return {
        "subsets": calibrate.meta["calibration"].get("stability"),
        "a": a,
        "b": b,
        "spread": {k: round(abs(a[k] - b[k]), 6) for k in a if k in b},
        # Judged after the stages by the variant's current gates (stages/verify/judge.py): `gates_agree`.
        "metrics": [first_metrics, second_metrics],
    }


def aeq_backend(handle: Any, variant: dict[str, Any], calib: dict[str, np.ndarray]) -> Any:
    """AI Edge Quantizer moves, from the fp32 conversion of the same model (quantization/aeq_moves.py)."""
    from stages.convert.converter_settings import make_converter
    from stages.convert.quantization.aeq_moves import AeqBackend

    fp32 = bytes(make_converter(handle, {**variant, "mode": FLOAT}, calib).convert())
    return AeqBackend(fp32, calib, {i.name: i.key for i in handle.inputs})


def convert_mixed(
    cfg: dict[str, Any], out: Path, load: StageResult, split: StageResult, calibrate: StageResult, handle: Any
) -> Conversion:
    """Full int8 first; then the search (stages.convert.quantization.mixed_search) over ops to keep in float."""
    from stages.convert.quantization.mixed_search import advice, run_search
    from stages.convert.quantization.moves import ConverterBackend
    from stages.convert.variant_checks import check_calibration

    variant, settings = cfg["variant"], dict(cfg["variant"]["search"])
    name = variant["name"]
    holdout = calibrate.meta.get("holdout") or {}
    if not holdout.get("count"):
        raise StageError(
            f"Variant '{name}' judges its trials on held-out samples, disjoint from calibration and evaluation, "
            "but the dataset left none after calibration. Lower `calibrate.num_samples` or give more samples."
        )
    calib, _ = load_samples(calibrate.path("calib"))
    check_calibration(variant, calib)
    feeds, labels = load_samples(calibrate.path("holdout"))
    names = io_names(handle)
    started = time.perf_counter()
    # The search ranks its candidates by this table: every asked sample, no time limit.
    samples = DebugSamples(handle, calib, int((cfg.get("quantization") or {}).get("debug_samples", 32)), None)
    debugger = open_debugger(handle, variant, calib, samples)
    layers = layer_table(debugger, variant["mode"])
    backends: list[Any] = []
    for kind in settings.get("backends") or ["converter"]:
        if kind == "converter":
            backends.append(ConverterBackend(debugger, bytes(debugger.get_nondebug_quantized_model())))
        else:
            backends.append(aeq_backend(handle, variant, calib))
    # The engine keeps gates out of what stages receive (and so out of cache keys); the search aims at its own
    # copy, `search.gates`, which the variant's config interpolates from its gates.
    gates = settings.get("gates") or {}
    judge = Judge(
        load,
        split,
        feeds,
        labels,
        names,
        gates,
        bool(calibrate.meta.get("random")),
        calibrate.meta.get("label_output"),
        calibrate.meta.get("output_kinds"),
    )
    best, trials = run_search(backends, judge, layers, settings)
    convert_s = time.perf_counter() - started
    path = out / "model.tflite"
    path.write_bytes(best.flatbuffer)
    write_csv(layers, out / "layers.csv")
    index = trials.index(best)
    quantization: dict[str, Any] = {
        "layers": layers,
        "debugger": samples.note(),
        "backend": best.backend,
        "moves": [f"{m.target} -> {m.kind}" for m in best.moves],
        "float_ops": sorted({op for m in best.moves if m.kind == "float" for op in m.ops}),
        "float_tensors": [m.target for m in best.moves if m.kind == "float"],
        "float_weight_fraction": round(best.float_fraction, 4),
        "trials": [t.to_json(i) for i, t in enumerate(trials)],
        "chosen_trial": index,
        "search": {
            **settings,
            "passed": best.passed,
            "samples": holdout,
            "seconds": round(convert_s, 3),
            "reference_accuracy": judge.reference_accuracy,
        },
    }
    if not best.passed:
        quantization["advice"] = advice(name, best, trials, float(settings["max_float_fraction"]))
    if "calib_b" in calibrate.files:
        chosen = best

        def requantize(second: dict[str, np.ndarray]) -> bytes:
            if chosen.backend != "converter":
                return aeq_backend(handle, variant, second).build(chosen.moves)
            other = open_debugger(handle, variant, second, DebugSamples(handle, second, 1, None))
            return ConverterBackend(other, bytes(other.get_nondebug_quantized_model())).build(chosen.moves)

        quantization["stability"] = stability(load, split, calibrate, variant, path, requantize)
    return Conversion(
        names,
        convert_s,
        {"tflite": "model.tflite", "layers": "layers.csv"},
        {"quantization": quantization},
        # AEQ models may have integer I/O, read with their own (scale, zero_point); moved ops were asked for.
        checked=best.backend == "converter",
        kept_float=bool(best.moves),
    )
