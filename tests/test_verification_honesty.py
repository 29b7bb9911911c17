"""Issue 16: a `passed` is never wrong. One test per defect found in the verification path."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from stages.result import StageResult

REPO = Path(__file__).resolve().parents[1]


def judge(gates: dict, metrics: dict, random_data: bool = False) -> tuple[str, dict]:
    from stages.verify.gates import judge as engine_judge

    return engine_judge(gates, metrics, random_data)


def _variant_gates(name: str) -> dict:
    """The shipped per-variant limits (its gate preset and its own overrides), so the defaults are under test."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from pipelines.engine.schema import register_configs

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("config", overrides=[f"variants=[{name}]"])
    return OmegaConf.to_container(cfg.variants[name].gates)  # type: ignore[return-value]


# 2. NaN-safe reductions: a NaN anywhere fails the gate that reads it, whatever the output order.
@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")])
def test_a_nan_error_fails_its_gate_in_any_output_order(order: tuple[str, str]) -> None:
    values = {"a": 0.0, "b": math.nan}
    rmse = {k: values[k] for k in order}
    metrics = {"rmse": rmse, "relative_rmse": rmse, "max_abs_err": rmse, "finite": True, "argmax_agreement": 1.0}
    status, gates = judge({"max_rmse": 0.01, "min_argmax_agreement": 0.9}, metrics)
    assert gates["max_rmse"]["evaluated"] and not gates["max_rmse"]["passed"]
    assert status == "failed"


def test_reference_outputs_that_are_not_finite_are_refused_with_the_output_and_count() -> None:
    from stages.result import InputError
    from stages.verify.reference import check_finite

    good = np.zeros((5, 3), np.float32)
    bad = np.zeros((5, 2), np.float32)
    bad[1, 0] = np.nan
    bad[3, 1] = np.inf
    with pytest.raises(InputError, match=r"'logits'.*2 of 5 samples"):
        check_finite({"probs": good, "logits": bad})
    check_finite({"probs": good})


# 3. Detection: empty references, spurious candidates, head finiteness.
def _detections(boxes: list[list[float]], scores: list[float], pad: int = 4) -> dict[str, np.ndarray]:
    b = np.zeros((1, pad, 4), np.float32)
    s = np.full((1, pad), -1.0, np.float32)
    labels = np.full((1, pad), -1, np.int32)
    for i, (box, score) in enumerate(zip(boxes, scores, strict=True)):
        b[0, i], s[0, i], labels[0, i] = box, score, 0
    return {"boxes": b, "scores": s, "labels": labels}


def test_against_an_empty_reference_every_confident_candidate_counts() -> None:
    from stages.verify.detection_metrics import match_detections

    names = {"boxes": "boxes", "scores": "scores", "labels": "labels"}
    result = match_detections(_detections([], []), _detections([[0, 0, 10, 10]], [0.9]), names)
    assert result["matched_fraction"] is None  # nothing to match: not a perfect score
    assert result["unmatched_candidates"] == 1
    metrics = {"detection": result, "finite": True, "rmse": {}, "max_abs_err": {}, "relative_rmse": {}}
    status, gates = judge(_variant_gates("fp32"), metrics)
    assert not gates["max_unmatched_fraction"]["passed"]
    assert status == "failed"


def test_right_boxes_plus_spurious_confident_ones_fail() -> None:
    from stages.verify.detection_metrics import match_detections

    names = {"boxes": "boxes", "scores": "scores", "labels": "labels"}
    reference = _detections([[0, 0, 10, 10]], [0.9])
    candidate = _detections([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], [0.9, 0.8, 0.7])
    result = match_detections(reference, candidate, names)
    assert result["matched_fraction"] == 1.0 and result["unmatched_candidates"] == 2
    metrics = {"detection": result, "finite": True, "rmse": {}, "max_abs_err": {}, "relative_rmse": {}}
    status, gates = judge(_variant_gates("int8"), metrics)
    assert gates["min_detection_match"]["passed"]
    assert not gates["max_unmatched_fraction"]["passed"]
    assert status == "failed"


def test_non_finite_head_outputs_fail_a_cut_graph() -> None:
    detection = {"matched_fraction": 1.0, "unmatched_candidates": 0, "reference_detections": 3}
    head = {"rmse": {"cls": math.nan}, "max_abs_err": {"cls": math.nan}, "finite": False}
    metrics = {"detection": detection, "head": head, "finite": True, "rmse": {}, "max_abs_err": {}}
    status, gates = judge(_variant_gates("int8"), metrics)
    assert not gates["finite_outputs"]["passed"]
    assert status == "failed"


# 4. Missing metrics are recorded, never silently dropped; no quality gate evaluated means `unverified`.
def test_a_gate_without_its_metric_is_not_evaluated_and_the_variant_is_unverified() -> None:
    metrics = {"finite": True, "rmse": {}, "max_abs_err": {}, "relative_rmse": {}}
    status, gates = judge({"max_accuracy_drop": 0.01, "min_argmax_agreement": 0.97}, metrics)
    assert status == "unverified"
    for name in ("max_accuracy_drop", "min_argmax_agreement"):
        assert gates[name]["evaluated"] is False and gates[name]["reason"]
        assert gates[name]["passed"] is None
    assert gates["finite_outputs"]["passed"] is True  # safety, not quality: cannot pass a variant alone


def test_random_data_int8_with_large_errors_is_not_passed() -> None:
    """The issue's case: relative RMSE 5.0 and agreement 0.10 on dataset=random, judged by the shipped limits."""
    metrics = {
        "finite": True,
        "rmse": {"probs": 0.5},
        "relative_rmse": {"probs": 5.0},
        "max_abs_err": {"probs": 0.9},
        "argmax_agreement": 0.10,
    }
    status, gates = judge(_variant_gates("int8"), metrics, random_data=True)
    assert gates["min_argmax_agreement"]["evaluated"] is False  # noise has no meaningful argmax
    assert gates["max_relative_rmse"]["evaluated"] and not gates["max_relative_rmse"]["passed"]
    assert status == "failed"


@pytest.mark.parametrize("variant", ["fp32", "fp16", "dynamic", "int8", "int8_io", "int16x8"])
def test_every_shipped_variant_has_label_free_quality_gates(variant: str) -> None:
    gates = _variant_gates(variant)
    assert gates.get("max_relative_rmse") is not None
    assert gates.get("min_argmax_agreement") is not None


# 7. Accuracy reads the same reshaped arrays as agreement.
def test_accuracy_on_a_three_dimensional_class_output_is_not_broadcast() -> None:
    from stages.verify.metrics import compare

    rng = np.random.default_rng(0)
    scores = rng.random((50, 1, 10)).astype(np.float32)
    labels = scores.reshape(50, 10).argmax(-1)
    metrics = compare({"probs": scores}, {"probs": scores.copy()}, labels, None)
    assert metrics["accuracy"] == 1.0
    assert metrics["argmax_agreement"] == 1.0


# 1. dataset.label_output is honoured; without it, the output whose width fits the labels is chosen.
def test_label_output_choice_fits_the_labels() -> None:
    from stages.verify.metrics import choose_label_output

    outputs = {"embed": np.zeros((4, 16)), "probs": np.zeros((4, 10))}
    labels = np.array([0, 9, 3, 4])
    assert choose_label_output(outputs, "probs", labels)[0] == "probs"
    name, why = choose_label_output(outputs, None, labels)
    assert name == "probs" and "10" in why
    assert choose_label_output({"embed": np.zeros((4, 16))}, None, np.array([0, 20]))[0] is None


def test_the_pipeline_hands_label_output_to_the_reference_stage() -> None:
    from hydra import compose, initialize_config_dir

    from pipelines.engine.schema import register_configs

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("config", overrides=["dataset.label_output=probs"])
    from omegaconf import OmegaConf

    stages = OmegaConf.to_container(cfg.pipeline.stages, resolve=True)
    assert stages["reference"]["config"]["label_output"] == "probs"


# 8. Gates leave the conversion's cache key.
def test_a_new_gate_limit_does_not_change_any_stage_key() -> None:
    from pipelines.engine.cache import node_key
    from pipelines.engine.dag import build_dag

    stages = {
        "convert": {"_target_": "tests.toy_stages.produce", "per_variant": True, "config": {}},
    }

    def keys(limit: float) -> dict[str, str]:
        variants = {"int8": {"mode": "int8", "gates": {"max_accuracy_drop": limit}}}
        return {n.id: node_key(n, {}) for n in build_dag(stages, variants)}

    assert keys(0.01) == keys(0.5)


# 6. The report records the seed actually used for sampling, and changing it changes the sample.
def test_calibrate_seed_changes_the_npz_calibration_sample(tmp_path: Path) -> None:
    from stages.calibrate.stage import calibrate

    data = tmp_path / "data.npz"
    np.savez(data, x=np.arange(400, dtype=np.float32).reshape(100, 4), y=np.arange(100) % 3)
    load = StageResult(meta={"model": {"inputs": [{"name": "x", "shape": [None, 4], "dtype": "float32"}]}})

    def run(seed: int) -> dict:
        out = tmp_path / f"cal{seed}"
        out.mkdir()
        dataset = {"kind": "npz", "path": str(data), "eval_fraction": 0.5, "max_eval_samples": 1000, "seed": 0}
        return calibrate({"dataset": dataset, "num_samples": 10, "seed": seed}, str(out), load, StageResult())

    first, second = run(0), run(1)
    assert first.meta["calibration"]["checksum"] != second.meta["calibration"]["checksum"]
    assert first.meta["calibration"]["seed"] == 0 and second.meta["calibration"]["seed"] == 1
    assert first.meta["calibration"]["split_seed"] == 0  # dataset.seed: which samples are held out


# 5. MLflow: an errored variant's child run ends FAILED; verdicts are filterable tags.
def test_errored_variant_child_run_ends_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.tracking.tracker import MlflowTracker

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri, "honesty")
    tracker.start({"model": {"name": "m"}}, "run")
    entries = {
        "good": {"status": "passed", "metrics": {}, "gates": {}},
        "bad": {"status": "error", "metrics": {}, "gates": {}, "error": "convert[bad]: boom"},
        "weak": {"status": "unverified", "metrics": {}, "gates": {}},
    }
    ids = {
        name: tracker.log_variant(name, entry, {"variant": {"name": name}}, tmp_path) for name, entry in entries.items()
    }
    tracker.abort()
    client = tracker.mlflow.tracking.MlflowClient(uri)
    runs = {name: client.get_run(run_id) for name, run_id in ids.items()}
    assert runs["good"].info.status == "FINISHED"
    assert runs["bad"].info.status == "FAILED"
    assert runs["weak"].data.tags["status"] == "unverified"


def test_verify_result_in_report_is_judged_by_shipped_limits(tmp_path: Path) -> None:
    """report.json records every configured gate with limit, value and outcome (or why it was not evaluated)."""
    from pipelines.engine.runner import Outcome
    from pipelines.output.report import _variant_entry

    convert_dir = tmp_path / "convert"
    convert_dir.mkdir()
    (convert_dir / "model.tflite").write_bytes(b"x")
    converted = StageResult(
        files={"tflite": "model.tflite"},
        meta={"io": {}, "contents": {"ops": {}}},
        metrics={"size_bytes": 1, "convert_s": 0.1},
        root=str(convert_dir),
    )
    verified = StageResult(
        metrics={"finite": True, "rmse": {"p": 0.0}, "relative_rmse": {"p": 0.0}, "max_abs_err": {"p": 0.0}}
    )
    outcomes = {"convert[v]": Outcome("ok", result=converted), "verify[v]": Outcome("ok", result=verified)}
    entry = _variant_entry("v", {"gates": {"min_argmax_agreement": 0.9}}, outcomes, {}, tmp_path, False)
    assert entry["status"] == "unverified"
    json.dumps(entry)
    assert entry["gates"]["min_argmax_agreement"]["evaluated"] is False


@pytest.fixture(scope="module")
def two_output_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Outputs [embed (N,16), probs (N,10)], trained briefly on digits so that only `probs` scores well."""
    import keras

    from stages.calibrate.datasets import digits_split

    keras.utils.set_random_seed(0)
    x_train, y_train, _, _ = digits_split()
    inputs = keras.Input((8, 8, 1), name="image")
    hidden = keras.layers.Dense(32, activation="relu")(keras.layers.Flatten()(inputs))
    embed = keras.layers.Dense(16, name="embed")(hidden)
    probs = keras.layers.Dense(10, activation="softmax", name="probs")(hidden)
    model = keras.Model(inputs, {"embed": embed, "probs": probs})
    model.compile("adam", loss={"probs": "sparse_categorical_crossentropy"})
    model.fit(x_train, {"probs": y_train}, epochs=15, verbose=0)
    path = tmp_path_factory.mktemp("two_outputs") / "two_outputs.keras"
    model.save(path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("override", ["dataset.label_output=probs", None])
def test_label_output_reaches_the_reference_through_the_cli(
    run_cli, tmp_path: Path, two_output_model: Path, override: str | None
) -> None:
    args = ["model=keras", f"model.path={two_output_model}", "variants=[fp32]", "tracking.enabled=false"]
    result = run_cli(*args, "benchmark.enabled=false", *([override] if override else []))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(next(tmp_path.glob("outputs/runs/*/*/report.json")).read_text())
    assert report["reference"]["label_output"] == "probs"
    assert report["reference"]["metrics"]["accuracy"] > 0.8  # scored on the probabilities, not the embedding
    if override is None:
        assert "probs" in result.stdout + result.stderr  # the automatic choice is said, not silent
    # The probe of the original model against itself ran on both outputs; this model is not sensitive.
    diffs = report["reference"]["metrics"]["batch_vs_single"]
    assert set(diffs) == {"probs", "embed"} and max(diffs.values()) < 1e-5, diffs
    assert not any("disagrees with itself" in note for note in report["notes"])


def test_a_model_that_disagrees_with_itself_gets_a_note_naming_the_output_and_size() -> None:
    """Batch-dependent arithmetic (here: centring by the batch mean) makes batch and one-at-a-time outputs
    differ; the reference says by how much and the report turns it into a note that fp32 cannot beat it."""
    from pipelines.output.report import sensitivity_notes
    from stages.verify.reference import self_disagreement

    def centred(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = feeds["x"]
        return {"scores": x - x.mean(axis=0, keepdims=True), "ids": np.argmax(x, axis=1)}

    feeds = {"x": np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)}
    diffs = self_disagreement(centred, feeds, centred(feeds))
    assert set(diffs) == {"scores"} and diffs["scores"] > 0.1  # integer outputs are not compared
    [note] = sensitivity_notes({"batch_vs_single": diffs})
    assert "output 'scores' differs by up to" in note and "the model's, not the conversion's" in note
    stable = self_disagreement(lambda f: {"scores": 2 * f["x"]}, feeds, {"scores": 2 * feeds["x"]})
    assert stable == {"scores": 0.0} and sensitivity_notes({"batch_vs_single": stable}) == []


def test_a_near_constant_output_does_not_turn_float_rounding_into_a_large_relative_error() -> None:
    """A random-weight classifier's near-uniform scores (keras.applications with weights=None): fp32 must pass."""
    from stages.verify.metrics import relative_rmse

    rng = np.random.default_rng(0)
    reference = (1e-3 + 1e-9 * rng.standard_normal((8, 1000))).astype(np.float64)
    assert relative_rmse(7.5e-9, reference) < 0.001
    wide = rng.random((8, 10))
    assert relative_rmse(0.5, wide) > 1.0  # a real error on a varied output is still large


def test_a_failed_conversions_log_is_copied_into_the_run_directory(tmp_path: Path) -> None:
    """Issue 10: the raw converter log lands in the run directory and the message points there."""
    from pipelines.output.report import _with_log_in_run_dir

    kept = tmp_path / "cache" / "convert" / "failed-logs" / "abc-int8.log"
    kept.parent.mkdir(parents=True)
    kept.write_text("error: 'tf.TensorListReserve' op requires ...\n")
    message = f"convert[int8]: Variant 'int8' did not convert: ... The converter's full log: {kept}."
    run_variant = tmp_path / "run" / "variants" / "int8"
    rewritten = _with_log_in_run_dir(message, run_variant)
    assert str(run_variant / "converter.log") in rewritten and str(kept) not in rewritten
    assert (run_variant / "converter.log").read_text().startswith("error: 'tf.TensorListReserve'")
