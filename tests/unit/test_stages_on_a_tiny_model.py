"""Each stage on a tiny real model, called directly and writing to tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stages.result import StageResult
from tests.helpers.stage_chain import keras_model, load_split_calibrate, run_stage

VARIANTS = {
    "fp32": {"mode": "fp32", "io_dtype": "float32"},
    "fp16": {"mode": "fp16", "io_dtype": "float32"},
    "dynamic": {"mode": "dynamic", "io_dtype": "float32"},
    "int8": {"mode": "int8", "io_dtype": "float32"},
    "int8_io": {"mode": "int8", "io_dtype": "int8"},
    "int16x8": {"mode": "int16x8", "io_dtype": "float32"},
}


def _dir(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.mkdir()
    return str(path)


def _settled(result: StageResult, out_dir: str) -> StageResult:
    result.root = out_dir
    return result


@pytest.fixture(scope="module")
def upstream(tiny_keras: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, StageResult]:
    from stages.verify.reference import reference

    tmp = tmp_path_factory.mktemp("upstream")
    cal_cfg = {"dataset": {"kind": "digits"}, "num_samples": 20, "seed": 0}
    out = load_split_calibrate(tmp, keras_model(tiny_keras), cal_cfg)
    bench = {"enabled": True, "min_seconds": 0.05}
    out["reference"] = run_stage(
        reference, tmp, "ref", {"benchmark": bench}, out["load"], out["split"], out["calibrate"]
    )
    return out


def test_load_records_named_io(upstream: dict[str, StageResult]) -> None:
    """...and the next stages, asking with the names load recorded, get the handle load loaded (not a reload)."""
    from stages.load.model import _HANDLES
    from stages.load.model.access import source_handle

    loaded = list(_HANDLES.values())
    assert any(source_handle(upstream["load"]) is handle for handle in loaded)
    model = upstream["load"].meta["model"]
    assert model["name"] == "tiny"
    assert [i["name"] for i in model["inputs"]] == ["image"]
    assert model["inputs"][0]["shape"] == [None, 8, 8, 1]
    assert [o["name"] for o in model["outputs"]] == ["probs"]


def test_calibrate_makes_disjoint_recorded_sets(upstream: dict[str, StageResult]) -> None:
    from stages.samples import load_samples

    result = upstream["calibrate"]
    calib, no_labels = load_samples(result.path("calib"))
    evaluation, labels = load_samples(result.path("eval"))
    assert calib["image"].shape == (20, 8, 8, 1) and no_labels is None
    assert labels is not None and len(labels) == len(evaluation["image"]) == 450
    assert result.meta["calibration"]["count"] == 20 and len(result.meta["calibration"]["checksum"]) == 64
    flat_calib = {row.tobytes() for row in calib["image"]}
    assert not flat_calib & {row.tobytes() for row in evaluation["image"]}


def test_reference_computes_outputs_accuracy_and_latency(upstream: dict[str, StageResult]) -> None:
    from stages.verify.reference import load_reference

    result = upstream["reference"]
    outputs = load_reference(result)
    assert outputs["probs"].shape == (450, 10)
    assert np.allclose(outputs["probs"].sum(axis=1), 1, atol=1e-5)
    assert 0 <= result.metrics["accuracy"] <= 1
    assert result.metrics["latency_ms"]["p50"] > 0


@pytest.mark.parametrize("name", list(VARIANTS))
def test_convert_verify_benchmark_each_variant(name: str, upstream: dict[str, StageResult], tmp_path: Path) -> None:
    from stages.benchmark.stage import benchmark
    from stages.convert.stage import convert
    from stages.verify.stage import verify

    variant = {"name": name, **VARIANTS[name]}
    conv_dir = _dir(tmp_path, "convert")
    converted = _settled(
        convert({"variant": variant}, conv_dir, upstream["load"], upstream["split"], upstream["calibrate"]),
        conv_dir,
    )
    assert converted.path("tflite").stat().st_size == converted.metrics["size_bytes"] > 0
    io = converted.meta["io"]
    expected_dtype = "int8" if name == "int8_io" else "float32"
    assert io["inputs"]["image"]["dtype"] == io["outputs"]["probs"]["dtype"] == expected_dtype
    if name == "int8_io":
        assert io["inputs"]["image"]["scale"] > 0
    ver_dir = _dir(tmp_path, "verify")
    verified = verify(
        {"variant": variant},
        ver_dir,
        upstream["load"],
        upstream["split"],
        upstream["calibrate"],
        upstream["reference"],
        converted,
    )
    metrics = verified.metrics
    assert metrics["finite"] is True
    assert metrics["rmse"]["probs"] < (1e-5 if name == "fp32" else 0.05)
    assert metrics["argmax_agreement"] > (0.999 if name == "fp32" else 0.8)
    assert "accuracy_delta" in metrics
    timed = benchmark(
        {
            "benchmark": {
                "enabled": True,
                "num_threads": 1,
                "use_xnnpack": True,
                "warmup": 2,
                "min_runs": 5,
                "min_seconds": 0.01,
                "max_seconds": 5,
            }
        },
        _dir(tmp_path, "bench"),
        converted,
    )
    assert timed.metrics["latency_ms"]["count"] >= 5
    assert 0 < timed.metrics["latency_ms"]["p50"] <= timed.metrics["latency_ms"]["p99"]


def test_fp32_reuses_the_split_checks_conversion(upstream: dict[str, StageResult], tmp_path: Path) -> None:
    """A model with nothing to cut was converted once by split's builtins check; fp32 ships that very file
    (same bytes, same road) instead of converting again, and a quantized variant still converts its own."""
    from stages.convert.stage import convert

    split = upstream["split"]
    assert split.meta["head_outputs"] is None and "builtins" in split.files
    checked = split.path("builtins").read_bytes()
    fp32 = _settled(
        convert({"variant": {"name": "fp32", "mode": "fp32"}}, _dir(tmp_path, "fp32"), *_chain(upstream)),
        str(tmp_path / "fp32"),
    )
    assert fp32.path("tflite").read_bytes() == checked
    assert fp32.meta["convert_path"].startswith("as_loaded/")
    fp16 = _settled(
        convert({"variant": {"name": "fp16", "mode": "fp16"}}, _dir(tmp_path, "fp16"), *_chain(upstream)),
        str(tmp_path / "fp16"),
    )
    assert fp16.path("tflite").read_bytes() != checked


def _chain(upstream: dict[str, StageResult]) -> tuple[StageResult, StageResult, StageResult]:
    return upstream["load"], upstream["split"], upstream["calibrate"]


def test_a_variant_too_slow_for_the_budget_is_verified_on_a_recorded_subset(
    upstream: dict[str, StageResult], tmp_path: Path
) -> None:
    """With a budget no model meets, verify judges the first `min_samples` evaluation samples: every figure, the
    original's accuracy included, on those same samples, and the stage says what it shortened and why."""
    from stages.convert.stage import convert
    from stages.samples import load_samples
    from stages.verify.metrics import accuracy
    from stages.verify.reference import load_reference
    from stages.verify.stage import verify

    variant = {"name": "int16x8", **VARIANTS["int16x8"]}
    conv_dir = _dir(tmp_path, "convert")
    converted = _settled(convert({"variant": variant}, conv_dir, *_chain(upstream)), conv_dir)
    budget = {"max_seconds": 1e-9, "min_samples": 40}
    verified = verify(
        {"variant": variant, "verify": budget}, _dir(tmp_path, "v"), *_chain(upstream), upstream["reference"], converted
    )
    shortened = verified.meta["shortened"]
    feeds, labels = load_samples(upstream["calibrate"].path("eval"))
    assert shortened["samples"] == 40 and shortened["of"] == len(labels) > 40
    assert "verify.max_seconds" in shortened["why"] and shortened["ms_per_sample"] > 0
    original = accuracy(load_reference(upstream["reference"])["probs"][:40], labels[:40])
    assert verified.metrics["accuracy_delta"] == pytest.approx(verified.metrics["accuracy"] - original, abs=1e-6)
    whole_dir = _dir(tmp_path, "w")
    whole = verify(
        {"variant": variant, "verify": {"max_seconds": None}},
        whole_dir,
        *_chain(upstream),
        upstream["reference"],
        converted,
    )
    assert not whole.meta  # null: the whole evaluation set, always
    details = json.loads((Path(whole_dir) / "verification.json").read_text())
    assert details["samples"] == len(labels) and details["interpreters"] == 1  # a fast model: one interpreter


def test_a_slow_variant_is_split_across_interpreters_without_changing_its_outputs(
    upstream: dict[str, StageResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the rest of the set would take longer than PARALLEL_AFTER_S, one interpreter per core runs a share of
    it in a thread (LiteRT's invoke releases the GIL); the outputs are the single interpreter's, in order."""
    from stages.convert.stage import convert
    from stages.litert_runtime import SignatureModel
    from stages.samples import load_samples
    from stages.verify import budget

    variant = {"name": "fp32", **VARIANTS["fp32"]}
    conv_dir = _dir(tmp_path, "convert")
    converted = _settled(convert({"variant": variant}, conv_dir, *_chain(upstream)), conv_dir)
    feeds, _ = load_samples(upstream["calibrate"].path("eval"))
    opened: list[SignatureModel] = []

    def open_model() -> SignatureModel:
        opened.append(SignatureModel(converted.path("tflite"), converted.meta["names"]))
        return opened[-1]

    alone = budget.run_within_budget(open_model, feeds, {"max_seconds": None}, "fp32")
    monkeypatch.setattr(budget, "PARALLEL_AFTER_S", 0.0)
    monkeypatch.setattr(budget.host, "usable_cpus", lambda: 3)
    split = budget.run_within_budget(open_model, feeds, {"max_seconds": None}, "fp32")
    assert (alone.interpreters, split.interpreters, len(opened)) == (1, 3, 4)
    assert alone.shortened is None and split.shortened is None
    for name, values in alone.outputs.items():
        assert len(values) == len(next(iter(feeds.values())))
        np.testing.assert_array_equal(split.outputs[name], values)


def test_variants_differing_only_in_io_share_one_layer_table_within_a_run(
    upstream: dict[str, StageResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QuantizationDebugger quantizes with float I/O whatever the variant asks, so int8 and int8_io would compute
    the same table: within a run (the engine's run memo) the first computes it and the second reads it; a stage
    called on its own computes its own."""
    from stages import run_memo
    from stages.convert.quantization import debugger
    from stages.load.model.access import deployed_handle
    from stages.samples import load_samples

    handle = deployed_handle(upstream["load"], upstream["split"])
    calib, _ = load_samples(upstream["calibrate"].path("calib"))
    opened: list[str] = []
    real = debugger.open_debugger

    def counted(handle: object, variant: dict[str, object], *rest: object) -> object:
        opened.append(str(variant["name"]))
        return real(handle, variant, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(debugger, "open_debugger", counted)
    settings, where = {"debug_samples": 8}, str(upstream["calibrate"].path("calib"))
    tables = {}
    with run_memo.run_memo() as memo:
        for name in ("int8", "int8_io"):
            out = _dir(tmp_path, name)
            variant = {"name": name, **VARIANTS[name]}
            info, files = debugger.record_layers(handle, variant, calib, settings, out, None, where)
            tables[name] = (info, (Path(out) / files["layers"]).read_text())
    assert opened == ["int8"]
    assert tables["int8"] == tables["int8_io"] and tables["int8"][0]["layers"]
    assert not memo.exists()  # the memo goes with the run
    variant = {"name": "int8_io", **VARIANTS["int8_io"]}
    debugger.record_layers(handle, variant, calib, settings, _dir(tmp_path, "alone"), None, where)
    assert opened == ["int8", "int8_io"]
