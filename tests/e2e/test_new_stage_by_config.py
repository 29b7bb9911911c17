"""docs/architecture.md's promise: a new stage or variant needs no change to the engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_a_stage_and_a_variant_added_by_config_alone_run_and_are_reported(
    run_cli, tmp_path: Path, shared_cache: str
) -> None:
    variant, pipeline = tmp_path / "conf_extra" / "variants", tmp_path / "conf_extra" / "pipeline"
    variant.mkdir(parents=True)
    pipeline.mkdir()
    (pipeline / "with_census.yaml").write_text(
        "defaults:\n  - default\n  - _self_\nstages:\n  op_census:\n"
        "    _target_: tests.helpers.extra_stage.op_census\n    needs: [convert]\n    per_variant: true\n"
    )
    (variant / "int8_uint8.yaml").write_text(
        "# @package variants.int8_uint8\nmode: int8\nio_dtype: uint8\ngates:\n  min_argmax_agreement: 0.95\n"
    )
    result = run_cli(
        f"hydra.searchpath=[file://{tmp_path / 'conf_extra'}]",
        "variants=[fp32,int8_uint8]",
        "pipeline=with_census",
        "tracking.enabled=false",
        "benchmark.enabled=false",
        f"runtime.cache_dir={shared_cache}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(next(tmp_path.glob("outputs/runs/*/*/report.json")).read_text())
    assert report["variants"]["int8_uint8"]["status"] == "passed"
    assert report["variants"]["int8_uint8"]["io"]["inputs"]  # uint8 I/O, described with its quantization
    for name in ("fp32", "int8_uint8"):
        census = report["variants"][name]["metrics"]["op_census"]
        assert census["ops"] >= census["op_types"] >= 1
    assert "op_census[int8_uint8]" in result.stdout + result.stderr  # the runner ran and reported it
