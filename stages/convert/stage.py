"""Convert stage: one TFLite variant of the (head of the) model, then check it is what was asked for.

The variant's quantization scheme (stages/convert/schemes.py) picks the conversion path: its backend's (the
TFLiteConverter here, AI Edge Quantizer in quantization/aeq.py) or the int8_mixed search (quantization/stage.py).
Every path hands back a `Conversion`; the StageResult is built once, here.

Converter roads, simplest first, the one that worked recorded in `meta.convert_path`: the model as loaded (unknown
non-batch dims fixed from `model.input_shapes` or the data, see `stages.load.shapes`), then with batch 1 (recurrent
layers become TFLite's fused kernels only with a fixed batch). A variant that does not apply to the model
(integer I/O on a model whose inputs are all integer) is skipped with the reason.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from stages.convert.conversion import Conversion
from stages.convert.converter import (
    captured_stderr,
    convert_flatbuffer,
    failure_message,
    missing_kernels,
)
from stages.convert.quantization import repair
from stages.convert.quantization.aeq_convert import convert_aeq
from stages.convert.quantization.stage import convert_mixed, integer_info
from stages.convert.schemes import FLOAT, scheme
from stages.convert.variant_checks import check_calibration, check_variant, explain_float_ops, inspect_tflite
from stages.load.model.formats import shape_overrides
from stages.load.shapes import batch_one, fixed_shapes
from stages.result import StageError, StageResult
from stages.samples import load_samples

__all__ = ["check_calibration", "check_variant", "convert", "inspect_tflite", "not_applicable"]


def not_applicable(variant: dict[str, Any], inputs: list[dict[str, Any]]) -> str | None:
    """Why the variant does not apply to a model with these inputs, or None."""
    io = variant.get("io_dtype", "float32")
    if scheme(variant["mode"]).compute and io != "float32" and all(np.dtype(i["dtype"]).kind in "iub" for i in inputs):
        names = [i["name"] for i in inputs]
        return (
            f"{io} input/output does not apply: every input of the model ({names}) is integer or boolean "
            "(ids, indices, masks), and those pass through unquantized in every variant"
        )
    return None


def _roads(handle: Any, shapes: dict[str, list[int | None]]) -> list[tuple[str, dict[str, Any]]]:
    roads = [("as_loaded", shapes)]
    one = batch_one([i.to_json() for i in handle.inputs], shapes)  # batch 1 on each input's own batch axis
    if one != shapes:
        roads.append(("batch1", one))
    return roads


def _kept_log(log: Path, out: Path, variant: str) -> Path:
    """A failed stage's folder is discarded: keep its converter log next to the cache entries."""
    kept = out.parent / "failed-logs" / f"{out.name.removeprefix('.tmp-')}-{variant}.log"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(log, kept)
    return kept


class _Refused(Exception):
    """The converter refused every road; `text` is its log (a first try that repair may still fix)."""

    def __init__(self, text: str) -> None:
        super().__init__(text[-300:])
        self.text = text


def _convert(
    handle: Any,
    variant: dict[str, Any],
    calib: dict[str, np.ndarray],
    out: Path,
    final: bool = True,
    made: bytes | None = None,
) -> tuple[bytes, str, Any]:
    """The converted model, its road and the handle it was converted from; a failure of every road is the
    StageError users read, or `_Refused` when not `final` (the caller may repair and try again). `made`: this
    handle's first road, already converted with these settings."""
    log = out / "converter.log"
    shapes = fixed_shapes([i.to_json() for i in handle.inputs], None, calib)
    roads = _roads(handle, shapes)
    for index, (road, road_shapes) in enumerate(roads):
        fixed = {k: tuple(v) for k, v in road_shapes.items()}
        shaped = handle.retrace(fixed) if road == "batch1" and handle.retrace else handle.with_shapes(fixed)
        with log.open("a") as sink:
            sink.write(f"=== road {road}: input shapes {road_shapes}\n")
        try:
            with captured_stderr(log):
                first = made if index == 0 and shaped is handle else None
                flatbuffer, via = convert_flatbuffer(shaped, variant, calib, out, first)
            return flatbuffer, f"{road}/{via}", shaped
        except StageError:
            raise
        except Exception as err:  # noqa: BLE001 - ConverterError and friends; the log keeps everything
            with log.open("a") as sink:
                sink.write(f"{type(err).__name__}: {err}\n")
            if index == len(roads) - 1 or missing_kernels(str(err)):  # no other road has other rules
                text = log.read_text(errors="replace")
                if not final:
                    raise _Refused(text) from None
                kept = _kept_log(log, out, variant["name"])
                raise StageError(failure_message(variant["name"], text, kept)) from None
        finally:
            for tmp in out.glob("savedmodel-*"):
                shutil.rmtree(tmp, ignore_errors=True)
    raise AssertionError("unreachable")


def _converter_path(
    cfg: dict[str, Any], out: Path, load: StageResult, split: StageResult, calibrate: StageResult, handle: Any
) -> Conversion:
    """The converter backend's path: one TFLiteConverter call (on the roads above) with the scheme's flags."""
    variant = cfg["variant"]
    calib, _ = load_samples(calibrate.path("calib"))
    check_calibration(variant, calib)
    overrides = shape_overrides(load.meta["model"])
    if overrides:
        fixed = fixed_shapes([i.to_json() for i in handle.inputs], overrides, calib)
        handle = handle.with_shapes({k: tuple(v) for k, v in fixed.items()})
    # fp32 of a model split did not cut: split's builtins check converted exactly this (stages/split/stage.py).
    made = None
    if variant["mode"] == FLOAT and not overrides and "builtins" in split.files:
        made = split.path("builtins").read_bytes()
    started = time.perf_counter()
    limit, refused, repair_started = repair.budget(variant), [], 0.0
    try:
        flatbuffer, road, shaped = _convert(handle, variant, calib, out, final=not limit, made=made)
    except _Refused as first:  # an op without a rule at this precision: once more with it kept in float
        refused = missing_kernels(first.text)
        if not refused or variant.get("allow_float_ops"):
            raise StageError(
                failure_message(variant["name"], first.text, _kept_log(out / "converter.log", out, variant["name"]))
            ) from None
        repair_started = time.perf_counter()
        with (out / "converter.log").open("a") as sink:
            sink.write(f"=== repair: {refused} have no {variant['mode']} rule; kept in float (TFLITE_BUILTINS)\n")
        flatbuffer, road, shaped = _convert(handle, {**variant, "allow_float_ops": True}, calib, out)
    convert_s = time.perf_counter() - started
    (out / "model.tflite").write_bytes(flatbuffer)
    meta: dict[str, Any] = {
        "convert_path": road,
        "load_path": load.meta.get("load_path"),
        "input_shapes": {i.name: list(i.shape) for i in shaped.inputs},
    }
    moved = repair.converter_moves(variant, out / "model.tflite", refused) if limit or refused else []
    ops = repair.compute_ops(out / "model.tflite") if moved else 0  # read once: the check and its message
    if repair.too_much_float(moved, ops) and not variant.get("allow_float_ops"):
        if refused:
            raise StageError(
                f"Variant '{variant['name']}' asked for a full-integer {variant['mode']} model, but the converter "
                f"has no {variant['mode']} rule for {explain_float_ops(dict(Counter(m.op for m in moved)))}."
                + repair.too_many(variant, moved, ops)
            )
        moved = []  # the ops it left in float: check_variant names them and what to do
    if moved:  # allow_float_ops keeps any number in float, the same way; they are listed all the same
        seconds = time.perf_counter() - repair_started if refused else 0.0
        meta["quantization"] = {
            "repaired": [m.to_json() for m in moved],
            "repair": repair.summary(moved, int(bool(refused)), seconds, limit),
        }
    names = {i.key: i.name for i in [*handle.inputs, *handle.outputs]}
    files = {"tflite": "model.tflite", "log": "converter.log"}
    return Conversion(names, convert_s, files, meta, kept_float=bool(moved))


# The conversion path of each backend (stages/convert/schemes.py); a converter variant with a `search` block
# (int8_mixed) searches ops to keep in float instead (stages/convert/quantization/).
_PATHS = {"converter": _converter_path, "aeq": convert_aeq, "search": convert_mixed}


def convert(
    cfg: dict[str, Any], out_dir: str, load: StageResult, split: StageResult, calibrate: StageResult
) -> StageResult:
    from stages.litert_runtime import SignatureModel, describe_io
    from stages.load.model.access import deployed_handle

    variant = cfg["variant"]
    handle = deployed_handle(load, split)
    skipped = not_applicable(variant, [i.to_json() for i in handle.inputs])
    if skipped:
        return StageResult(meta={"skipped": skipped, "variant": variant})
    chosen = scheme(variant["mode"])
    path = "search" if variant.get("search") and chosen.backend == "converter" else chosen.backend
    made = _PATHS[path](cfg, Path(out_dir), load, split, calibrate, handle)
    tflite = Path(out_dir) / made.files["tflite"]
    converted = SignatureModel(tflite, made.names)
    io = describe_io(converted)
    contents = inspect_tflite(tflite)
    if made.checked:
        expected = {**contents, "float_ops": {}} if made.kept_float else contents
        dtypes = {i.name: i.dtype for i in [*handle.inputs, *handle.outputs]}
        check_variant(variant, io, expected, dtypes, converted)
    meta = {"variant": variant, "io": io, "contents": contents, "names": made.names, **made.meta}
    metrics = {"size_bytes": tflite.stat().st_size, "convert_s": round(made.seconds, 3), **made.metrics}
    files = dict(made.files)
    if chosen.debugger and path == "converter":  # per-layer table, calibration stability (quantization/)
        repaired = made.meta.get("quantization") or {}
        if repaired:  # the table and the stability check quantize the model as repaired: kernel-less ops in float
            cfg = {**cfg, "variant": {**variant, "allow_float_ops": True}}
        info, extra = integer_info(cfg, out_dir, load, split, calibrate, tflite)
        meta["quantization"] = {**info, **repaired}
        files.update(extra)
    return StageResult(files=files, meta=meta, metrics=metrics)
