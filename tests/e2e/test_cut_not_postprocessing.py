"""A cut that is not post-processing. The op TFLite cannot run sits in the first block of a tiny CNN
(tests/helpers/mid_network_op.py): `split=auto` refuses (exit 2) naming the op, where it sits, the share of
weights and conv/matmul ops the tail would hold, and what to try instead; `split=manual` still cuts there and
states the share in the report's notes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Cli = Callable[..., subprocess.CompletedProcess[str]]


def _run(run_cli: Cli, tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    from tests.helpers.mid_network_op import mid_network_dataset, save_mid_network_model

    model, data = tmp_path / "sm", tmp_path / "x.npz"
    if not model.exists():
        save_mid_network_model(model)
        mid_network_dataset(data)
    run = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
    args = [
        "model=saved_model",
        f"model.path={model}",
        "dataset=npz",
        f"dataset.path={data}",
        "variants=[fp32]",
        "benchmark.min_runs=5",
        "benchmark.min_seconds=0",
        "tracking.enabled=false",
        f"hydra.run.dir={run}",
        *extra,
    ]
    done = run_cli(*args, cwd=tmp_path)
    return done, run / "report.json"


@pytest.mark.slow
def test_auto_refuses_a_cut_in_the_first_block_and_manual_states_the_share(tmp_path: Path, run_cli: Cli) -> None:
    done, _ = _run(run_cli, tmp_path)
    text = done.stdout + done.stderr
    assert done.returncode == 2, text[-3000:]
    assert "BitwiseAnd" in text and " at " in text  # the op and where it sits
    assert "% of the model's weights" in text and "split=manual" in text and "newer TensorFlow" in text
    assert "Traceback" not in text

    done, report_file = _run(run_cli, tmp_path, "split=manual", "split.outputs=[stem]")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(report_file.read_text())
    assert "split=manual: the tail holds" in report["split"]["note"]
    assert report["variants"]["fp32"]["status"] == "passed"
