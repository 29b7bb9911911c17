"""Where calibration and evaluation samples come from: the bundled digits, a user's .npz, or seeded noise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from stages.result import InputError

DIGITS_TEST_FRACTION = 0.25


def digits_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits as (x_train, y_train, x_test, y_test), pixels scaled to [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=DIGITS_TEST_FRACTION, random_state=seed, stratify=y
    )
    return x_train, y_train, x_test, y_test


def open_npz(path: str) -> dict[str, np.ndarray]:
    """Every array of a user's .npz; pickled objects are refused (loading them would run code)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputError(f"The dataset file {path} does not exist. Set `dataset.path` to an existing .npz file.")
    try:
        with np.load(file, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as err:  # noqa: BLE001 - numpy raises many types for bad files
        raise InputError(
            f"The dataset {path} cannot be read as .npz ({type(err).__name__}: {err}). Save it with "
            "`numpy.savez(path, x=..., y=...)`; object arrays (pickles) are refused."
        ) from None


def read_npz(path: str, input_names: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Inputs keyed by input name (key `x` for a single-input model) and optional labels `y`."""
    arrays = open_npz(path)
    if len(input_names) == 1 and "x" in arrays:
        feeds = {input_names[0]: arrays["x"]}
    else:
        missing = [n for n in input_names if n not in arrays]
        if missing:
            expected = "'x'" if len(input_names) == 1 else f"one key per input: {input_names}"
            raise InputError(
                f"The dataset {path} has keys {sorted(arrays)} but lacks {missing}: it needs {expected} "
                "(and optionally 'y' for labels)."
            )
        feeds = {n: arrays[n] for n in input_names}
    return feeds, arrays.get("y")


def check_samples(feeds: dict[str, np.ndarray], source: str, kind: str = "input") -> int:
    """What any model needs of its samples: numbers, finite, one count for every input, at least 2 (one to
    calibrate, one to evaluate). Returns the sample count."""
    counts = {name: (len(array) if np.ndim(array) else 0) for name, array in feeds.items()}
    if not counts or max(counts.values()) == 0:
        raise InputError(
            f"The dataset {source} is empty (sample counts {counts}): it needs at least 2 samples, one for "
            "calibration and one for evaluation."
        )
    if len(set(counts.values())) > 1:
        raise InputError(f"The dataset {source} has different sample counts per input: {counts}. Align them.")
    for name, array in feeds.items():
        if array.dtype.kind not in "fiub":
            raise InputError(
                f"The dataset {source} gives {kind} '{name}' as {array.dtype}. Store numbers, not objects or strings."
            )
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = int((~np.isfinite(array)).sum())
            raise InputError(
                f"The dataset {source} holds {bad} NaN or infinite values in {kind} '{name}'. "
                "Clean or drop those samples: they would break calibration and verification."
            )
    total = next(iter(counts.values()))
    if total < 2:
        raise InputError(f"The dataset {source} has {total} sample(s): calibration and evaluation need >= 2.")
    return total


def check_labels(labels: np.ndarray, total: int, source: str) -> np.ndarray:
    """Labels must be one integer class index per sample; one-hot or misaligned labels would fake accuracy."""
    if (
        np.ndim(labels) != 1
        or labels.dtype.kind not in "iuf"
        or (labels.dtype.kind == "f" and not np.all(np.mod(labels, 1) == 0))
    ):
        raise InputError(
            f"The dataset {source} has labels 'y' of dtype {labels.dtype} and shape "
            f"{list(np.shape(labels))}; they "
            "must be integer class indices, one per sample (convert one-hot labels with `y.argmax(-1)`)."
        )
    if len(labels) != total:
        raise InputError(f"The dataset {source} has {total} samples but {len(labels)} labels in 'y'. Align them.")
    return labels.astype(np.int64)


def check_npz(path: str) -> None:
    """Before the model is loaded (preflight, main process, numpy only): a single-input file's `x` and its
    labels, so a bad file fails in a second instead of after TensorFlow's import and the model's load. Keys
    named after a model's inputs are checked once the model says which they are."""
    arrays = open_npz(path)
    if "x" in arrays:
        total = check_samples({"x": arrays["x"]}, path, "array")
        if "y" in arrays:
            check_labels(arrays["y"], total, path)


def random_inputs(inputs: list[dict[str, Any]], count: int, seed: int) -> dict[str, np.ndarray]:
    """Uniform [0, 1) samples shaped like each input without its batch axis (unknown dims become 1), batch-first."""
    from stages.load.batch_axis import sample_shape
    from stages.load.shapes import axis_of

    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in inputs:
        shape = [1 if d is None else d for d in sample_shape(spec["shape"], axis_of(spec))]
        if spec["dtype"].startswith("int") or spec["dtype"].startswith("uint"):
            feeds[spec["name"]] = rng.integers(0, 10, size=[count, *shape]).astype(spec["dtype"])
        else:
            feeds[spec["name"]] = rng.random([count, *shape], dtype=np.float32).astype(spec["dtype"])
    return feeds
