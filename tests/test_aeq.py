"""The AI Edge Quantizer backend: recipe checks before any work, per-op precision that changes the result,
and AEQ variants through the whole pipeline.

The sensitive model is the outlier-channel construction: a small CNN whose first convolution's output
channels 0-1 are scaled up 1000x and the next convolution's matching input weights scaled back, so the float
function is unchanged but one per-tensor int8 range must cover both tiny and huge activations.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.engine.errors import ConfigError
from pipelines.engine.preflight import check_variants
from stages.result import StageError, StageResult

OUTLIER = 1000.0


def _recipe_variant(path: Path | str | None) -> dict[str, Any]:
    return {"aeq_recipe": {"backend": "aeq", "mode": "recipe", "recipe": None if path is None else str(path)}}


def _a8w8_with_int16_on(regex: str) -> list[dict[str, Any]]:
    """A user's recipe: static int8 everywhere, int16 activations on the ops matching `regex`."""
    from stages.convert.quantization.aeq import builtin_recipe

    int16 = builtin_recipe("a16w8")[0]
    return builtin_recipe("a8w8") + [{**int16, "regex": regex}]


# -- config and preflight: before any work (exit 2) -------------------------------------------------------------------


def test_aeq_variants_compose_with_their_backend() -> None:
    from tests.test_configs import _compose

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
    path.write_text(json.dumps(_a8w8_with_int16_on("conv1|conv2")))
    check_variants(_recipe_variant(path))


def test_the_docs_recipe_is_valid() -> None:
    from stages.convert.quantization.aeq import validate_recipe

    docs = (Path(__file__).resolve().parents[1] / "docs" / "quantization.md").read_text()
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
    recipe.write_text(json.dumps(_a8w8_with_int16_on("conv1")))
    variant = {"name": "aeq_recipe", "backend": "aeq", "mode": "recipe", "recipe": str(recipe)}
    node = Node(
        stage="convert", target="stages.convert.stage.convert", config={"variant": variant}, variant="aeq_recipe"
    )
    before = node_key(node, {"load": "a"})
    assert node_key(node, {"load": "a"}) == before
    recipe.write_text(json.dumps(_a8w8_with_int16_on("conv2")))  # same path, edited recipe: recompute
    assert node_key(node, {"load": "a"}) != before


def test_builtin_recipe_granularity() -> None:
    from stages.convert.quantization.aeq import builtin_recipe

    every, fully_connected = builtin_recipe("w4", "BLOCKWISE_32")
    assert every["operation"] == "*" and every["op_config"]["weight_tensor_config"]["granularity"] == "CHANNELWISE"
    assert fully_connected["operation"] == "FULLY_CONNECTED"
    assert fully_connected["op_config"]["weight_tensor_config"]["granularity"] == "BLOCKWISE_32"
    assert fully_connected["op_config"]["weight_tensor_config"]["num_bits"] == 4
    assert len(builtin_recipe("w4", "CHANNELWISE")) == 1


# -- a quantization-sensitive model: per-op precision by recipe ----------------------------------------------


def build_sensitive(path: Path, epochs: int = 15) -> None:
    """Digits CNN with outlier channels after conv1 (float function unchanged), saved as .keras."""
    import keras

    from stages.calibrate.datasets import digits_split

    keras.utils.set_random_seed(0)
    x_train, y_train, _, _ = digits_split(seed=0)
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs, name="sensitive_cnn")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x_train.reshape(-1, 8, 8, 1), y_train, epochs=epochs, batch_size=64, verbose=0)
    scale = np.ones(16, np.float32)
    scale[:2] = OUTLIER
    k1, b1 = model.get_layer("conv1").get_weights()
    k2, b2 = model.get_layer("conv2").get_weights()
    model.get_layer("conv1").set_weights([k1 * scale, b1 * scale])  # relu(s x) = s relu(x) for s > 0
    model.get_layer("conv2").set_weights([k2 / scale[None, None, :, None], b2])
    model.save(path)


@pytest.fixture(scope="module")
def sensitive(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The sensitive model as .keras and fp32 .tflite, with digits calibration and test data."""
    import keras
    import tensorflow as tf

    from stages.calibrate.datasets import digits_split

    root = tmp_path_factory.mktemp("sensitive")
    build_sensitive(root / "sensitive.keras")
    model = keras.models.load_model(root / "sensitive.keras")
    (root / "float.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    x_train, _, x_test, y_test = digits_split(seed=0)
    return {
        "root": root,
        "keras": root / "sensitive.keras",
        "float": root / "float.tflite",
        "calib": {"image": x_train[:100].reshape(-1, 8, 8, 1).astype(np.float32)},
        "test": (x_test.reshape(-1, 8, 8, 1).astype(np.float32), y_test),
    }


def _accuracy(path: Path, test: tuple[np.ndarray, np.ndarray]) -> float:
    from stages.litert_runtime import SignatureModel

    outputs = SignatureModel(path)({"image": test[0]})
    return float((next(iter(outputs.values())).argmax(-1) == test[1]).mean())


def test_int16_activations_on_one_tensor_recover_what_a8w8_loses(sensitive: dict[str, Any]) -> None:
    from stages.convert.quantization.aeq import builtin_recipe, quantize_with_recipe

    root, calib, test = sensitive["root"], sensitive["calib"], sensitive["test"]
    float_acc = _accuracy(sensitive["float"], test)
    a8w8 = quantize_with_recipe(sensitive["float"], builtin_recipe("a8w8"), calib, root / "a8w8.tflite")
    # int16 on the outlier tensor: conv1 writes it and conv2 reads it, so both ops take int16 activations
    mixed = quantize_with_recipe(sensitive["float"], _a8w8_with_int16_on("conv1|conv2"), calib, root / "mixed.tflite")
    a8w8_acc, mixed_acc = _accuracy(a8w8, test), _accuracy(mixed, test)
    assert float_acc > 0.9
    assert a8w8_acc < float_acc - 0.2, (float_acc, a8w8_acc)
    assert mixed_acc >= float_acc - 0.01, (float_acc, mixed_acc)
    assert mixed.stat().st_size < 0.5 * sensitive["float"].stat().st_size


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


def test_match_recipe_reports_entries_that_match_no_op(sensitive: dict[str, Any]) -> None:
    from stages.convert.quantization.aeq import builtin_recipe, match_recipe, model_ops

    ops = model_ops(sensitive["float"])
    rows = match_recipe(_a8w8_with_int16_on("no_such_layer"), ops)
    assert rows[0]["ops"] and len(rows[0]["ops"]) >= 4  # the catch-all entry: convs and dense layers
    assert rows[1]["ops"] == []
    conv_only = match_recipe([{**_a8w8_with_int16_on("conv1")[1], "operation": "FULLY_CONNECTED"}], ops)
    assert conv_only[0]["ops"] == []  # the regex matches conv1, but conv1 is not a FULLY_CONNECTED op
    every, blockwise = match_recipe(builtin_recipe("w4", "BLOCKWISE_32"), ops)
    assert {op.split()[0] for op in every["ops"]} == {"CONV_2D", "FULLY_CONNECTED"}
    assert blockwise["ops"] and {op.split()[0] for op in blockwise["ops"]} == {"FULLY_CONNECTED"}


def _upstream(model_path: Path, root: Path) -> dict[str, StageResult]:
    from stages.calibrate.stage import calibrate
    from stages.load.stage import load
    from stages.split.stage import split

    def settled(name: str, fn: Any, cfg: dict[str, Any], *args: StageResult) -> StageResult:
        (root / name).mkdir()
        result: StageResult = fn(cfg, str(root / name), *args)
        result.root = str(root / name)
        return result

    model = {"name": None, "format": "keras", "path": str(model_path), "safe_mode": True}
    out = {"load": settled("load", load, {"model": model})}
    out["split"] = settled("split", split, {"split": {"mode": "auto"}}, out["load"])
    cal_cfg = {"dataset": {"kind": "digits"}, "num_samples": 50, "seed": 0}
    out["calibrate"] = settled("cal", calibrate, cal_cfg, out["load"], out["split"])
    return out


def test_convert_stage_refuses_a_recipe_that_matches_no_op(sensitive: dict[str, Any], tmp_path: Path) -> None:
    from stages.convert.stage import convert

    recipe = tmp_path / "nothing.json"
    entry = {**_a8w8_with_int16_on("x")[0], "regex": "no_such_layer"}
    recipe.write_text(json.dumps([entry]))
    up = _upstream(sensitive["keras"], tmp_path)
    variant = {"name": "aeq_recipe", "backend": "aeq", "mode": "recipe", "recipe": str(recipe)}
    (tmp_path / "conv").mkdir()
    with pytest.raises(StageError, match=r"matches no op of this model.*no_such_layer.*CONV_2D"):
        convert({"variant": variant}, str(tmp_path / "conv"), up["load"], up["split"], up["calibrate"])
    assert not (tmp_path / "conv" / "model.tflite").exists()


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


# -- end to end --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_missing_recipe_exits_2_before_any_work(run_cli, tmp_path: Path) -> None:
    result = run_cli("variants=[aeq_recipe]", f"variants.aeq_recipe.recipe={tmp_path / 'missing.json'}")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "missing.json does not exist" in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("outputs/runs/*/*/report.json")) and not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_cli_user_recipe_changes_the_result(run_cli, sensitive: dict[str, Any], tmp_path: Path) -> None:
    """a8w8 fails its accuracy gate on the sensitive model; the user's recipe (int16 on the outlier tensor,
    plus an entry that matches nothing) passes, and the applied recipe lands in report.json and MLflow."""
    recipe = _a8w8_with_int16_on("conv1|conv2") + [{**_a8w8_with_int16_on("x")[1], "regex": "no_such_layer"}]
    (tmp_path / "my_recipe.json").write_text(json.dumps(recipe))
    result = run_cli(
        "model=keras",
        f"model.path={sensitive['keras']}",
        "variants=[aeq_a8w8,aeq_recipe]",
        "variants.aeq_recipe.recipe=my_recipe.json",
        "benchmark.enabled=false",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(next(tmp_path.glob("outputs/runs/*/*/report.json")).read_text())
    a8w8, mine = report["variants"]["aeq_a8w8"], report["variants"]["aeq_recipe"]
    assert a8w8["status"] == "failed" and not a8w8["gates"]["max_accuracy_drop"]["passed"]
    assert mine["status"] == "passed", mine
    assert mine["metrics"]["accuracy"] - a8w8["metrics"]["accuracy"] > 0.2
    assert mine["backend"] == "aeq" and mine["recipe"]["entries"] == recipe
    assert [r["regex"] for r in mine["recipe"]["unmatched"]] == ["no_such_layer"]
    assert any("no_such_layer" in note for note in report["notes"]) and "no_such_layer" in result.stdout
    assert re.search(r"aeq_recipe\s+aeq\s+passed", result.stdout) and "backend" in result.stdout
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        uri = db.execute(
            "select artifact_uri from runs join tags using (run_uuid) where key='variant' and value='aeq_recipe'"
        ).fetchone()[0]
    logged = Path(uri.removeprefix("file://")) / "recipe.json"
    assert json.loads(logged.read_text()) == recipe
