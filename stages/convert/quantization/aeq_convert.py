"""The AEQ backend's conversion path: fp32 conversion of the (head of the) model, then quantization by the
variant's recipe (stages/convert/quantization/aeq.py), repaired op by op when LiteRT refuses the result
(stages/convert/quantization/repair.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from stages.convert.conversion import Conversion
from stages.convert.quantization import repair
from stages.convert.quantization.aeq import (
    match_recipe,
    model_ops,
    needs_calibration,
    quantize_with_recipe,
    variant_recipe,
)
from stages.convert.schemes import FLOAT
from stages.load.batch_axis import axes_of
from stages.result import StageError, StageResult


def convert_aeq(
    cfg: dict[str, Any], out: Path, load: StageResult, split: StageResult, calibrate: StageResult, handle: Any
) -> Conversion:
    """The AEQ backend's path: fp32 conversion of the (head of the) model, then quantization by recipe.

    The fp32 model is converted here rather than taken from the `fp32` variant because per-variant nodes cannot
    depend on each other; it is kept as `float.tflite` next to the result (the search reuses it).
    """
    from stages.convert.converter_settings import make_converter
    from stages.convert.variant_checks import check_samples
    from stages.samples import load_samples

    variant = cfg["variant"]
    recipe, source = variant_recipe(variant)
    float_path = out / "float.tflite"
    started = time.perf_counter()
    try:
        float_path.write_bytes(make_converter(handle, {"mode": FLOAT, "name": variant["name"]}, {}).convert())
    except Exception as err:  # noqa: BLE001 - ConverterError and friends
        raise StageError(f"The TFLite converter failed (fp32, for '{variant['name']}'): {str(err)[:400]}") from None
    matches = match_recipe(recipe, model_ops(float_path))
    if not any(row["ops"] for row in matches):
        shown = sorted({f"{t} {s[:80]}" for t, s in model_ops(float_path)})[:12]
        raise StageError(
            f"The recipe of variant '{variant['name']}' ({source}) matches no op of this model, so nothing would "
            f"be quantized. Its entries: {[(r['regex'], r['operation']) for r in matches]}; the model's ops are "
            f"{shown}. Fix the entries' `regex` (searched in "
            "each op's output tensor names) or `operation`."
        )
    calib, _ = load_samples(calibrate.path("calib"))
    if needs_calibration(recipe):  # empty or constant samples would give zero ranges, silently
        check_samples(variant, calib)
    keys = {i.name: i.key for i in handle.inputs}
    axes = axes_of(load.meta["model"])
    quantize_started = time.perf_counter()

    calibrated: dict[str, Any] = {}  # repair's rebuilds reuse the float ranges of the first quantization

    def quantize(entries: list[dict[str, Any]]) -> Path:
        try:
            return quantize_with_recipe(float_path, entries, calib, out / "model.tflite", keys, calibrated, axes)
        except (ValueError, RuntimeError, KeyError) as err:
            raise StageError(f"AI Edge Quantizer failed for '{variant['name']}' ({source}): {str(err)[:400]}") from None

    path, recipe, moved, repaired = repair.aeq_quantize(variant, recipe, source, quantize)
    quantize_s, convert_s = (time.perf_counter() - t for t in (quantize_started, started))
    (out / "recipe.json").write_text(json.dumps(recipe, indent=2))
    meta: dict[str, Any] = {
        "backend": "aeq",
        "recipe": {"source": source, "entries": recipe, "unmatched": [r for r in matches if not r["ops"]]},
    }
    if moved:
        meta["quantization"] = {
            "repaired": [m.to_json() for m in moved],
            "repair": repaired,
        }
    return Conversion(
        names={i.key: i.name for i in [*handle.inputs, *handle.outputs]},
        seconds=convert_s,
        files={"tflite": "model.tflite", "float_tflite": "float.tflite", "recipe": "recipe.json"},
        meta=meta,
        metrics={"quantize_s": round(quantize_s, 3)},
        checked=False,
    )
