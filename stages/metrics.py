"""Comparison metrics between a variant's outputs and the original model's, matched by output name."""

from __future__ import annotations

from typing import Any

import numpy as np


def classifier_output(outputs: dict[str, np.ndarray], preferred: str | None = None) -> str | None:
    """The output holding class scores: the configured one, else the first 2-D output with >1 column."""
    if preferred:
        return preferred if preferred in outputs else None
    for name, values in outputs.items():
        if values.ndim == 2 and values.shape[1] > 1:
            return name
    return None


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(scores, axis=-1) == labels.reshape(-1)))


def relative_rmse(rmse: float, reference: np.ndarray) -> float:
    """RMSE over the reference output's spread (its standard deviation, else its magnitude): a
    scale-free error, so one gate works for probabilities, logits and pixel coordinates alike."""
    ref = reference.astype(np.float64)
    spread = float(np.std(ref)) if ref.size else 0.0
    if spread <= 1e-12:
        spread = float(np.max(np.abs(ref))) if ref.size else 0.0
    return rmse / spread if spread > 1e-12 else rmse  # an all-zero reference: the plain RMSE


def compare(
    reference: dict[str, np.ndarray],
    candidate: dict[str, np.ndarray],
    labels: np.ndarray | None,
    label_output: str | None,
) -> dict[str, Any]:
    """RMSE and max-abs error per output, argmax agreement and accuracy for the classifier output."""
    missing = sorted(set(reference) - set(candidate))
    if missing:
        raise ValueError(f"the converted model lacks outputs {missing} (it has {sorted(candidate)})")
    metrics: dict[str, Any] = {"rmse": {}, "relative_rmse": {}, "max_abs_err": {}, "finite": True}
    for name, ref in reference.items():
        got = candidate[name].astype(np.float64).reshape(ref.shape)
        if not np.isfinite(got).all():
            metrics["finite"] = False
        diff = got - ref.astype(np.float64)
        metrics["rmse"][name] = float(np.sqrt(np.mean(diff**2))) if diff.size else 0.0
        metrics["max_abs_err"][name] = float(np.max(np.abs(diff))) if diff.size else 0.0
        metrics["relative_rmse"][name] = relative_rmse(metrics["rmse"][name], ref)
    scores = classifier_output(reference, label_output)
    if scores is not None:
        metrics["argmax_agreement"] = float(
            np.mean(
                np.argmax(reference[scores], -1) == np.argmax(candidate[scores].reshape(reference[scores].shape), -1)
            )
        )
        if labels is not None:
            metrics["accuracy"] = accuracy(candidate[scores], labels)
    return metrics
