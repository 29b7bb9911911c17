"""The compatibility matrix: tiny models built on the fly, one per trap real models set, each run
end to end through the CLI. fp32 must match the original model per named output to 1e-4."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cli import cli
from tests.helpers.compat_models import build

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Builds each case once per session, on first use."""
    root = tmp_path_factory.mktemp("compat")
    built: dict[str, tuple[str, Path, Path]] = {}

    def get(case: str) -> tuple[str, Path, Path]:
        if case not in built:
            built[case] = build(case, root)
        return built[case]

    return get


def run_case(
    models: Any, tmp_path: Path, case: str, variants: str, *extra: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    fmt, model, dataset = models(case)
    proc = cli(
        [
            f"model={fmt}",
            f"model.path={model}",
            "dataset=npz",
            f"dataset.path={dataset}",
            f"variants={variants}",
            "tracking.enabled=false",
            "benchmark.min_runs=5",
            "benchmark.min_seconds=0.1",
            "hydra.run.dir=run",
            f"runtime.cache_dir={tmp_path / 'cache'}",
            *extra,
        ],
        cwd=tmp_path,
    )
    report_file = tmp_path / "run" / "report.json"
    assert report_file.exists(), proc.stderr[-3000:]
    report = json.loads(report_file.read_text())
    assert "Traceback" not in proc.stderr and "loc(" not in json.dumps(report), proc.stderr[-3000:]
    return proc, report


def assert_fp32_matches(report: dict[str, Any], outputs: set[str], timed: bool = True) -> dict[str, Any]:
    fp32 = report["variants"]["fp32"]
    assert fp32["status"] == "passed", fp32
    assert set(fp32["metrics"]["max_abs_err"]) == outputs  # compared by the original names
    assert max(fp32["metrics"]["max_abs_err"].values()) <= 1e-4, fp32["metrics"]
    if timed:
        assert fp32["metrics"]["latency_ms"]["p50"] > 0
    return fp32


def test_savedmodel_whose_object_graph_cannot_be_revived(models: Any, tmp_path: Path) -> None:
    proc, report = run_case(models, tmp_path, "unrevivable", "[fp32,int8]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    fp32 = assert_fp32_matches(report, {"embedding", "scores", "logits"})
    assert fp32["conversion"]["load_path"] == "v1_session"


def test_dynamic_spatial_dims_are_fixed_from_the_data(models: Any, tmp_path: Path) -> None:
    proc, report = run_case(models, tmp_path, "dynamic_spatial", "[fp32,int8]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    fp32 = assert_fp32_matches(report, {"output_0"})
    assert fp32["conversion"]["input_shapes"] == {"image": [None, 24, 24, 3]}
    assert report["variants"]["int8"]["metrics"]["latency_ms"]["p50"] > 0  # XNNPACK could reshape it


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_recurrent_models_on_token_ids(models: Any, tmp_path: Path, kind: str) -> None:
    """The LSTM's run also carries int8 (one run, not two): the converter may crash (segfault) on it, the worker
    isolates that; the variant errors in plain words, the others pass."""
    variants = "[fp32,dynamic,int8,int8_io]" if kind == "lstm" else "[fp32,dynamic,int8_io]"
    proc, report = run_case(models, tmp_path, kind, variants, "benchmark.enabled=false")
    fp32 = assert_fp32_matches(report, {"probs"}, timed=False)
    assert fp32["conversion"]["convert_path"].startswith("batch1/"), fp32["conversion"]
    assert fp32["io"]["inputs"]["tokens"]["dtype"] == "int32"  # integer inputs are never quantized
    int8_io = report["variants"]["int8_io"]
    assert int8_io["status"] == "skipped" and "integer" in int8_io["reason"], int8_io
    assert report["variants"]["dynamic"]["status"] in ("passed", "failed"), report["variants"]["dynamic"]
    assert proc.returncode in (0, 1)
    if kind == "lstm":
        int8 = report["variants"]["int8"]
        assert int8["status"] in ("passed", "failed", "error")
        if int8["status"] == "error":
            assert "convert[int8]" in int8["error"] and len(int8["error"]) < 1200, int8["error"]


def test_transformer_on_variable_length_token_ids(models: Any, tmp_path: Path) -> None:
    # Timing token ids needs the dataset's real samples (the benchmark times them): verified, not timed, here.
    proc, report = run_case(models, tmp_path, "token_transformer", "[fp32,int8,int8_io]", "benchmark.enabled=false")
    fp32 = assert_fp32_matches(report, {"probs"}, timed=False)
    assert fp32["conversion"]["input_shapes"] == {"padding_mask": [None, 10], "token_ids": [None, 10]}
    assert {d["dtype"] for d in fp32["io"]["inputs"].values()} == {"int32"}
    assert report["variants"]["int8_io"]["status"] == "skipped"
    int8 = report["variants"]["int8"]
    if int8["status"] == "error":  # LayerNorm leaves float ops: named, and not blamed on the calibration
        assert "left these ops in float" in int8["error"] and "calibration data is not the cause" in int8["error"]
    assert proc.returncode in (0, 1)


def test_two_signatures_and_model_signature_picks_one(models: Any, tmp_path: Path) -> None:
    proc, report = run_case(models, tmp_path, "two_signatures", "[fp32]", "model.signature=embed")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_fp32_matches(report, {"embedding", "norm"})


@pytest.mark.parametrize("case", ["two_signatures", "efficientnet_style"])
def test_models_with_large_weights_convert_from_their_own_savedmodel_unfrozen(
    models: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """Every model counted as large: the user's SavedModel file (its chosen signature) or Keras's export is
    converted, the model is never frozen in Python, and the file matches the model per output name."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from stages.convert import converter
    from stages.load.model import conversion_roads, load_handle

    monkeypatch.setattr(conversion_roads, "LEAN_FROM_BYTES", 1)
    fmt, path, dataset = models(case)
    signature = "embed" if case == "two_signatures" else None
    handle = load_handle({"format": fmt, "path": str(path), "signature": signature, "safe_mode": True})
    flatbuffer, via = converter.convert_flatbuffer(handle, {"mode": "fp32", "name": "fp32"}, {}, tmp_path)
    assert via == {"two_signatures": "saved_model_file", "efficientnet_style": "keras_export"}[case]
    assert handle._fn is None  # never frozen
    data = np.load(dataset)
    feeds = {i.name: data[i.name if len(handle.inputs) > 1 else "x"][:3] for i in handle.inputs}
    expected = handle.run(feeds)
    runner = Interpreter(model_content=flatbuffer).get_signature_runner()
    got = runner(**{i.key: feeds[i.name] for i in handle.inputs})
    for out in handle.outputs:
        np.testing.assert_allclose(got[out.key], expected[out.name], atol=1e-4)


def test_efficientnet_style_model_keeps_its_signature(models: Any, tmp_path: Path) -> None:
    """In-graph normalization and swish (a custom gradient that TF cannot save with the frozen function)."""
    proc, report = run_case(models, tmp_path, "efficientnet_style", "[fp32,int8]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    fp32 = assert_fp32_matches(report, {"probs"})
    assert fp32["conversion"]["convert_path"] == "as_loaded/keras_export"  # Keras's export keeps the signature


def test_frozen_function_that_loses_its_signature_falls_back_to_a_savedmodel(models: Any, tmp_path: Path) -> None:
    """The same model without the Keras export road (as a SavedModel or a cut head would be): the frozen
    function converts without a SignatureDef (swish's custom gradient does not save), so the SavedModel road
    written here gives the file, with `serving_default`."""
    from dataclasses import replace

    from stages.convert.converter import convert_flatbuffer, has_signature
    from stages.load.model.keras_model import load_keras

    _, model, _ = models("efficientnet_style")
    handle = replace(load_keras(str(model), True), export=None, retrace=None)
    flatbuffer, via = convert_flatbuffer(handle, {"mode": "fp32", "name": "fp32"}, {}, tmp_path)
    assert via == "saved_model" and has_signature(flatbuffer)


def test_a_first_road_that_keeps_variables_gives_way_to_the_frozen_one(models: Any, tmp_path: Path) -> None:
    """A SavedModel whose variables the converter keeps (VAR_HANDLE: LiteRT never initialises them, the outputs
    are NaN) is not taken when the model can be frozen: the conversion goes on to the frozen road."""
    from dataclasses import replace

    import keras
    import tensorflow as tf

    from stages.convert.converter import convert_flatbuffer, holds_variables
    from stages.load.model.keras_model import keras_handle

    _, path, _ = models("efficientnet_style")
    model = keras.models.load_model(path)
    handle = keras_handle(model, {})

    def trap() -> tuple[str, str]:  # the Keras model as a tf.Module attribute: variables kept
        directory = tmp_path / f"trap{len(list(tmp_path.glob('trap*')))}"
        module = tf.Module()
        module.owner = model
        options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
        tf.saved_model.save(module, str(directory), signatures={"serving_default": handle.live}, options=options)
        return str(directory), "serving_default"

    trapped = replace(handle, export=trap, retrace=None)
    saved, key = trap()
    assert holds_variables(tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=[key]).convert())
    flatbuffer, via = convert_flatbuffer(trapped, {"mode": "fp32", "name": "fp32"}, {}, tmp_path)
    assert via in ("concrete_function", "saved_model") and not holds_variables(flatbuffer)


def test_batchnorm_in_nested_sequential_exported_with_model_export(models: Any, tmp_path: Path) -> None:
    proc, report = run_case(models, tmp_path, "nested_batchnorm", "[fp32]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_fp32_matches(report, {"output_0"})


def test_savedmodel_that_cannot_be_frozen_converts_with_its_variables(models: Any, tmp_path: Path) -> None:
    proc, report = run_case(models, tmp_path, "stateful", "[fp32]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    fp32 = assert_fp32_matches(report, {"scores"})
    assert fp32["conversion"]["convert_path"] == "as_loaded/saved_model_file"  # the file, variables and all
