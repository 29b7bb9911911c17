"""Is the configured numpy tail the model's own post-processing? Checked on the reference, before any variant.

A numpy tail with one wrong setting (anchors, box encoding, variances, sigmoid vs softmax, per-class vs
class-agnostic NMS, thresholds) turns an exact head into detections that match a third of the original's, and
every variant is then judged against that wrong tail: the user sees `failed` everywhere and cannot tell which
setting is off. So the reference stage runs the tail on the original model's own head outputs (the TF head, no
conversion) and compares with the original's detections by IoU matching; below `MIN_MATCH` the run stops (exit
2) naming the setting whose change alone restores the match (`stages.split.tail_alternatives` lists the tries).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from stages.result import InputError, StageResult
from stages.split.tail import load_postprocess, run_tail, tail_tensors
from stages.split.tail_alternatives import alternatives
from stages.split.tail_needs import missing_settings

MIN_MATCH = 0.99


# The verify stage's IoU matching (`stages.verify.detection_metrics.match_detections`), passed in by the reference
# stage that calls this check: split never imports verify.
Matcher = Callable[[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, str]], dict[str, Any]]


def agreement(
    reference: dict[str, np.ndarray], got: dict[str, Any], names: dict[str, str], match: Matcher
) -> tuple[float, dict[str, Any]]:
    """The smaller of the matched fraction and the candidates' precision (a tail keeping every box matches
    everything): 1.0 when the tail reproduces the original's detections."""
    found = match(reference, {k: np.asarray(v) for k, v in got.items()}, names)
    total = found["reference_detections"]
    if not total:
        return (1.0 if not found["unmatched_candidates"] else 0.0), found
    matched = found["matched_fraction"] * total
    precision = matched / max(matched + found["unmatched_candidates"], 1)
    return min(found["matched_fraction"], precision), found


def check_tail(
    load: StageResult,
    split: StageResult,
    head: dict[str, np.ndarray],
    feeds: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    names: dict[str, str] | None,
    match: Matcher,
) -> dict[str, Any] | None:
    """None when there is no numpy tail or no detection output (`names`: the original's detection outputs);
    else the figures of the check (recorded in the reference's metrics). Raises InputError when the tail does
    not reproduce the original's detections."""
    if not split.meta.get("postprocess") or not names:
        return None
    _, kwargs = load_postprocess(split.meta["postprocess_config"])
    needs = missing_settings(split.meta["postprocess"], kwargs, tail_tensors(split, head), feeds, reference, names)
    if needs:
        raise InputError(needs)
    score, found = agreement(reference, run_tail(split, head, feeds, load, host=True), names, match)
    figures = {"agreement": round(score, 6), "reference_detections": found["reference_detections"]}
    if score >= MIN_MATCH:
        return figures
    raise InputError(_message(load, split, head, feeds, reference, names, match, score, found))


def _message(
    load: StageResult,
    split: StageResult,
    head: dict[str, np.ndarray],
    feeds: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    names: dict[str, str],
    match: Matcher,
    score: float,
    found: dict[str, Any],
) -> str:
    target = split.meta["postprocess"]
    _, kwargs = load_postprocess(split.meta["postprocess_config"])
    tried: list[tuple[float, str]] = []
    for label, changed in alternatives(target, kwargs, reference[names["boxes"]].shape[1]):
        trial = StageResult(meta={**split.meta, "postprocess_config": {"_target_": target, **changed}})
        try:
            tried.append((agreement(reference, run_tail(trial, head, feeds, load, host=True), names, match)[0], label))
        except Exception:  # noqa: BLE001 - an alternative that does not fit the head's shapes is simply wrong
            continue
    tried.sort(key=lambda t: -t[0])
    fixes = [label for s, label in tried if s >= MIN_MATCH]
    head_text = (
        f"The numpy tail {target}, run on the original model's own head outputs ({len(next(iter(feeds.values())))}"
        f" evaluation samples, before any conversion), reproduces only {score:.2f} of the original model's "
        f"{found['reference_detections']} detections (IoU >= 0.5, same label; {found['unmatched_candidates']} "
        "detections it adds match none), so every variant would be judged against a wrong tail."
    )
    if fixes:
        why = f" The setting most likely wrong: `{fixes[0]}` alone reproduces >= {MIN_MATCH} of them"
        why += f" (also fixing it alone: {', '.join(f'`{f}`' for f in fixes[1:4])})." if len(fixes) > 1 else "."
        setting = fixes[0].replace(": ", "=")
        fix = (
            f" Set it in `split.postprocess` (or the model config's `postprocess`), e.g. `split.postprocess.{setting}`."
        )
    elif tried and tried[0][0] > score:
        why = (
            f" No single setting fixes it; the change that helps most is `{tried[0][1]}` ({tried[0][0]:.2f}), so "
            "more than one setting is off (check anchors, box encoding, variances, score activation, NMS)."
        )
        fix = " Compare each setting with the model's own post-processing (docs/split.md, the tail's table)."
    else:
        why = " No single change of its settings helps: check that `boxes`/`classification` name the right tensors."
        fix = " Compare each setting with the model's own post-processing (docs/split.md, the tail's table)."
    return head_text + why + fix
