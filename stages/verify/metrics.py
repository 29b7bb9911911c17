"""Comparison metrics between a variant's outputs and the original model's, matched by output name."""

from __future__ import annotations

from typing import Any

import numpy as np


def class_scores(values: np.ndarray) -> np.ndarray | None:
    """The (N, C) view of an output that holds class scores: (N, C) or (N, 1, ..., C); None otherwise."""
    if values.ndim < 2 or values.shape[-1] < 2 or any(d != 1 for d in values.shape[1:-1]):
        return None
    if values.dtype.kind not in "f":
        return None
    return values.reshape(len(values), values.shape[-1])


def choose_label_output(
    outputs: dict[str, np.ndarray], preferred: str | None, labels: np.ndarray | None
) -> tuple[str | None, str]:
    """The output holding class scores, and how it was chosen (said in the report and the run's output).

    `dataset.label_output` wins. Otherwise, among the outputs shaped like class scores, those whose width fits
    the labels (more columns than the largest label); several fitting: the one whose width equals the number
    of classes, else the first.
    """
    if preferred:
        if preferred not in outputs:
            return None, f"dataset.label_output={preferred} is not an output of the model ({sorted(outputs)})"
        return preferred, f"dataset.label_output={preferred}"
    candidates = [name for name, values in outputs.items() if class_scores(values) is not None]
    if not candidates:
        return None, "no output is shaped like class scores (N, C)"
    if labels is None or not len(labels):
        note = "the only class-score output" if len(candidates) == 1 else f"the first of {candidates}"
        return candidates[0], note
    classes = int(np.max(labels)) + 1
    fitting = [n for n in candidates if outputs[n].shape[-1] >= classes]
    if not fitting:
        return None, f"no class-score output has the {classes} columns the labels need ({candidates})"
    exact = [n for n in fitting if outputs[n].shape[-1] == classes]
    name = (exact or fitting)[0]
    if len(candidates) == 1:
        return name, "the only class-score output"
    return name, (
        f"chosen from {candidates}: its width {outputs[name].shape[-1]} fits the labels' {classes} classes; "
        "set dataset.label_output to choose another"
    )


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    view = class_scores(scores)
    table = view if view is not None else scores.reshape(len(scores), -1)
    return float(np.mean(np.argmax(table, axis=-1) == labels.reshape(-1)))


def relative_rmse(rmse: float, reference: np.ndarray) -> float:
    """RMSE over the reference output's spread: a scale-free error, so one gate works for probabilities, logits
    and pixel coordinates alike. The spread is its standard deviation, but never below 1% of its RMS magnitude:
    a near-constant output (a randomly initialised classifier's near-uniform scores) would otherwise turn
    float32 rounding into a large relative error."""
    ref = reference.astype(np.float64)
    if not ref.size:
        return rmse
    spread = max(float(np.std(ref)), 0.01 * float(np.sqrt(np.mean(ref**2))))
    return rmse / spread if spread > 1e-12 else rmse  # an all-zero reference: the plain RMSE


def compare(
    reference: dict[str, np.ndarray],
    candidate: dict[str, np.ndarray],
    labels: np.ndarray | None,
    label_output: str | None,
) -> dict[str, Any]:
    """RMSE and max-abs error per output, argmax agreement and accuracy for the class-score output.

    Agreement and accuracy read the same arrays: the candidate reshaped to the reference's shape, then its
    (N, C) view, so an (N, 1, C) output never broadcasts against the labels.
    """
    missing = sorted(set(reference) - set(candidate))
    if missing:
        raise ValueError(f"the converted model lacks outputs {missing} (it has {sorted(candidate)})")
    metrics: dict[str, Any] = {"rmse": {}, "relative_rmse": {}, "max_abs_err": {}, "finite": True}
    shaped: dict[str, np.ndarray] = {}
    for name, ref in reference.items():
        got = candidate[name].astype(np.float64).reshape(ref.shape)
        shaped[name] = got
        if not np.isfinite(got).all():
            metrics["finite"] = False
        diff = got - ref.astype(np.float64)
        metrics["rmse"][name] = float(np.sqrt(np.mean(diff**2))) if diff.size else 0.0
        metrics["max_abs_err"][name] = float(np.max(np.abs(diff))) if diff.size else 0.0
        metrics["relative_rmse"][name] = relative_rmse(metrics["rmse"][name], ref)
    scores = label_output if label_output in reference else choose_label_output(reference, None, labels)[0]
    if scores is not None:
        ref_view, got_view = class_scores(reference[scores]), class_scores(shaped[scores])
        if ref_view is not None and got_view is not None:
            metrics["argmax_agreement"] = float(np.mean(np.argmax(ref_view, -1) == np.argmax(got_view, -1)))
            if labels is not None:
                metrics["accuracy"] = accuracy(got_view, labels)
    return metrics
