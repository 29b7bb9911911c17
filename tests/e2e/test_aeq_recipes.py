"""AEQ recipes through the CLI: a missing recipe exits 2 before any work; a user's recipe on the sensitive CNN
(tests/helpers/sensitive_cnn.py) passes where a8w8 fails, and lands in report.json and MLflow."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.sensitive_cnn import a8w8_with_int16_on


@pytest.mark.slow
def test_cli_missing_recipe_exits_2_before_any_work(run_cli, tmp_path: Path) -> None:
    result = run_cli("variants=[aeq_recipe]", f"variants.aeq_recipe.recipe={tmp_path / 'missing.json'}", ready=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "missing.json does not exist" in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("outputs/runs/*/*/report.json")) and not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_cli_user_recipe_changes_the_result(run_cli, sensitive: dict[str, Any], tmp_path: Path) -> None:
    """a8w8 fails its accuracy gate on the sensitive model; the user's recipe (int16 on the outlier tensor,
    plus an entry that matches nothing) passes, and the applied recipe lands in report.json and MLflow."""
    recipe = a8w8_with_int16_on("conv1|conv2") + [{**a8w8_with_int16_on("x")[1], "regex": "no_such_layer"}]
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
