"""int16x8 on a model with a SQRT, through the CLI: the variant is repaired (SQRT kept in float), judged as usual,
and the op moved is in report.json and the table's notes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.unit.convert.kernel_less_models import sqrt_saved_model


@pytest.mark.slow
def test_int16x8_with_a_sqrt_is_repaired_and_says_so(
    run_cli: Callable[..., CompletedProcess[str]], tmp_path: Path
) -> None:
    model = tmp_path / "sqrt_model"
    sqrt_saved_model(model)
    proc = run_cli(
        "model=saved_model",
        f"model.path={model}",
        "dataset=random",
        "variants=[fp32,int16x8]",
        "tracking.enabled=false",
        "benchmark.enabled=false",
        "hydra.run.dir=run",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    entry = report["variants"]["int16x8"]
    assert entry["status"] == "passed" and entry["error"] is None
    assert (tmp_path / "run" / entry["tflite_path"]).is_file()
    moved = entry["quantization"]["repaired"]
    assert [(m["op"], m["from"], m["to"]) for m in moved] == [("SQRT", "int16", "float")]
    assert entry["quantization"]["repair"]["rebuilds"] == 1 and entry["quantization"]["repair"]["seconds"] >= 0
    assert entry["ops"]["SQRT"] == 1 and entry["gates"]["max_relative_rmse"]["passed"]
    assert any(n.startswith("int16x8: repaired") and "SQRT" in n for n in report["notes"])
    assert "int16x8: repaired" in proc.stdout
