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


def read_npz(path: str, input_names: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Inputs keyed by input name (key `x` for a single-input model) and optional labels `y`."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"The dataset file {path} does not exist. Set `dataset.path` to an existing .npz file.")
    try:
        with np.load(file, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as err:  # noqa: BLE001 - numpy raises many types for bad files
        raise InputError(
            f"The dataset {path} cannot be read as .npz ({type(err).__name__}: {err}). Save it with "
            "`numpy.savez(path, x=..., y=...)`; object arrays (pickles) are refused."
        ) from None
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


def random_inputs(inputs: list[dict[str, Any]], count: int, seed: int) -> dict[str, np.ndarray]:
    """Uniform [0, 1) samples shaped like each input (unknown dims become 1)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in inputs:
        shape = [1 if d is None else d for d in spec["shape"][1:]]
        if spec["dtype"].startswith("int") or spec["dtype"].startswith("uint"):
            feeds[spec["name"]] = rng.integers(0, 10, size=[count, *shape]).astype(spec["dtype"])
        else:
            feeds[spec["name"]] = rng.random([count, *shape], dtype=np.float32).astype(spec["dtype"])
    return feeds
