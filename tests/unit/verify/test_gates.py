"""The gates and the verdict (stages/verify/gates.py): a `passed` is never wrong. NaN-safe, detection-aware,
scale-free errors; a gate without its metric is not evaluated; the original model's own rounding noise is
allowed for, capped, and said; the shipped limits are under test; gates stay out of the cache keys."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pipelines.output.report_notes import noise_notes
from stages.result import StageResult
from stages.verify.gates import NOISE_CAP, judge
from tests.helpers.paths import REPO


def _variant_gates(name: str) -> dict:
    """The shipped per-variant limits (its gate preset and its own overrides), so the defaults are under test."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from pipelines.engine.schema import register_configs

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("config", overrides=[f"variants=[{name}]"])
    return OmegaConf.to_container(cfg.variants[name].gates)  # type: ignore[return-value]


# NaN-safe reductions: a NaN anywhere fails the gate that reads it, whatever the output order.
@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")])
def test_a_nan_error_fails_its_gate_in_any_output_order(order: tuple[str, str]) -> None:
    values = {"a": 0.0, "b": math.nan}
    rmse = {k: values[k] for k in order}
    metrics = {"rmse": rmse, "relative_rmse": rmse, "max_abs_err": rmse, "finite": True, "argmax_agreement": 1.0}
    status, gates = judge({"max_rmse": 0.01, "min_argmax_agreement": 0.9}, metrics)
    assert gates["max_rmse"]["evaluated"] and not gates["max_rmse"]["passed"]
    assert status == "failed"


# Detection: empty references, spurious candidates, head finiteness.
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


# Missing metrics are recorded, never silently dropped; no quality gate evaluated means `unverified`.
def test_a_gate_without_its_metric_is_not_evaluated_and_the_variant_is_unverified() -> None:
    metrics = {"finite": True, "rmse": {}, "max_abs_err": {}, "relative_rmse": {}}
    status, gates = judge({"max_accuracy_drop": 0.01, "min_argmax_agreement": 0.97}, metrics)
    assert status == "unverified"
    for name in ("max_accuracy_drop", "min_argmax_agreement"):
        assert gates[name]["evaluated"] is False and gates[name]["reason"]
        assert gates[name]["passed"] is None
    assert gates["finite_outputs"]["passed"] is True  # safety, not quality: cannot pass a variant alone


def test_random_data_int8_with_large_errors_is_not_passed() -> None:
    """The reported case: relative RMSE 5.0 and agreement 0.10 on dataset=random, judged by the shipped limits."""
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


# Gates leave the conversion's cache key.
def test_a_new_gate_limit_does_not_change_any_stage_key() -> None:
    from pipelines.engine.cache import node_key
    from pipelines.engine.dag import build_dag

    stages = {
        "convert": {"_target_": "tests.helpers.toy_stages.produce", "per_variant": True, "config": {}},
    }

    def keys(limit: float) -> dict[str, str]:
        variants = {"int8": {"mode": "int8", "gates": {"max_accuracy_drop": limit}}}
        return {n.id: node_key(n, {}) for n in build_dag(stages, variants)}

    assert keys(0.01) == keys(0.5)


def test_relative_rmse_gate_is_scale_free() -> None:
    from stages.verify.gates import evaluate_gates
    from stages.verify.metrics import compare

    reference = {
        "coords": np.linspace(0, 1000, 60).reshape(30, 2),
        "prob": np.linspace(0, 1, 30).reshape(30, 1),
    }
    close = {k: v * 1.01 for k, v in reference.items()}  # 1% off on both scales
    swapped = {"coords": reference["coords"][::-1].copy(), "prob": reference["prob"]}
    gates = {"max_relative_rmse": 0.1}
    assert evaluate_gates(gates, compare(reference, close, None, None))["max_relative_rmse"]["passed"]
    result = evaluate_gates(gates, compare(reference, swapped, None, None))["max_relative_rmse"]
    assert not result["passed"] and result["value"] > 1


def _metrics(rmse: dict[str, float]) -> dict:
    return {"rmse": rmse, "relative_rmse": dict.fromkeys(rmse, 0.0), "max_abs_err": dict.fromkeys(rmse, 0.0)}


def test_an_error_within_the_noise_passes_with_the_allowance_recorded_per_output() -> None:
    gates = {"max_rmse": 1e-4, "rounding_noise_factor": 3.0}
    noise = _metrics({"logits": 1.25e-4, "embed": 1e-8})
    status, records = judge(gates, _metrics({"logits": 1.7e-4, "embed": 5e-5}), noise=noise)
    assert status == "passed"
    record = records["max_rmse"]
    assert record["value"] == pytest.approx(1.7e-4) and record["limit"] == 1e-4  # the figures stay honest
    assert record["allowance"]["limits"] == {"logits": pytest.approx(3.75e-4)}
    [note] = noise_notes({"fp32": {"gates": records}})
    assert note.startswith("fp32: max_rmse passed on the original model's rounding noise") and "'logits'" in note


def test_one_noisy_output_does_not_cover_another_outputs_error() -> None:
    noise = _metrics({"logits": 1e-3, "embed": 1e-8})
    status, records = judge({"max_rmse": 1e-4, "rounding_noise_factor": 3.0}, _metrics({"logits": 0, "embed": 2e-4}))
    assert status == "failed"  # no noise given: the limit as configured
    status, records = judge(
        {"max_rmse": 1e-4, "rounding_noise_factor": 3.0}, _metrics({"logits": 0, "embed": 2e-4}), noise=noise
    )
    assert status == "failed" and "allowance" not in records["max_rmse"]


@pytest.mark.parametrize("factor", [None, 0])
def test_a_null_factor_holds_the_configured_limit(factor: float | None) -> None:
    noise = _metrics({"logits": 1.25e-4})
    status, records = judge(
        {"max_rmse": 1e-4, "rounding_noise_factor": factor}, _metrics({"logits": 1.7e-4}), noise=noise
    )
    assert status == "failed" and noise_notes({"fp32": {"gates": records}}) == []


def test_the_allowance_is_capped_and_a_nan_error_still_fails() -> None:
    noise = _metrics({"y": 1.0})  # a model whose output jumps on a one-step input change
    gates = {"max_rmse": 1e-4, "rounding_noise_factor": 3.0}
    assert judge(gates, _metrics({"y": NOISE_CAP * 1e-4 * 0.9}), noise=noise)[0] == "passed"
    assert judge(gates, _metrics({"y": NOISE_CAP * 1e-4 * 1.1}), noise=noise)[0] == "failed"
    assert judge(gates, _metrics({"y": float("nan")}), noise=noise)[0] == "failed"
