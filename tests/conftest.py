"""Shared fixtures: a CLI runner in a scratch directory, and tiny models built once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = str(REPO / "conf")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def cli(
    args: list[str], cwd: Path, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m pipelines ARGS` in `cwd`, the way a user runs `tflite-pipeline`."""
    # In-process MLflow calls in other tests export MLFLOW_TRACKING_URI; a CLI run must not inherit it.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    full_env = {**inherited, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, cwd: Path | None = None, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return cli(list(args), cwd or tmp_path, **kwargs)  # type: ignore[arg-type]

    return run


@pytest.fixture(scope="session")
def tiny_keras(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-conv classifier on 8x8x1 inputs with 10 classes, saved as .keras (untrained, seeded)."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    keras.Model(inputs, outputs).save(path)
    return path
