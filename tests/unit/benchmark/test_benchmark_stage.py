"""The benchmark stage on a tiny real .tflite: sample counts, ordered percentiles, the XNNPACK and thread
settings recorded, timing in a separate TensorFlow-free process, integer inputs timed on real samples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stages.benchmark.config import thread_counts
from stages.benchmark.stage import benchmark, run_child
from stages.result import InputError, StageError, StageResult


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory: pytest.TempPathFactory) -> StageResult:
    """A two-layer dense model converted to fp32 .tflite, wrapped as the convert stage's result."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16,), name="x")
    outputs = keras.layers.Dense(4, name="y")(keras.layers.Dense(32, activation="relu")(inputs))
    model = keras.Model(inputs, outputs)
    root = tmp_path_factory.mktemp("convert")
    (root / "model.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return StageResult(files={"tflite": "model.tflite"}, root=str(root))


def settings(**overrides: Any) -> dict[str, Any]:
    base = {
        "enabled": True,
        "num_threads": 1,
        "use_xnnpack": True,
        "warmup": 3,
        "min_runs": 40,
        "min_seconds": 0.05,
        "max_seconds": 5.0,
    }
    return {"benchmark": {**base, **overrides}}


def test_stage_keeps_every_sample_and_orders_percentiles(tiny_tflite: StageResult, tmp_path: Path) -> None:
    result = benchmark(settings(), str(tmp_path), tiny_tflite)
    latency = result.metrics["latency_ms"]
    assert latency["count"] >= 40
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"]
    assert latency["stdev"] >= 0 and latency["mean"] > 0
    assert result.metrics["init_ms"] > 0 and result.metrics["first_invoke_ms"] > 0
    assert 0 < result.metrics["interpreter_peak_mb"] <= result.metrics["peak_rss_mb"] < 1024
    samples = json.loads((tmp_path / result.files["samples"]).read_text())["by_threads"]["1"]
    assert len(samples) == latency["count"] and min(samples) > 0
    env = result.meta["environment"]
    assert env["litert"] and env["tensorflow"] and env["cpu"] and env["usable_cpus"] >= 1
    assert result.meta["use_xnnpack"] is True and result.meta["num_threads"] == 1 and result.meta["capped"] == []


def test_xnnpack_off_and_thread_list_are_recorded(tiny_tflite: StageResult, tmp_path: Path) -> None:
    result = benchmark(settings(use_xnnpack=False, num_threads=[2, 1], min_runs=10), str(tmp_path), tiny_tflite)
    assert result.meta["use_xnnpack"] is False
    assert result.meta["threads"] == [2, 1] and result.meta["num_threads"] == 2
    assert set(result.metrics["by_threads"]) == {"1", "2"}
    assert result.metrics["latency_ms"] == result.metrics["by_threads"]["2"]["latency_ms"]
    samples = json.loads((tmp_path / "samples.json").read_text())["by_threads"]
    assert len(samples["1"]) >= 10 and len(samples["2"]) >= 10


def test_timing_runs_in_a_separate_process_without_tensorflow(tiny_tflite: StageResult) -> None:
    import os

    spec = {
        "model_path": str(tiny_tflite.path("tflite")),
        "num_threads": 1,
        "use_xnnpack": True,
        "warmup": 1,
        "min_runs": 5,
        "min_seconds": 0.0,
        "max_seconds": 5.0,
    }
    result = run_child(spec, timeout_s=120)
    assert result["process"]["pid"] != os.getpid()
    assert result["process"]["tensorflow_loaded"] is False
    # min_seconds 0: the first invoke counts as the warm-up, as for a model whose first invoke takes that long
    assert result["warmup_runs"] == 0
    warmed = run_child({**spec, "warmup": 3, "min_seconds": 5.0, "min_runs": 1, "max_seconds": 0.01}, 120)
    assert warmed["warmup_runs"] == 3  # a fast model: every warm-up invoke within min_seconds


def test_max_seconds_caps_timing_and_says_so(tiny_tflite: StageResult, tmp_path: Path) -> None:
    result = benchmark(settings(min_runs=10**9, max_seconds=0.05), str(tmp_path), tiny_tflite)
    assert 1 <= result.metrics["latency_ms"]["count"] < 10**9
    assert result.meta["capped"] == [1]


def test_a_steady_mean_ends_timing_before_min_runs_and_says_so(tiny_tflite: StageResult, tmp_path: Path) -> None:
    """With a confidence target the loop ends once min_seconds passed and the mean is known that closely, long
    before an unreachable min_runs or max_seconds; without one the same settings run to max_seconds."""
    steady = benchmark(settings(min_runs=10**9, max_seconds=3.0, target_ci=0.2), str(tmp_path), tiny_tflite)
    assert steady.meta["stopped"] == {"1": "target_ci"} and steady.meta["capped"] == []
    assert 10 <= steady.metrics["latency_ms"]["count"] < 10**9
    assert sum(json.loads((tmp_path / steady.files["samples"]).read_text())["by_threads"]["1"]) < 2000  # ms
    (tmp_path / "n").mkdir()
    counted = benchmark(settings(min_runs=10**9, max_seconds=0.3, target_ci=None), str(tmp_path / "n"), tiny_tflite)
    assert counted.meta["stopped"] == {"1": "max_seconds"} and counted.meta["capped"] == [1]


def test_disabled_benchmark_skips(tiny_tflite: StageResult, tmp_path: Path) -> None:
    assert benchmark(settings(enabled=False), str(tmp_path), tiny_tflite).meta == {"skipped": True}


@pytest.mark.parametrize("value", [0, -1, "2", [], [1, 0], True, 1.5])
def test_bad_thread_counts_are_input_errors(value: Any) -> None:
    with pytest.raises(InputError, match="benchmark.num_threads"):
        thread_counts(value)


def test_unreadable_model_fails_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "model.tflite").write_bytes(b"not a flatbuffer")
    broken = StageResult(files={"tflite": "model.tflite"}, root=str(tmp_path))
    with pytest.raises(StageError, match="benchmark.enabled=false"):
        benchmark(settings(), str(tmp_path / "out"), broken)


@pytest.fixture(scope="module")
def token_tflite(tmp_path_factory: pytest.TempPathFactory) -> StageResult:
    """Embedding (vocabulary 20) over int32 ids of variable length, converted to fp32 .tflite."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    ids = keras.Input((None,), dtype="int32", name="ids")
    x = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(20, 8)(ids))
    model = keras.Model(ids, keras.layers.Dense(2, name="y")(x))
    root = tmp_path_factory.mktemp("tokens")
    (root / "model.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return StageResult(files={"tflite": "model.tflite"}, root=str(root))


def _eval_set(tmp_path: Path, ids: Any, random: bool) -> StageResult:
    from stages.samples import save_samples

    save_samples(tmp_path / "eval.npz", {"ids": ids}, None)
    return StageResult(files={"eval": "eval.npz"}, meta={"random": random}, root=str(tmp_path))


def test_integer_inputs_are_timed_on_the_dataset_in_its_shape(token_tflite: StageResult, tmp_path: Path) -> None:
    import numpy as np

    ids = np.random.default_rng(0).integers(0, 20, (6, 9)).astype(np.int32)
    result = benchmark(settings(min_runs=30), str(tmp_path), token_tflite, _eval_set(tmp_path, ids, random=False))
    assert result.meta["inputs"] == "6 evaluation samples, cycled, batch 1"
    assert result.metrics["latency_ms"]["count"] >= 30
    with np.load(tmp_path / "inputs.npz") as fed:  # what the timing process was given: the samples themselves
        np.testing.assert_array_equal(fed["ids"], ids)


def test_integer_inputs_are_never_fed_made_up_values(token_tflite: StageResult, tmp_path: Path) -> None:
    import numpy as np

    # Without a dataset, invented ids index past the vocabulary: the interpreter itself says so ...
    spec = {
        "model_path": str(token_tflite.path("tflite")),
        "num_threads": 1,
        "use_xnnpack": True,
        "warmup": 0,
        "min_runs": 1,
        "min_seconds": 0.0,
        "max_seconds": 1.0,
        "seed": 0,
    }
    with pytest.raises(StageError, match="gather index out of bounds"):
        run_child(spec, 60)
    # ... so the stage skips timing with the reason instead (dataset=random, or no dataset at all).
    ids = np.random.default_rng(0).integers(0, 20, (4, 9)).astype(np.int32)
    skipped = benchmark(settings(), str(tmp_path), token_tflite, _eval_set(tmp_path, ids, random=True))
    assert (
        "integer inputs ['ids']" in skipped.meta["timing_skipped"] and "dataset=npz" in skipped.meta["timing_skipped"]
    )
    assert "latency_ms" not in skipped.metrics
    assert "timing_skipped" in benchmark(settings(), str(tmp_path), token_tflite).meta
