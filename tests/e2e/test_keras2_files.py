"""Through the CLI as a user runs it: a Keras 2 .h5 with custom objects converts with fp32 matching (loaded by
tf_keras, said in report.json); without them, and for a TF-DF-like SavedModel, exit 2 with the cause."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.keras2_models import custom_h5, unknown_op_saved_model, write_custom_module

pytestmark = pytest.mark.slow

COMMON = ["dataset=random", "variants=[fp32]", "tracking.enabled=false", "benchmark.enabled=false"]


def test_keras2_h5_with_custom_objects_end_to_end(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    module = write_custom_module(tmp_path)  # the working directory is importable, as for a user's package
    model = custom_h5(tmp_path / "efficientnet_like.h5", module)
    cache = f"runtime.cache_dir={tmp_path / 'cache'}"

    missing = run_cli("model=keras", f"model.path={model}", cache, *COMMON, "hydra.run.dir=missing")
    assert missing.returncode == 2, missing.stderr[-2000:]
    assert "uses 'swishlike'" in missing.stderr and "model.custom_objects=[my_pkg.layers]" in missing.stderr
    assert "Traceback" not in missing.stderr and "truncated" not in missing.stderr

    given = f"model.custom_objects=[{module}]"
    done = run_cli("model=keras", f"model.path={model}", given, cache, *COMMON, "hydra.run.dir=run")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["model"]["loader"] == "tf_keras"
    assert any(n.startswith("Loaded with tf_keras") for n in report["notes"]) and "Loaded with tf_keras" in done.stdout
    fp32 = report["variants"]["fp32"]
    assert fp32["status"] == "passed" and fp32["conversion"]["load_path"] == "tf_keras"
    assert fp32["metrics"]["max_abs_err"]["logits"] < 1e-5


def test_tf_df_like_saved_model_stops_with_its_cause(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    model = unknown_op_saved_model(tmp_path / "tfdf")
    result = run_cli("model=saved_model", f"model.path={model}", *COMMON, "hydra.run.dir=run")
    assert result.returncode == 2
    assert "TensorFlow Decision Forests (TF-DF) model" in result.stderr
    assert "`tensorflow_decision_forests`" in result.stderr and "LiteRT has no kernels" in result.stderr
    assert "Op type not registered" not in result.stderr and not (tmp_path / "run" / "report.json").exists()
