"""Which variant the registry promotes: the best by the objective among passing variants, and only with tracking on."""

from __future__ import annotations

import pytest

from pipelines.engine.errors import ConfigError
from pipelines.tracking.registry import check_config, choose

pytestmark = pytest.mark.xdist_group("mlflow_http")  # the session's MLflow server (tests/conftest.py)


def _entry(status: str, size: int, accuracy: float, p50: float) -> dict:
    return {
        "status": status,
        "size_bytes": size,
        "tflite_path": "m.tflite",
        "metrics": {"accuracy": accuracy, "latency_ms": {"p50": p50}},
    }


def test_the_objective_picks_among_passing_variants_only() -> None:
    report = {
        "variants": {
            "fp32": _entry("passed", 400, 0.99, 1.0),
            "fp16": _entry("passed", 200, 0.98, 2.0),
            "int8": _entry("failed", 100, 0.50, 0.5),
        }
    }
    assert choose(report, "size") == "fp16"  # int8 is smaller but failed its gates
    assert choose(report, "latency") == "fp32"
    assert choose(report, "accuracy") == "fp32"
    assert choose({"variants": {"int8": _entry("failed", 100, 0.5, 0.5)}}, "size") is None


def test_registry_without_tracking_is_refused_before_any_work() -> None:
    with pytest.raises(ConfigError, match="needs MLflow tracking"):
        check_config({"registry": {"name": "digits"}, "tracking": {"enabled": False}})
