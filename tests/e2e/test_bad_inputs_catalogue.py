"""The bad-input catalogue (docs/errors.md): every case runs the real CLI and must exit with the documented
code, print a message with the documented key phrase, and show no traceback.

Each case is `(id, args builder, exit code, phrase)`; the builder gets a scratch folder and the shared tiny
models and returns the CLI overrides. Everything runs with tracking and benchmarks off and one variant, so a
case costs a Hydra compose plus, for cases found while loading, one TensorFlow import in the worker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers.cli import cli
from tests.helpers.paths import REPO

QUICK = ["tracking.enabled=false", "benchmark.enabled=false", "variants=[fp32]"]


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory, tiny_keras: Path) -> dict[str, Path]:
    """Good and damaged model files, built once."""
    import keras
    import tensorflow as tf

    root = tmp_path_factory.mktemp("bad_models")
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    files: dict[str, Path] = {"keras": tiny_keras}
    h5 = root / "good.h5"
    keras.models.load_model(tiny_keras).save(h5)
    files["h5"] = h5
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 8, 8, 1], name="image")
        flat = tf.reshape(x, [-1, 64])
        w = tf.constant(rng.normal(size=(64, 10)).astype(np.float32))
        tf.nn.softmax(tf.matmul(flat, w), name="probs")
    (root / "good.pb").write_bytes(graph.as_graph_def().SerializeToString())
    files["pb"] = root / "good.pb"
    for name, good in (("keras", tiny_keras), ("h5", h5), ("pb", root / "good.pb")):
        (root / f"noise.{name}").write_bytes(noise)
        data = good.read_bytes()
        (root / f"truncated.{name}").write_bytes(data[: len(data) // 2])
        files[f"noise_{name}"], files[f"truncated_{name}"] = (
            root / f"noise.{name}",
            root / f"truncated.{name}",
        )
    saved = root / "noise_saved_model"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(noise)
    files["noise_saved_model"] = saved
    (root / "model.tflite").write_bytes(noise)
    files["tflite"] = root / "model.tflite"
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,), name="x")
    lam = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    keras.Model(inputs, keras.layers.Dense(2)(lam)).save(root / "lambda.keras")
    files["lambda"] = root / "lambda.keras"
    return files


def _npz(tmp: Path, **arrays: Any) -> str:
    path = tmp / "data.npz"
    np.savez(path, **arrays)
    return str(path)


def _images(count: int = 20) -> np.ndarray:
    return np.random.default_rng(1).random((count, 8, 8, 1), dtype=np.float32)


def _keras(m: dict[str, Path], name: str = "keras") -> list[str]:
    return ["model=keras", f"model.path={m[name]}"]


def _frozen(m: dict[str, Path], inputs: str = "[image]", outputs: str = "[probs]") -> list[str]:
    return [
        "model=frozen_graph",
        f"model.path={m['pb']}",
        f"model.inputs={inputs}",
        f"model.outputs={outputs}",
    ]


def _data(tmp: Path, m: dict[str, Path], **arrays: Any) -> list[str]:
    return [*_keras(m), "dataset=npz", f"dataset.path={_npz(tmp, **arrays)}"]


Builder = Callable[[Path, dict[str, Path]], list[str]]


CASES: list[tuple[str, Builder, int, str]] = [
    # --- the model ---
    ("model_path_missing", lambda t, m: ["model=keras", f"model.path={t}/nope.keras"], 2, "does not exist"),
    ("model_path_not_given", lambda t, m: ["model=keras"], 2, "No model given"),
    ("model_path_is_directory", lambda t, m: ["model=keras", f"model.path={t}"], 2, "is a directory"),
    ("keras_random_bytes", lambda t, m: _keras(m, "noise_keras"), 2, "not a valid .keras file"),
    ("keras_truncated", lambda t, m: _keras(m, "truncated_keras"), 2, "not a valid .keras file"),
    ("h5_random_bytes", lambda t, m: _keras(m, "noise_h5"), 2, "not a valid HDF5"),
    ("h5_truncated", lambda t, m: _keras(m, "truncated_h5"), 2, "not a valid HDF5"),
    (
        "pb_random_bytes",
        lambda t, m: [*_frozen(m), f"model.path={m['noise_pb']}"],
        2,
        "not a TensorFlow GraphDef",
    ),
    (
        "pb_truncated",
        lambda t, m: [*_frozen(m), f"model.path={m['truncated_pb']}"],
        2,
        "not a TensorFlow GraphDef",
    ),
    (
        "saved_model_random_bytes",
        lambda t, m: ["model=saved_model", f"model.path={m['noise_saved_model']}"],
        2,
        "Could not load",
    ),
    (
        "saved_model_not_a_directory",
        lambda t, m: ["model=saved_model", f"model.path={m['keras']}"],
        2,
        "is not a SavedModel directory",
    ),
    (
        "tflite_given_as_source",
        lambda t, m: ["model=keras", f"model.path={m['tflite']}"],
        2,
        "already a TFLite model",
    ),
    (
        "keras_format_for_pb_file",
        lambda t, m: ["model=keras", f"model.path={m['pb']}"],
        2,
        "model=frozen_graph",
    ),
    (
        "frozen_graph_wrong_input",
        lambda t, m: _frozen(m, inputs="[imgae]"),
        2,
        "Closest node names: ['image'",
    ),
    (
        "frozen_graph_wrong_output",
        lambda t, m: _frozen(m, outputs="[prob]"),
        2,
        "Closest node names: ['probs'",
    ),
    (
        "frozen_graph_names_missing",
        lambda t, m: ["model=frozen_graph", f"model.path={m['pb']}"],
        2,
        "needs its tensor names",
    ),
    (
        "frozen_graph_wrong_input_shapes",
        lambda t, m: [*_frozen(m), "model.input_shapes={image:[1,8,8]}"],
        2,
        "model.input_shapes",
    ),
    ("keras_lambda_refused", lambda t, m: _keras(m, "lambda"), 2, "model.safe_mode=false"),
    # --- the configuration ---
    ("unknown_variant", lambda t, m: ["variants=[fp32,int4]"], 2, "int4"),
    ("unknown_split_mode", lambda t, m: ["split=bogus"], 2, "bogus"),
    ("unknown_config_key", lambda t, m: ["model.pth=x"], 2, "pth"),
    ("bad_enum_value", lambda t, m: ["variants.fp32.mode=int4"], 2, "int4"),
    ("unknown_dataset", lambda t, m: ["dataset=imagenet"], 2, "imagenet"),
    # --- the dataset ---
    (
        "dataset_missing",
        lambda t, m: [*_keras(m), "dataset=npz", f"dataset.path={t}/none.npz"],
        2,
        "does not exist",
    ),
    ("dataset_path_not_given", lambda t, m: [*_keras(m), "dataset=npz"], 2, "needs `dataset.path`"),
    (
        "dataset_not_npz",
        lambda t, m: [*_keras(m), "dataset=npz", f"dataset.path={m['noise_keras']}"],
        2,
        "cannot be read as .npz",
    ),
    ("dataset_lacks_key", lambda t, m: _data(t, m, images=_images()), 2, "lacks ['image']"),
    (
        "dataset_wrong_shape",
        lambda t, m: _data(t, m, x=_images().reshape(20, 64)),
        2,
        "samples of shape [20, 64]",
    ),
    ("dataset_wrong_dtype", lambda t, m: _data(t, m, x=_images().astype(str)), 2, "Store numbers"),
    (
        "dataset_pickled_objects",
        lambda t, m: _data(t, m, x=np.array([{"a": 1}] * 3, dtype=object)),
        2,
        "pickles",
    ),
    ("dataset_empty", lambda t, m: _data(t, m, x=_images()[:0]), 2, "is empty"),
    (
        "dataset_nan",
        lambda t, m: _data(t, m, x=np.where(_images() > 0.9, np.nan, _images())),
        2,
        "NaN or infinite values in array 'x'",
    ),
    (
        "dataset_inf",
        lambda t, m: _data(t, m, x=np.where(_images() > 0.9, -np.inf, _images())),
        2,
        "NaN or infinite values in array 'x'",
    ),
    ("dataset_one_sample", lambda t, m: _data(t, m, x=_images(1)), 2, "need >= 2"),
    (
        "labels_misaligned",
        lambda t, m: _data(t, m, x=_images(), y=np.zeros(7, np.int64)),
        2,
        "20 samples but 7",
    ),
    (
        "labels_one_hot",
        lambda t, m: _data(t, m, x=_images(), y=np.eye(10)[np.arange(20) % 10]),
        2,
        "integer class indices",
    ),
    # --- postprocess, output, tracking ---
    (
        "postprocess_not_importable",
        lambda t, m: ["split=manual", "split.outputs=[probs]", "split.postprocess={_target_:no_such_pkg.fn}"],
        2,
        "cannot be imported",
    ),
    ("output_dir_unwritable", lambda t, m: [f"hydra.run.dir={m['keras']}/run"], 2, "is not a directory"),
    (
        "mlflow_unreachable",
        lambda t, m: ["tracking.enabled=true", "tracking.uri=http://127.0.0.1:9"],
        2,
        "Cannot use the MLflow tracking store",
    ),
]


@pytest.mark.slow  # a CLI run in a subprocess: tier 4
@pytest.mark.parametrize(("args", "code", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(tmp_path: Path, models: dict[str, Path], args: Builder, code: int, phrase: str) -> None:
    overrides = [*QUICK, *args(tmp_path, models), f"runtime.cache_dir={tmp_path / 'cache'}"]
    started = time.monotonic()
    result = cli(overrides, tmp_path, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == code, output[-3000:]
    assert phrase in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert time.monotonic() - started < 120  # fail fast: no retries against an unreachable server
    assert not list(tmp_path.glob("outputs/runs/*/*/report.json"))  # nothing half-written to trust


def test_catalogue_is_large_and_documented() -> None:
    assert len(CASES) >= 25
    doc = (REPO / "docs" / "errors.md").read_text()
    missing = [case for case, *_ in CASES if f"`{case}`" not in doc]
    assert not missing, f"docs/errors.md lacks {missing}"


@pytest.mark.slow  # a CLI run in a subprocess: tier 4
def test_debug_shows_the_traceback(tmp_path: Path, models: dict[str, Path]) -> None:
    result = cli([*QUICK, *_frozen(models, inputs="[imgae]"), "runtime.debug=true"], tmp_path, timeout=300)
    assert result.returncode == 2
    assert "Traceback" in result.stdout + result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_model(tmp_path: Path, models: dict[str, Path]) -> None:
    path = tmp_path / "locked.keras"
    path.write_bytes(models["keras"].read_bytes())
    path.chmod(0)
    result = cli([*QUICK, "model=keras", f"model.path={path}"], tmp_path, timeout=300)
    assert result.returncode == 2 and "not readable" in result.stdout + result.stderr
