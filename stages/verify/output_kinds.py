"""What each model output holds, read from the reference's own values and shapes, so each is judged by a metric
that means something for it (stages/verify/kind_metrics.py): the argmax of three MOS scores, of fifty
independent tags or of a tensor of pixel boxes is no measure of anything.

Kinds: `class_scores` (softmax rows, or a single-label classifier's logits: argmax/top-k agreement, accuracy;
a softmax over the last axis at every position of [N, T..., C]: per-position argmax agreement),
`multilabel` (independent sigmoid scores: per-label decisions at 0.5; per cell for [N, T..., C] posteriors and
masks), `regression` (anything else: relative error), `boxes` (padded detections: boxes [B, K, 4] with their
scores [B, K] and labels: IoU matching), `packed_detections` (box, score and label packed in [B, K, 6]:
unpacked, then IoU matching) and `yolo` (a raw YOLO head, [B, 4+C, N] or [B, N, 4+C]: centre-xywh boxes beside
per-class scores, decoded, NMS'd, then IoU matching). `dataset.output_kinds` overrides any of them.

The model's own structure comes before the values where the graph says it (stages/verify/output_ops.py: the op
that makes each output): a `Sigmoid` output in [0, 1] is multi-label, and an output made by a linear op
(`MatMul`/`BiasAdd`, a convolution) is never read as probabilities, however its values lie (MTCNN O-Net's
landmarks: ten coordinates in [0, 1], several above 0.5). Values decide only where the graph leaves it open.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stages.verify.detection_metrics import find_detection_outputs
from stages.verify.metrics import choose_label_output, class_scores
from stages.verify.output_ops import structure

KINDS = ("class_scores", "multilabel", "regression", "boxes", "packed_detections", "yolo")
# Kinds judged by their element-wise errors (the error gates read these outputs only).
ELEMENTWISE_KINDS = ("class_scores", "multilabel", "regression")
# ... and, for the unit-free `max_relative_rmse` alone, a YOLO head: its per-anchor tensor never reorders, so its
# relative error means something beside its detection match, and on data where the original detects nothing it is
# the only figure that sees broken boxes (nudenet's fp32: boxes off by 624 px, every detection gate 0 of 0).
# Padded and packed detections are not: their rows swap when scores nearly tie. No absolute limit reads pixels.
RELATIVE_ERROR_KINDS = (*ELEMENTWISE_KINDS, "yolo")
DETECTION_KINDS = ("boxes", "packed_detections", "yolo")
# Names that say what an output is, when its values leave it open.
_CLASS_WORDS = ("logit", "prob", "class", "softmax", "pred_label")
_REGRESSION_WORDS = ("mos", "regress", "pitch", "depth", "embed", "feature", "value", "score_reg")
# An output named after the op that makes it (a frozen graph's `model/Sigmoid`): independent scores, not a softmax.
_SIGMOID_WORDS = ("sigmoid", "logistic")
# Per-position scores in [0, 1] are posteriors or a mask when most cells are off: an image or a depth map in [0, 1]
# has many more cells at or above 0.5, and stays regression.
MAX_ON_SHARE = 0.25
YOLO_MIN_ANCHORS = 32


def classify(
    outputs: dict[str, np.ndarray],
    labels: np.ndarray | None = None,
    label_output: str | None = None,
    overrides: dict[str, str] | None = None,
    ops: dict[str, str] | None = None,
) -> dict[str, dict[str, str]]:
    """{output: {"kind", "why"}} for every output. `overrides` (dataset.output_kinds) win; then padded
    detection groups, packed detections and YOLO heads by shape and values; then class scores, multi-label
    scores and regression, asking `ops` ({output: the op that makes it}, output_ops.final_ops) first.
    Raises ValueError for an override that names no output or no known kind."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(outputs))
    if unknown:
        raise ValueError(
            f"dataset.output_kinds names {unknown}, which are not outputs of the model ({sorted(outputs)})"
        )
    bad = {n: k for n, k in overrides.items() if k not in KINDS}
    if bad:
        raise ValueError(f"dataset.output_kinds has unknown kinds {bad}; the kinds are {list(KINDS)}")
    kinds = {n: {"kind": k, "why": f"dataset.output_kinds[{n}]={k}"} for n, k in overrides.items()}
    free = {n: v for n, v in outputs.items() if n not in kinds}
    group = find_detection_outputs(free)
    if group:
        members = ", ".join(f"{role}={name}" for role, name in group.items())
        for name in group.values():
            kinds[name] = {"kind": "boxes", "why": f"padded detections ({members})"}
    for name, values in free.items():
        if name in kinds:
            continue
        why = packed_layout(values)
        if why is not None:
            kinds[name] = {"kind": "packed_detections", "why": why[2]}
            continue
        why_yolo = yolo_layout(values)
        if why_yolo is not None:
            kinds[name] = {"kind": "yolo", "why": why_yolo[1]}
    rest = {n: v for n, v in free.items() if n not in kinds}
    kinds |= _score_kinds(rest, labels, label_output, ops or {})
    return {n: kinds[n] for n in outputs}


def _score_kinds(
    outputs: dict[str, np.ndarray], labels: np.ndarray | None, label_output: str | None, ops: dict[str, str]
) -> dict[str, dict[str, str]]:
    """Class scores, multi-label scores or regression, for outputs that are not detections."""
    kinds: dict[str, dict[str, str]] = {}
    logits: dict[str, np.ndarray] = {}
    linear: set[str] = set()  # made by a linear op: logits or regression, never probabilities
    for name, values in outputs.items():
        view = class_scores(values) if values.dtype.kind == "f" else None
        lower = name.lower()
        made = structure(ops.get(name))
        if made == "linear":
            linear.add(name)
        stepwise = _per_position_kind(name, values, made) if per_position(values) else None
        if stepwise is not None:
            kinds[name] = stepwise
        elif view is None and made == "sigmoid" and _in_unit_interval(values) and values.size == len(values):
            why = f"one score per sample in [0, 1] made by a {ops[name]} op: a decision at 0.5 (one label)"
            kinds[name] = {"kind": "multilabel", "why": why}
        elif view is None:
            shape = "an integer output" if values.dtype.kind != "f" else f"shape {list(values.shape)}, not (N, C)"
            kinds[name] = {"kind": "regression", "why": f"{shape}: judged by its relative error"}
        elif name == label_output:
            kinds[name] = {"kind": "class_scores", "why": f"dataset.label_output={name}"}
        elif _is_softmax(view):
            kinds[name] = {"kind": "class_scores", "why": "rows in [0, 1] that sum to 1 (softmax)"}
        elif made != "linear" and _in_unit_interval(view) and int(np.max(np.sum(view >= 0.5, axis=1))) >= 2:
            active = int(np.max(np.sum(view >= 0.5, axis=1)))
            why = f"independent scores in [0, 1], rows not summing to 1, up to {active} labels active at 0.5"
            kinds[name] = {"kind": "multilabel", "why": why}
        elif _in_unit_interval(view) and made == "sigmoid":
            why = f"independent scores in [0, 1] made by a {ops[name]} op (multi-label)"
            kinds[name] = {"kind": "multilabel", "why": why}
        elif _in_unit_interval(view) and any(w in lower for w in _SIGMOID_WORDS):
            why = f"independent scores in [0, 1], its name '{name}' says sigmoid (no sample has two labels at 0.5)"
            kinds[name] = {"kind": "multilabel", "why": why}
        elif any(w in lower for w in _REGRESSION_WORDS) and not any(w in lower for w in _CLASS_WORDS):
            kinds[name] = {"kind": "regression", "why": f"its name '{name}' says regression"}
        else:
            logits[name] = values
    if not logits:
        return kinds
    # At most one of the remaining (N, C) outputs is a classifier's logits, as `choose_label_output` picks it:
    # the one whose width fits the labels, or, without labels, one that its name or its values call class scores.
    chosen, why = None, ""
    if any(k["kind"] == "class_scores" and class_scores(outputs[n]) is not None for n, k in kinds.items()):
        pass
    elif labels is not None and len(labels):
        chosen, choice = choose_label_output(logits, None, labels)
        why = f"a single-label classifier's scores: {choice}"
    else:
        named = [n for n in logits if any(w in n.lower() for w in _CLASS_WORDS)]
        signed = [n for n, v in logits.items() if float(np.min(v)) < 0 < float(np.max(v))]
        unit = [n for n, v in logits.items() if _in_unit_interval(v) and n not in linear]
        if named:
            chosen, why = named[0], f"its name '{named[0]}' says class scores"
        elif unit:
            chosen, why = unit[0], "scores in [0, 1], at most one active at 0.5 per row, no labels to say more"
        elif signed:
            chosen, why = signed[0], "shaped like class scores (N, C), logits of both signs, no labels to say more"
    for name in logits:
        if name == chosen:
            kinds[name] = {"kind": "class_scores", "why": why}
        elif name in linear:
            why_not = f"made by a linear op ({ops[name]}: no sigmoid or softmax after it), not class scores"
            kinds[name] = {"kind": "regression", "why": why_not}
        else:
            kinds[name] = {"kind": "regression", "why": "several values per sample that are not class scores"}
    return kinds


def per_position(values: np.ndarray) -> bool:
    """Whether a float output holds scores at every position of [N, T..., C] (a CTC recogniser's steps, a
    transcriber's frames, a mask's pixels): more than two dims and not the (N, 1, ..., C) of one row per sample."""
    return values.dtype.kind == "f" and values.ndim > 2 and class_scores(values) is None


def _per_position_kind(name: str, values: np.ndarray, made: str | None = None) -> dict[str, str] | None:
    """Class scores when the last axis is a softmax at every position; multi-label when the cells are independent
    scores in [0, 1], most of them off (posteriors, a mask); None (regression) otherwise, or when the name or the
    op that makes the output (`made`: output_ops.structure) says so."""
    positions = int(np.prod(values.shape[1:-1]))
    if values.shape[-1] >= 2 and _is_softmax(values):
        why = f"a softmax over the last axis at each of {positions} positions: per-position class scores"
        return {"kind": "class_scores", "why": why}
    lower = name.lower()
    if any(w in lower for w in _REGRESSION_WORDS) and not any(w in lower for w in (*_CLASS_WORDS, *_SIGMOID_WORDS)):
        return None
    if made == "linear":
        return None
    on = float(np.mean(values >= 0.5)) if values.size else 0.0
    if _in_unit_interval(values) and on <= MAX_ON_SHARE:
        why = (
            f"independent scores in [0, 1] at each of {positions} positions, {on:.2%} of cells at or above 0.5 "
            "(posteriors, a mask): per-cell decisions"
        )
        return {"kind": "multilabel", "why": why}
    return None


def _in_unit_interval(values: np.ndarray) -> bool:
    return bool(values.size) and float(np.min(values)) >= 0.0 and float(np.max(values)) <= 1.0


def _is_softmax(values: np.ndarray) -> bool:
    """Scores in [0, 1] that sum to 1 over the last axis (per row of (N, C), or at every position)."""
    return _in_unit_interval(values) and bool(np.allclose(values.sum(axis=-1), 1.0, atol=1e-3))


def packed_layout(values: np.ndarray) -> tuple[int, int, str] | None:
    """(score column, label column, why) when `values` is [B, K, 6] packed detections: four box coordinates,
    then a score in [0, 1] and an integer label in either order (padding rows: score <= 0 or -1)."""
    if values.ndim != 3 or values.shape[-1] != 6 or values.dtype.kind != "f" or values.shape[1] < 2:
        return None
    tail = values[..., 4:].reshape(-1, 2).astype(np.float64)
    whole = [bool(np.all(np.abs(tail[:, c] - np.rint(tail[:, c])) < 1e-6) and np.min(tail[:, c]) >= -1) for c in (0, 1)]
    unit = [bool(np.min(tail[:, c]) >= -1 and np.max(tail[:, c]) <= 1) for c in (0, 1)]
    for score, label in ((0, 1), (1, 0)):
        if unit[score] and whole[label] and not whole[score]:
            where = f"score in column {4 + score}, integer label in {4 + label}"
            why = f"[B, {values.shape[1]}, 6]: box in columns 0-3, {where}"
            return 4 + score, 4 + label, why
    return None


def yolo_layout(values: np.ndarray) -> tuple[bool, str] | None:
    """(channels_first, why) when `values` is a raw YOLO head: [B, 4+C, N] or [B, N, 4+C] with N anchors (many
    more than 4+C), non-negative box sizes, and per-class scores in [0, 1] that do not form a softmax."""
    if values.ndim != 3 or values.dtype.kind != "f":
        return None
    if _is_softmax(values):
        return None  # a softmax at every step, [B, T, C] (PP-OCR's CTC recogniser [1, 40, 6625]): no boxes
    first = values.shape[1] < values.shape[2]
    channels, anchors = (values.shape[1], values.shape[2]) if first else (values.shape[2], values.shape[1])
    if channels < 5 or anchors < max(YOLO_MIN_ANCHORS, 4 * channels):
        return None
    table = np.moveaxis(values, 1, 2) if first else values  # [B, N, 4+C]
    boxes, scores = table[..., :4], table[..., 4:]
    if float(np.min(boxes[..., 2:])) < 0 or not _in_unit_interval(scores):
        return None
    if scores.shape[-1] > 1 and _is_softmax(scores):
        return None
    layout = f"[B, 4+{channels - 4}, {anchors}]" if first else f"[B, {anchors}, 4+{channels - 4}]"
    return first, f"{layout}: centre-xywh boxes beside {channels - 4} per-class scores in [0, 1] (a YOLO head)"


def label_output_of(kinds: dict[str, dict[str, Any]], outputs: dict[str, np.ndarray], labels: Any) -> str | None:
    """The class-score output accuracy and argmax agreement read: among the `class_scores` outputs, the one whose
    width fits the labels (stages/verify/metrics.py: choose_label_output)."""
    scores = {
        n: outputs[n] for n, k in kinds.items() if k["kind"] == "class_scores" and class_scores(outputs[n]) is not None
    }
    return choose_label_output(scores, None, labels)[0] if scores else None
