"""Shared fixtures: a CLI runner in a scratch directory, and tiny models built once per session."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = str(REPO / "conf")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def cli(
    args: list[str], cwd: Path, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m pipelines ARGS` in `cwd`, the way a user runs `tflite-pipeline`."""
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(env),
    )


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI run: this checkout on PYTHONPATH, no MLFLOW_TRACKING_URI that in-process MLflow
    calls of other tests exported."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    return {**inherited, "PYTHONPATH": str(REPO), **(extra or {})}


def start_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """A CLI run in the background, in its own process group (so a test can kill it and its worker at once)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines", *args],
        cwd=cwd,
        env=cli_env(env),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 300) -> str:
    """The run's progress lines up to the first one holding `marker` (or until `timeout`)."""
    seen, deadline = [], time.monotonic() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if marker in line or time.monotonic() > deadline:
            break
    return "".join(seen)


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, cwd: Path | None = None, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return cli(list(args), cwd or tmp_path, **kwargs)  # type: ignore[arg-type]

    return run


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One stage cache for the whole session, so the default example's digits CNN is trained once and every
    run of it after that reuses the model. Under pytest-xdist the workers share it too (the folder above each
    worker's own): entries are written under a file lock per key, as parallel sweep jobs write them."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return str(root / "shared-cache")


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


@pytest.fixture(scope="session")
def mlflow_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One real `mlflow server` (URL, root folder) for the HTTP tests: registry, dashboard, HTTP logging. Each
    test logs to an experiment of its own. Their modules share the xdist group "mlflow_http", so one worker
    starts the server once (about 10 s of CPU each time) instead of once per module."""
    from tests.mlflow_server import mlflow_server

    root = tmp_path_factory.mktemp("mlflow-server")
    with mlflow_server(root) as url:
        yield url, root
