"""`dataset.label_output` (or the automatic choice, said aloud) reaches the reference stage through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def two_output_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Outputs [embed (N,16), probs (N,10)], trained briefly on digits so that only `probs` scores well."""
    import keras

    from stages.calibrate.datasets import digits_split

    keras.utils.set_random_seed(0)
    x_train, y_train, _, _ = digits_split()
    inputs = keras.Input((8, 8, 1), name="image")
    hidden = keras.layers.Dense(32, activation="relu")(keras.layers.Flatten()(inputs))
    embed = keras.layers.Dense(16, name="embed")(hidden)
    probs = keras.layers.Dense(10, activation="softmax", name="probs")(hidden)
    model = keras.Model(inputs, {"embed": embed, "probs": probs})
    model.compile("adam", loss={"probs": "sparse_categorical_crossentropy"})
    model.fit(x_train, {"probs": y_train}, epochs=15, verbose=0)
    path = tmp_path_factory.mktemp("two_outputs") / "two_outputs.keras"
    model.save(path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("override", ["dataset.label_output=probs", None])
def test_label_output_reaches_the_reference_through_the_cli(
    run_cli, tmp_path: Path, two_output_model: Path, override: str | None
) -> None:
    args = ["model=keras", f"model.path={two_output_model}", "variants=[fp32]", "tracking.enabled=false"]
    result = run_cli(*args, "benchmark.enabled=false", *([override] if override else []))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(next(tmp_path.glob("outputs/runs/*/*/report.json")).read_text())
    assert report["reference"]["label_output"] == "probs"
    assert report["reference"]["metrics"]["accuracy"] > 0.8  # scored on the probabilities, not the embedding
    if override is None:
        assert "probs" in result.stdout + result.stderr  # the automatic choice is said, not silent
    # The probe of the original model against itself ran on both outputs; this model is not sensitive.
    diffs = report["reference"]["metrics"]["batch_vs_single"]
    assert set(diffs) == {"probs", "embed"} and max(diffs.values()) < 1e-5, diffs
    assert not any("disagrees with itself" in note for note in report["notes"])
