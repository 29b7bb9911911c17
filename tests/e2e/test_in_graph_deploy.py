"""split.deploy=in_graph end to end on the bundled TF1 RetinaNet demo: one .tflite whose signature returns the
model's own outputs, with the NMS as a TFLite builtin inside, verified against the original graph like any variant
(no host code: the report's detection match is the .tflite's own)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.slow
def test_retinanet_demo_with_its_nms_inside_the_tflite(tmp_path: Path, run_cli: Cli) -> None:
    run = tmp_path / "run"
    done = run_cli(
        "model=retinanet_demo",
        "split.deploy=in_graph",
        "variants=[fp32]",
        "dataset.max_eval_samples=16",
        "benchmark.min_runs=5",
        "benchmark.min_seconds=0",
        "tracking.enabled=false",
        f"hydra.run.dir={run}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((run / "report.json").read_text())
    fp32 = report["variants"]["fp32"]
    assert fp32["status"] == "passed"
    assert fp32["metrics"]["detection"]["matched_fraction"] >= 0.99
    assert fp32["metrics"]["detection"]["reference_detections"] > 0
    ops = set(fp32["ops"])
    assert ops & {"NON_MAX_SUPPRESSION_V5", "TFLite_Detection_PostProcess"}, ops
    assert list(run.rglob("*.tflite")) == [run / fp32["tflite_path"]]
    # The signature returns the original's outputs by name: nothing is left for the host.
    assert sorted(fp32["io"]["outputs"]) == ["boxes", "labels", "scores"]
    assert report["split"]["deploy"] == "in_graph"
