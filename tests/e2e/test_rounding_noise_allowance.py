"""Through the CLI: fp32 of a deep network is judged against the original model's measured rounding noise, and
says so. A float conversion that rounds differently (BatchNorm folded into the convolutions) cannot match the
original more closely than the original matches itself on inputs one float step away."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.output.report_notes import noise_notes


@pytest.fixture(scope="module")
def residual_net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten residual conv + BatchNorm blocks with statistics set from data, logits out: deep enough that TFLite's
    folded BatchNorm rounds measurably differently from Keras (RMSE about 1.5x the rounding noise)."""
    import keras

    from stages.calibrate.datasets import digits_split

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name="image")
    x = inputs
    for block in range(10):
        y = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(x)
        y = keras.layers.ReLU()(keras.layers.BatchNormalization(momentum=0.0)(y))
        x = y if block == 0 else keras.layers.Add()([x, y])
    logits = keras.layers.Dense(10, name="logits")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, logits)
    model(digits_split()[0][:256], training=True)  # momentum 0: BatchNorm statistics from one data batch
    path = tmp_path_factory.mktemp("residual") / "residual.keras"
    model.save(path)
    return path


@pytest.mark.slow
def test_fp32_of_a_deep_net_is_judged_against_its_measured_rounding_noise(
    run_cli, tmp_path: Path, residual_net: Path
) -> None:
    """A real conversion: LiteRT's error on the deep net is within 3x the rounding noise the reference stage
    measured; a limit below both passes on that noise, with the report's note, and fails once the factor is null."""
    args = ["model=keras", f"model.path={residual_net}", "variants=[fp32]", "tracking.enabled=false"]
    result = run_cli(*args, "benchmark.enabled=false")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(next(tmp_path.glob("outputs/runs/*/*/report.json")).read_text())
    noise = report["reference"]["metrics"]["rounding_noise"]["rmse"]["logits"]
    error = report["variants"]["fp32"]["metrics"]["rmse"]["logits"]
    assert 0 < error <= 3 * noise, (error, noise)
    assert not noise_notes(report["variants"])  # the shipped 1e-4 holds without any allowance

    tight = f"variants.fp32.gates.max_rmse={min(error, noise) / 2:.3e}"
    result = run_cli(*args, "benchmark.enabled=false", tight)  # the cache re-judges the same conversion
    assert result.returncode == 0, result.stdout + result.stderr
    [path] = sorted(tmp_path.glob("outputs/runs/*/*/report.json"), key=lambda p: p.stat().st_mtime)[-1:]
    report = json.loads(path.read_text())
    assert report["variants"]["fp32"]["gates"]["max_rmse"]["allowance"]["noise"]["logits"] > 0
    assert any(n.startswith("fp32: max_rmse passed on the original model's rounding noise") for n in report["notes"])

    result = run_cli(*args, "benchmark.enabled=false", tight, "variants.fp32.gates.rounding_noise_factor=null")
    assert result.returncode == 1, result.stdout + result.stderr
