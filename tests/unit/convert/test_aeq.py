"""The AI Edge Quantizer backend: recipe checks before any work, and per-op precision that changes the result,
through the quantizer and through the convert stage, on the quantization-sensitive CNN
(tests/helpers/sensitive_cnn.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.engine.errors import ConfigError
from pipelines.engine.preflight import check_variants
from stages.result import StageError, StageResult
from tests.helpers.paths import REPO
from tests.helpers.sensitive_cnn import a8w8_with_int16_on
from tests.helpers.stage_chain import keras_model, load_split_calibrate


def _recipe_variant(path: Path | str | None) -> dict[str, Any]:
    return {"aeq_recipe": {"backend": "aeq", "mode": "recipe", "recipe": None if path is None else str(path)}}


def test_aeq_variants_compose_with_their_backend() -> None:
    from tests.helpers.configs import compose_config as _compose

    cfg = _compose(["variants=[aeq_w8,aeq_w4,aeq_a8w8,aeq_a16w8,aeq_recipe]", "variants.aeq_recipe.recipe=r.json"])
    assert {n: (v["backend"], v["mode"]) for n, v in cfg["variants"].items()} == {
        "aeq_w8": ("aeq", "w8"),
        "aeq_w4": ("aeq", "w4"),
        "aeq_a8w8": ("aeq", "a8w8"),
        "aeq_a16w8": ("aeq", "a16w8"),
        "aeq_recipe": ("aeq", "recipe"),
    }
    assert cfg["variants"]["aeq_recipe"]["recipe"] == "r.json"
    assert _compose(["variants=[int8]"])["variants"]["int8"]["backend"] == "converter"
    with pytest.raises(Exception, match="BLOCKWISE_7"):
        _compose(["variants=[aeq_w4]", "variants.aeq_w4.granularity=BLOCKWISE_7"])


def test_missing_recipe_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"recipe file .*nope\.json does not exist.*variants\.aeq_recipe\.recipe="):
        check_variants(_recipe_variant(tmp_path / "nope.json"))


def test_recipe_variant_without_a_recipe_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"names no recipe file.*variants\.aeq_recipe\.recipe=my_recipe\.json"):
        check_variants(_recipe_variant(None))


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        ("{not json", "is not valid JSON"),
        ("[]", "non-empty JSON list"),
        ('[{"regex": ".*", "operation": "*"}]', r"lacks \['algorithm_key', 'op_config'\]"),
        ('[{"regex": "(", "operation": "*", "algorithm_key": "x", "op_config": {}}]', "invalid regex"),
        (
            '[{"regex": ".*", "operation": "NOT_AN_OP", "algorithm_key": "min_max_uniform_quantize", '
            '"op_config": {"compute_precision": "FLOAT"}}]',
            "AI Edge Quantizer rejects the recipe",
        ),
    ],
)
def test_invalid_recipe_is_a_config_error(tmp_path: Path, content: str, phrase: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=phrase):
        check_variants(_recipe_variant(path))


def test_a_valid_recipe_passes_preflight(tmp_path: Path) -> None:
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(a8w8_with_int16_on("conv1|conv2")))
    check_variants(_recipe_variant(path))


def test_the_docs_recipe_is_valid() -> None:
    from stages.convert.quantization.aeq import validate_recipe

    docs = (REPO / "docs" / "quantization.md").read_text()
    block = re.search(r"```json\n(.*?)```", docs, re.S)
    assert block is not None
    recipe = validate_recipe(json.loads(block.group(1)), "docs/quantization.md")
    assert [e["regex"] for e in recipe] == [".*", "conv1|conv2"]


def test_mode_must_belong_to_its_backend() -> None:
    with pytest.raises(ConfigError, match=r"mode `a8w8` with backend `converter`.*backend=aeq"):
        _validate({"mine": {"backend": "converter", "mode": "a8w8"}})
    with pytest.raises(ConfigError, match=r"mode `int8` with backend `aeq`.*backend=converter"):
        _validate({"mine": {"backend": "aeq", "mode": "int8"}})


def _validate(variants: dict) -> None:
    """The compose-time check of each variant (stages/convert/config.py) on a config typed like Hydra's."""
    from omegaconf import OmegaConf

    from pipelines.engine.schema import validate
    from stages.convert.config import VariantConfig

    typed = {name: OmegaConf.merge(OmegaConf.structured(VariantConfig), v) for name, v in variants.items()}
    validate(OmegaConf.create({"variants": typed}))


def test_recipe_content_is_in_the_convert_cache_key(tmp_path: Path) -> None:
    from pipelines.engine.cache import node_key
    from pipelines.engine.dag import Node

    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps(a8w8_with_int16_on("conv1")))
    variant = {"name": "aeq_recipe", "backend": "aeq", "mode": "recipe", "recipe": str(recipe)}
    node = Node(
        stage="convert", target="stages.convert.stage.convert", config={"variant": variant}, variant="aeq_recipe"
    )
    before = node_key(node, {"load": "a"})
    assert node_key(node, {"load": "a"}) == before
    recipe.write_text(json.dumps(a8w8_with_int16_on("conv2")))  # same path, edited recipe: recompute
    assert node_key(node, {"load": "a"}) != before


def test_builtin_recipe_granularity() -> None:
    from stages.convert.quantization.aeq import builtin_recipe

    every, fully_connected = builtin_recipe("w4", "BLOCKWISE_32")
    assert every["operation"] == "*" and every["op_config"]["weight_tensor_config"]["granularity"] == "CHANNELWISE"
    assert fully_connected["operation"] == "FULLY_CONNECTED"
    assert fully_connected["op_config"]["weight_tensor_config"]["granularity"] == "BLOCKWISE_32"
    assert fully_connected["op_config"]["weight_tensor_config"]["num_bits"] == 4
    assert len(builtin_recipe("w4", "CHANNELWISE")) == 1


def _accuracy(path: Path, test: tuple[np.ndarray, np.ndarray]) -> float:
    from stages.litert_runtime import SignatureModel

    outputs = SignatureModel(path)({"image": test[0]})
    return float((next(iter(outputs.values())).argmax(-1) == test[1]).mean())


@pytest.mark.slow  # real conversions of seconds each: the fast tier keeps the cheaper ones
def test_int16_activations_on_one_tensor_recover_what_a8w8_loses(sensitive: dict[str, Any]) -> None:
    from stages.convert.quantization.aeq import builtin_recipe, quantize_with_recipe

    root, calib, test = sensitive["root"], sensitive["calib"], sensitive["test"]
    float_acc = _accuracy(sensitive["float"], test)
    a8w8 = quantize_with_recipe(sensitive["float"], builtin_recipe("a8w8"), calib, root / "a8w8.tflite")
    # int16 on the outlier tensor: conv1 writes it and conv2 reads it, so both ops take int16 activations
    mixed = quantize_with_recipe(sensitive["float"], a8w8_with_int16_on("conv1|conv2"), calib, root / "mixed.tflite")
    a8w8_acc, mixed_acc = _accuracy(a8w8, test), _accuracy(mixed, test)
    assert float_acc > 0.9
    assert a8w8_acc < float_acc - 0.2, (float_acc, a8w8_acc)
    assert mixed_acc >= float_acc - 0.01, (float_acc, mixed_acc)
    assert mixed.stat().st_size < 0.5 * sensitive["float"].stat().st_size


@pytest.mark.slow  # real conversions of seconds each: the fast tier keeps the cheaper ones
@pytest.mark.parametrize("precision", ["int16", "float"])
def test_override_ops_moves_one_tensor(sensitive: dict[str, Any], precision: str) -> None:
    """The search's moves: the outlier tensor's producer and consumer to int16, or left float, by exact scope."""
    from stages.convert.quantization.aeq import builtin_recipe, model_ops, override_ops, quantize_with_recipe

    root, test = sensitive["root"], sensitive["test"]
    scopes = [scope for op_type, scope in model_ops(sensitive["float"]) if "conv1" in scope or "conv2" in scope]
    assert len(scopes) == 2
    recipe = override_ops(builtin_recipe("a8w8"), scopes, precision)
    moved = quantize_with_recipe(sensitive["float"], recipe, sensitive["calib"], root / f"{precision}.tflite")
    assert _accuracy(moved, test) >= _accuracy(sensitive["float"], test) - 0.01
    with pytest.raises(ValueError, match="precision"):
        override_ops(recipe, scopes, "int4")


@pytest.mark.slow  # real conversions of seconds each: the fast tier keeps the cheaper ones
def test_match_recipe_reports_entries_that_match_no_op(sensitive: dict[str, Any]) -> None:
    from stages.convert.quantization.aeq import builtin_recipe, match_recipe, model_ops

    ops = model_ops(sensitive["float"])
    rows = match_recipe(a8w8_with_int16_on("no_such_layer"), ops)
    assert rows[0]["ops"] and len(rows[0]["ops"]) >= 4  # the catch-all entry: convs and dense layers
    assert rows[1]["ops"] == []
    conv_only = match_recipe([{**a8w8_with_int16_on("conv1")[1], "operation": "FULLY_CONNECTED"}], ops)
    assert conv_only[0]["ops"] == []  # the regex matches conv1, but conv1 is not a FULLY_CONNECTED op
    every, blockwise = match_recipe(builtin_recipe("w4", "BLOCKWISE_32"), ops)
    assert {op.split()[0] for op in every["ops"]} == {"CONV_2D", "FULLY_CONNECTED"}
    assert blockwise["ops"] and {op.split()[0] for op in blockwise["ops"]} == {"FULLY_CONNECTED"}


def _upstream(model_path: Path, root: Path) -> dict[str, StageResult]:
    calibrate = {"dataset": {"kind": "digits"}, "num_samples": 50, "seed": 0}
    return load_split_calibrate(root, keras_model(model_path), calibrate)


@pytest.mark.slow  # real conversions of seconds each: the fast tier keeps the cheaper ones
def test_convert_stage_refuses_a_recipe_that_matches_no_op(sensitive: dict[str, Any], tmp_path: Path) -> None:
    from stages.convert.stage import convert

    recipe = tmp_path / "nothing.json"
    entry = {**a8w8_with_int16_on("x")[0], "regex": "no_such_layer"}
    recipe.write_text(json.dumps([entry]))
    up = _upstream(sensitive["keras"], tmp_path)
    variant = {"name": "aeq_recipe", "backend": "aeq", "mode": "recipe", "recipe": str(recipe)}
    (tmp_path / "conv").mkdir()
    with pytest.raises(StageError, match=r"matches no op of this model.*no_such_layer.*CONV_2D"):
        convert({"variant": variant}, str(tmp_path / "conv"), up["load"], up["split"], up["calibrate"])
    assert not (tmp_path / "conv" / "model.tflite").exists()


@pytest.mark.slow  # real conversions of seconds each: the fast tier keeps the cheaper ones
def test_static_recipes_refuse_constant_calibration(sensitive: dict[str, Any], tmp_path: Path) -> None:
    from stages.convert.stage import convert
    from stages.samples import save_samples

    up = _upstream(sensitive["keras"], tmp_path)
    (tmp_path / "const").mkdir()
    save_samples(tmp_path / "const" / "calib.npz", {"image": np.zeros((10, 8, 8, 1), np.float32)}, None)
    constant = StageResult(files={"calib": "calib.npz"}, root=str(tmp_path / "const"))
    for mode in ("a8w8", "w8"):
        (tmp_path / mode).mkdir()
    a8w8 = {"name": "aeq_a8w8", "backend": "aeq", "mode": "a8w8"}
    with pytest.raises(StageError, match=r"'aeq_a8w8': the calibration data of input 'image' is constant"):
        convert({"variant": a8w8}, str(tmp_path / "a8w8"), up["load"], up["split"], constant)
    w8 = {"name": "aeq_w8", "backend": "aeq", "mode": "w8"}  # weight-only: calibration data is not used
    assert convert({"variant": w8}, str(tmp_path / "w8"), up["load"], up["split"], constant).metrics["size_bytes"]


@pytest.mark.slow  # real conversions of seconds each: the fast tier keeps the cheaper ones
def test_convert_stage_aeq_w4_and_a8w8(sensitive: dict[str, Any], tmp_path: Path) -> None:
    """Through the convert stage: int4 weights for w4, integer I/O with the model's own scales for a8w8."""
    from stages.convert.stage import convert

    up = _upstream(sensitive["keras"], tmp_path)
    results = {}
    for mode in ("w4", "a8w8"):
        out = tmp_path / mode
        out.mkdir()
        variant = {"name": f"aeq_{mode}", "backend": "aeq", "mode": mode, "granularity": "CHANNELWISE"}
        results[mode] = convert({"variant": variant}, str(out), up["load"], up["split"], up["calibrate"])
        results[mode].root = str(out)
    float_size = results["w4"].path("float_tflite").stat().st_size
    assert results["w4"].metrics["size_bytes"] < 0.25 * float_size
    assert results["w4"].meta["io"]["inputs"]["image"]["dtype"] == "float32"
    a8 = results["a8w8"].meta
    assert a8["backend"] == "aeq" and a8["recipe"]["source"].endswith("static_wi8_ai8 (CHANNELWISE)")
    assert a8["io"]["inputs"]["image"]["dtype"] == "int8" and a8["io"]["inputs"]["image"]["scale"] > 0
    assert json.loads(results["a8w8"].path("recipe").read_text()) == a8["recipe"]["entries"]
