"""The sample files every stage shares: calibrate writes `calib.npz`, `eval.npz` and `holdout.npz` once, and
convert, reference, verify, benchmark and MLflow's lineage read them, so their layout is defined here alone."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np


def save_samples(path: Path, feeds: dict[str, np.ndarray], labels: np.ndarray | None) -> None:
    """Inputs under `input/<name>` and the labels, if any, in one .npz."""
    arrays: dict[str, Any] = {f"input/{k}": v for k, v in feeds.items()}
    if labels is not None:
        arrays["labels"] = labels
    np.savez(path, **arrays)


def load_samples(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Inverse of `save_samples`: inputs keyed by input name, and labels or None."""
    with np.load(path, allow_pickle=False) as data:
        feeds = {k.removeprefix("input/"): data[k] for k in data.files if k.startswith("input/")}
        labels = data["labels"] if "labels" in data.files else None
    return feeds, labels


def checksum(feeds: dict[str, np.ndarray]) -> str:
    """A content hash of the inputs (names and bytes): what the report and MLflow's dataset lineage cite."""
    digest = hashlib.sha256()
    for name in sorted(feeds):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(feeds[name]).tobytes())
    return digest.hexdigest()
