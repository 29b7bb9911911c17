"""Shared fixtures only (helpers live in tests/helpers/): a CLI runner in a scratch directory, one stage cache
and one MLflow server per session, and tiny models built once per session."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cli import cli

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
    """A 1-conv classifier on 8x8x1 inputs with 10 classes, saved as .keras (untrained, seeded); its layers are
    named, so a test that cuts at a layer does not depend on how many models the process built before."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv2d")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu", name="dense")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    keras.Model(inputs, outputs).save(path)
    return path


@pytest.fixture(scope="session")
def mlflow_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One real `mlflow server` (URL, root folder) for the HTTP tests: registry, dashboard, HTTP logging. Each
    test logs to an experiment of its own. Their modules share the xdist group "mlflow_http", so one worker
    starts the server once (about 10 s of CPU each time) instead of once per module."""
    from tests.helpers.mlflow_server import mlflow_server

    root = tmp_path_factory.mktemp("mlflow-server")
    with mlflow_server(root) as url:
        yield url, root


@pytest.fixture(scope="session")
def sensitive(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The quantization-sensitive CNN (tests/helpers/sensitive_cnn.py) as .keras and fp32 .tflite, with digits
    calibration and test data."""
    import keras
    import numpy as np
    import tensorflow as tf

    from stages.calibrate.datasets import digits_split
    from tests.helpers.sensitive_cnn import build_sensitive

    root = tmp_path_factory.mktemp("sensitive")
    build_sensitive(root / "sensitive.keras")
    model = keras.models.load_model(root / "sensitive.keras")
    (root / "float.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    x_train, _, x_test, y_test = digits_split(seed=0)
    return {
        "root": root,
        "keras": root / "sensitive.keras",
        "float": root / "float.tflite",
        "calib": {"image": x_train[:100].reshape(-1, 8, 8, 1).astype(np.float32)},
        "test": (x_test.reshape(-1, 8, 8, 1).astype(np.float32), y_test),
    }


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make `xdist_group` marks group again under pytest 9: pytest-xdist 3.8 (`--dist loadgroup`) appends
    `@group` to `item._nodeid`, which pytest 9 no longer reads (the id lives in `item._id`), so every grouped
    test was scheduled on its own: the session's MLflow server, the outlier model and the S3 server were built
    once per worker, and the two Ray tests could run at once. Only in an xdist worker under loadgroup, and only
    where the id has no group yet (an xdist that sets it itself is left alone)."""
    if not getattr(config.option, "loadgroup", False):  # set by pytest-xdist in a worker under loadgroup
        return
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # pytest < 9: xdist's own suffix works
        return
    for item in items:
        names = sorted(
            {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}
        )
        nodeid = item.nodeid
        if names and nodeid.rfind("@") <= nodeid.rfind("]") and hasattr(item, "_id"):
            item._id = NodeId.parse(f"{nodeid}@{'_'.join(names)}")  # type: ignore[attr-defined]
