"""The second quantization backend: LiteRT's AI Edge Quantizer (AEQ), which quantizes a fp32 `.tflite` by recipe.

A recipe is a list of entries `{regex, operation, algorithm_key, op_config}`: every op whose scope (its output
tensor names) matches `regex` and whose type is `operation` (`*` for all supported) gets `op_config`; the last
matching entry wins. It needs no reconversion, so one quantization takes well under a second and a search can
change one op's precision per trial (`quantize_with_recipe`).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from stages.convert.schemes import scheme
from stages.result import InputError, StageError

GRANULARITIES = ("CHANNELWISE", "BLOCKWISE_32", "BLOCKWISE_64", "BLOCKWISE_128", "BLOCKWISE_256")
_ENTRY_KEYS = ("regex", "operation", "algorithm_key", "op_config")
_RECIPE_HELP = (
    "A recipe is a JSON list of entries like "
    '{"regex": ".*", "operation": "*", "algorithm_key": "min_max_uniform_quantize", "op_config": '
    '{"weight_tensor_config": {"num_bits": 8, "symmetric": true, "granularity": "CHANNELWISE", "dtype": "INT"}, '
    '"compute_precision": "FLOAT", "explicit_dequantize": true}}; see docs/quantization.md.'
)


def builtin_recipe(mode: str, granularity: str = "CHANNELWISE") -> list[dict[str, Any]]:
    """The recipe a named AEQ mode applies (its scheme's ai_edge_quantizer.recipe function), channelwise weights.

    A blockwise `granularity` goes where AEQ supports it (fully connected layers, the large matrices where
    per-block scales keep accuracy); every other op keeps channelwise weights instead of staying float.
    """
    from ai_edge_quantizer import recipe as recipes

    entries: list[dict[str, Any]] = json.loads(json.dumps(getattr(recipes, str(scheme(mode).recipe))(), default=str))
    if granularity != "CHANNELWISE":
        blockwise = copy.deepcopy(entries[-1])
        blockwise["operation"] = "FULLY_CONNECTED"
        blockwise["op_config"]["weight_tensor_config"]["granularity"] = granularity
        entries.append(blockwise)
    return entries


def validate_recipe(recipe: Any, source: str) -> list[dict[str, Any]]:
    """Raise InputError naming what is wrong unless AEQ's own recipe manager accepts every entry."""
    from ai_edge_quantizer import recipe_manager

    if not isinstance(recipe, list) or not recipe:
        raise InputError(f"The recipe {source} must be a non-empty JSON list of entries. {_RECIPE_HELP}")
    for index, entry in enumerate(recipe):
        missing = [k for k in _ENTRY_KEYS if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise InputError(f"Entry {index} of the recipe {source} lacks {missing}. {_RECIPE_HELP}")
        try:
            re.compile(entry["regex"])
        except (re.error, TypeError) as err:
            raise InputError(f"Entry {index} of the recipe {source} has an invalid regex: {err}.") from None
    try:
        recipe_manager.RecipeManager().load_quantization_recipe(copy.deepcopy(recipe))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise InputError(
            f"AI Edge Quantizer rejects the recipe {source}: {type(err).__name__}: {str(err)[:300]}. {_RECIPE_HELP}"
        ) from None
    return recipe


def load_recipe(path: str | Path) -> list[dict[str, Any]]:
    """Read and validate a user's recipe file; every problem is an InputError with the fix."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputError(
            f"The recipe file {file} does not exist. Set `variants.<name>.recipe` to a JSON recipe, e.g. "
            "`variants=[aeq_recipe] variants.aeq_recipe.recipe=my_recipe.json`."
        )
    try:
        recipe = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"The recipe file {file} is not valid JSON: {err}. {_RECIPE_HELP}") from None
    return validate_recipe(recipe, str(file))


def model_ops(float_tflite: str | Path) -> list[tuple[str, str]]:
    """(op type, scope) of every op AEQ can quantize, the two things a recipe entry matches on."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    model = fb.read_model(Path(float_tflite).read_bytes())
    ops = []
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            name = fb.TFL_OP_CODE_TO_NAME.get(model.operatorCodes[op.opcodeIndex].builtinCode)
            if name is not None:
                ops.append((str(name.value), fb.get_op_scope(op, subgraph.tensors)))
    return ops


def match_recipe(recipe: list[dict[str, Any]], ops: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Per entry: the ops it matches and supports, as AEQ resolves them (an unsupported match is skipped)."""
    from ai_edge_quantizer import algorithm_manager, qtyping
    from ai_edge_quantizer.recipe_manager import AlgorithmName

    rows = []
    for entry in recipe:
        matched = []
        for op_type, scope in ops:
            if entry["operation"] not in ("*", op_type) or not re.search(entry["regex"], scope):
                continue
            if entry["algorithm_key"] != AlgorithmName.NO_QUANTIZE:
                config = qtyping.OpQuantizationConfig.from_dict(copy.deepcopy(entry["op_config"]))
                try:
                    algorithm_manager.check_op_quantization_config(
                        entry["algorithm_key"], qtyping.TFLOperationName(op_type), config
                    )
                except ValueError:
                    continue
            matched.append(f"{op_type} {scope}")
        rows.append({"regex": entry["regex"], "operation": entry["operation"], "ops": matched})
    return rows


def override_ops(recipe: list[dict[str, Any]], scopes: list[str], precision: str) -> list[dict[str, Any]]:
    """`recipe` plus one entry per op scope (as `model_ops` gives them): a search's cheap moves without
    reconverting. `int16`/`int8`: int16/int8 activations with int8 weights; `float`: the op stays unquantized.

    An activation tensor's precision is settled by both the op writing it and the ops reading it, so moving
    one tensor to int16 means moving its producer and its consumers together.
    """
    if precision in ("int16", "int8"):
        entry = builtin_recipe(f"a{precision[3:]}w8")[0]
    elif precision == "float":
        entry = {"operation": "*", "algorithm_key": "no_quantize", "op_config": {}}
    else:
        raise ValueError(f"precision must be 'int16', 'int8' or 'float', not {precision!r}")
    return [*copy.deepcopy(recipe), *({**copy.deepcopy(entry), "regex": f"^{re.escape(s)}$"} for s in scopes)]


def needs_calibration(recipe: list[dict[str, Any]]) -> bool:
    """Whether the recipe quantizes activations statically (AEQ's own test)."""
    from ai_edge_quantizer import recipe_manager

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(copy.deepcopy(recipe))
    return bool(manager.need_calibration())


def signature_calibration(
    float_tflite: str | Path,
    calib: dict[str, np.ndarray],
    keys: dict[str, str],
    axes: dict[str, int | None] | None = None,
) -> Any:
    """AEQ's calibration input: {signature: [{input key: one sample}, ...]} from {input name: samples}
    (batch-first), each sample in the model's layout (`axes`: each input's batch axis, 0 when not given)."""
    from ai_edge_litert.interpreter import Interpreter

    from stages.load.batch_axis import to_model

    signature = next(iter(Interpreter(model_content=Path(float_tflite).read_bytes()).get_signature_list()))
    count = len(next(iter(calib.values())))
    axes = axes or {}
    return {
        signature: [
            {keys.get(n, n): to_model(a[i : i + 1], axes.get(n, 0)) for n, a in calib.items()} for i in range(count)
        ]
    }


def quantize_with_recipe(
    float_tflite: str | Path,
    recipe: list[dict[str, Any]],
    calibration: dict[str, np.ndarray] | None,
    out_path: str | Path,
    keys: dict[str, str] | None = None,
    calibrated: dict[str, Any] | None = None,
    axes: dict[str, int | None] | None = None,
) -> Path:
    """Quantize a fp32 .tflite by `recipe` into `out_path` (static recipes calibrate on `calibration`,
    {input name: samples}; `keys` maps input names to signature keys when they differ). `calibrated`: a dict
    that keeps the float tensors' ranges between calls on the same model and samples (a repair's rebuilds)."""
    from ai_edge_quantizer import quantizer

    q = quantizer.Quantizer(str(float_tflite), copy.deepcopy(recipe))
    result = None
    if q.need_calibration:
        if not calibration:
            raise StageError("This recipe quantizes activations statically and needs calibration samples; none given.")
        result = (calibrated or {}).get("ranges")
        if result is None:
            data = signature_calibration(float_tflite, calibration, keys or {}, axes)
            result = q.calibrate(data, num_threads=1)
        if calibrated is not None:
            calibrated["ranges"] = result
    out = Path(out_path)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(bytes(q.quantize(result, enable_progress_report=False).quantized_model))
    tmp.replace(out)
    return out


def refusal(path: Path) -> tuple[str, str, str] | None:
    """Why LiteRT cannot prepare the quantized model, (reason, op type, op scope), or None when it can. AEQ can
    write int16 ops whose scales overflow LiteRT's kernels (DEPTHWISE_CONV_2D on some models)."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    try:
        Interpreter(model_content=path.read_bytes()).allocate_tensors()
    except (RuntimeError, ValueError) as err:
        found = re.search(r"Node number (\d+) \((\w+)\)", str(err))
        op, scope = "", ""
        if found:
            subgraph = fb.read_model(path.read_bytes()).subgraphs[0]
            index = int(found.group(1))
            if index < len(subgraph.operators):
                op, scope = found.group(2), fb.get_op_scope(subgraph.operators[index], subgraph.tensors)
        return str(err).strip().splitlines()[0][:300].rstrip("."), op, scope
    return None


def refusal_message(name: str, source: str, refused: tuple[str, str, str], repaired: str = "") -> str:
    """One paragraph: LiteRT's reason, the op it names, and how to give that op another precision."""
    reason, op, scope = refused
    where = f" The failing op is {op} '{scope[:200]}'." if scope else ""
    return (
        f"LiteRT cannot run the model AI Edge Quantizer made for '{name}' ({source}): {reason}.{where}{repaired} "
        "Give that op another precision with a recipe (`aeq_recipe`, an entry whose regex matches it) or use "
        "another variant (e.g. aeq_a8w8)."
    )


def check_runs(path: Path, name: str, source: str) -> None:
    """Raise StageError naming the op unless LiteRT can prepare the quantized model."""
    refused = refusal(path)
    if refused is not None:
        raise StageError(refusal_message(name, source, refused))


def variant_recipe(variant: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The recipe a variant applies and where it came from (a built-in name or the user's file)."""
    mode = variant["mode"]
    function = scheme(mode).recipe
    if function is None:  # the user's recipe file
        if not variant.get("recipe"):
            raise InputError(
                f"Variant '{variant['name']}' uses mode `recipe` but names no recipe file: set "
                f"`variants.{variant['name']}.recipe=my_recipe.json`."
            )
        return load_recipe(variant["recipe"]), str(Path(variant["recipe"]).expanduser().resolve())
    granularity = str(variant.get("granularity") or "CHANNELWISE").upper()
    return builtin_recipe(mode, granularity), f"ai_edge_quantizer.recipe.{function} ({granularity})"


def reads_calibration(variant: dict[str, Any]) -> bool:
    """Whether converting `variant` ({name, mode, ...}) reads the calibration set. A `recipe` variant does when
    its recipe quantizes activations statically; that asks AI Edge Quantizer, imported only then."""
    calibrated = scheme(str(variant["mode"])).calibrated
    if calibrated is not None:
        return calibrated
    return needs_calibration(variant_recipe(variant)[0])
