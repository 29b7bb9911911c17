"""The quantization-scheme table (stages/convert/schemes.py) and what reads it: preflight's mode/backend check and
MLflow lineage, which links the calibration dataset to exactly the variants whose conversion read it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.tracking.lineage import calibrated_variants
from stages.convert.quantization.aeq import reads_calibration
from stages.convert.schemes import SCHEMES, backend_mismatch, modes_for
from tests.helpers.mlflow_store import new_sqlite_store

SHIPPED = {  # the shipped variants (conf/variants/) and their backend/mode
    "fp32": ("converter", "fp32"),
    "fp16": ("converter", "fp16"),
    "dynamic": ("converter", "dynamic"),
    "int8": ("converter", "int8"),
    "int16x8": ("converter", "int16x8"),
    "aeq_w8": ("aeq", "w8"),
    "aeq_w4": ("aeq", "w4"),
    "aeq_a8w8": ("aeq", "a8w8"),
    "aeq_a16w8": ("aeq", "a16w8"),
}


def _variants(**extra: dict) -> dict:
    return {n: {"backend": b, "mode": m} for n, (b, m) in SHIPPED.items()} | extra


def test_each_mode_is_one_entry_of_one_backend() -> None:
    assert modes_for("converter") == ("fp32", "fp16", "dynamic", "int8", "int16x8")
    assert modes_for("aeq") == ("w8", "w4", "a8w8", "a16w8", "recipe")
    assert all(backend_mismatch(m, b) is None for n, (b, m) in SHIPPED.items())
    wrong = backend_mismatch("a8w8", "converter")
    assert wrong is not None and "backend=aeq" in wrong and "aeq: w8, w4, a8w8, a16w8, recipe" in wrong


def test_the_table_says_what_ai_edge_quantizer_says_about_calibration() -> None:
    """A built-in AEQ mode is calibrated exactly when AEQ's own recipe manager says its recipe needs it."""
    from stages.convert.quantization.aeq import builtin_recipe, needs_calibration

    for mode, entry in SCHEMES.items():
        if entry.backend == "aeq" and entry.recipe is not None:
            assert entry.calibrated == needs_calibration(builtin_recipe(mode)), mode


def test_lineage_links_the_calibration_set_to_every_variant_that_read_it(tmp_path: Path) -> None:
    """aeq_a8w8 and aeq_a16w8 calibrate on the calibration set like int8 and int16x8; a user's recipe does when
    its entries quantize activations statically."""
    from stages.convert.quantization.aeq import builtin_recipe

    static, weight_only = tmp_path / "static.json", tmp_path / "weights.json"
    static.write_text(json.dumps(builtin_recipe("a8w8")))
    weight_only.write_text(json.dumps(builtin_recipe("w8")))
    variants = _variants(
        mine_static={"backend": "aeq", "mode": "recipe", "recipe": str(static)},
        mine_weights={"backend": "aeq", "mode": "recipe", "recipe": str(weight_only)},
    )
    assert calibrated_variants({"variants": variants}) == {"int8", "int16x8", "aeq_a8w8", "aeq_a16w8", "mine_static"}
    assert reads_calibration({"name": "int8_mixed", "mode": "int8", "search": {}})


def test_an_aeq_a8w8_child_run_has_the_calibration_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a real sqlite store: the child runs of a8w8 get calibration and evaluation, w8's evaluation only."""
    from pipelines.tracking import lineage
    from pipelines.tracking.tracker import MlflowTracker
    from stages.samples import save_samples

    monkeypatch.chdir(tmp_path)
    uri = new_sqlite_store(tmp_path / "mlflow.db")
    records = {}
    for context, seed in (("calibration", 0), ("evaluation", 1)):
        path = tmp_path / f"{context}.npz"
        save_samples(path, {"x": np.random.default_rng(seed).random((4, 3), dtype=np.float32)}, None)
        records[context] = {"name": f"d-{context}", "digest": f"{seed:016d}", "source": str(path), "path": str(path)}
    tracker = MlflowTracker(uri, "lineage")
    variants = {n: {"backend": "aeq", "mode": n.removeprefix("aeq_")} for n in ("aeq_a8w8", "aeq_w8")}
    tracker.start({"model": {"name": "m"}, "variants": variants}, "run")
    entry = {"status": "passed", "metrics": {}, "gates": {}}
    report = {
        "datasets": records,
        "variants": {n: {**entry, "mlflow_run_id": tracker.log_variant(n, entry, {}, tmp_path)} for n in variants},
    }
    lineage.link_children(tracker.mlflow, report, tracker.calibrated)
    tracker.mlflow.end_run()
    client = tracker.mlflow.tracking.MlflowClient(uri)
    contexts = {
        name: sorted(t.value for d in client.get_run(v["mlflow_run_id"]).inputs.dataset_inputs for t in d.tags)
        for name, v in report["variants"].items()
    }
    assert contexts == {"aeq_a8w8": ["calibration", "evaluation"], "aeq_w8": ["evaluation"]}
