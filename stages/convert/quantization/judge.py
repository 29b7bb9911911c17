"""Judge a candidate .tflite the way `verify` and the engine do, on samples the caller chooses (the search's
held-out samples, or the evaluation set for the stability check): the same comparison (`candidate_metrics`) and
the same gates (`stages/verify/gates.py`), so a trial that passes here passes there on the same figures."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from stages.result import StageResult
from stages.verify.candidate import candidate_metrics
from stages.verify.gates import judge as judge_by_gates
from stages.verify.metrics import accuracy, choose_label_output


class Judge:
    """The original model's outputs on `feeds`, computed once; then metrics and gates for any candidate."""

    def __init__(
        self,
        load: StageResult,
        split: StageResult,
        feeds: dict[str, np.ndarray],
        labels: np.ndarray | None,
        names: dict[str, str],
        gates: dict[str, Any],
        random_data: bool = False,
        label_output: str | None = None,
        output_kinds: dict[str, str] | None = None,
    ) -> None:
        from stages.load.model.access import full_model_outputs, head_handle, source_handle
        from stages.verify.detection_metrics import find_detection_outputs, nms_settings
        from stages.verify.output_kinds import classify
        from stages.verify.output_ops import handle_final_ops

        self.load, self.split, self.feeds, self.labels, self.names = load, split, feeds, labels, names
        self.gates, self.random_data = dict(gates or {}), random_data
        self.reference, _ = full_model_outputs(load, split, feeds)
        # As in the reference stage: for a cut graph, the TF head that the converted head is compared against.
        self.reference_head = head_handle(load, split).run(feeds) if split.meta.get("head_outputs") else None
        self.detections = find_detection_outputs(self.reference)
        self.nms = nms_settings(split.meta.get("postprocess_config"))  # as verify reads the detection ties
        # Each output's kind as the reference stage has it (dataset.output_kinds overriding), so the search judges
        # every output by the metric verify uses for it.
        ops = handle_final_ops(source_handle(load))
        kinds = classify(self.reference, labels, label_output, output_kinds, ops)
        self.kinds = {n: k["kind"] for n, k in kinds.items()}
        # As in the reference stage: padded detection scores are not class scores.
        self.label_output = None if self.detections else choose_label_output(self.reference, label_output, labels)[0]
        self.reference_accuracy = (
            accuracy(self.reference[self.label_output], labels)
            if self.label_output is not None and labels is not None
            else None
        )

    def metrics(self, flatbuffer: bytes) -> dict[str, Any]:
        from stages.litert_runtime import SignatureModel
        from stages.load.batch_axis import axes_of
        from stages.split.stage import run_tail

        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "trial.tflite"
            path.write_bytes(flatbuffer)
            head = SignatureModel(path, self.names, axes=axes_of(self.load.meta["model"]))(self.feeds)
        final = run_tail(self.split, head, self.feeds, self.load)
        return candidate_metrics(
            self.reference,
            final,
            self.labels,
            self.label_output,
            self.reference_accuracy,
            self.reference_head,
            head,
            self.kinds,
            self.nms,
        )

    def judge(self, metrics: dict[str, Any]) -> tuple[dict[str, Any], bool, float]:
        """(gates, passed, shortfall): passed needs a quality gate evaluated and every gate held; shortfall sums
        each gate's normalised violation (0 when passed), so trials that all fail can still be ranked."""
        status, gates = judge_by_gates(self.gates, metrics, self.random_data)
        shortfall = 0.0
        for name, gate in gates.items():
            if not gate["evaluated"] or gate["passed"]:
                continue
            limit, value = gate["limit"], gate["value"]
            if isinstance(limit, bool) or not isinstance(limit, int | float) or math.isnan(float(value)):
                shortfall += 1e6  # non-finite outputs or a NaN error: as far from passing as it gets
                continue
            miss = (float(limit) - float(value)) if name.startswith("min_") else (float(value) - float(limit))
            shortfall += max(miss, 0.0) / max(abs(float(limit)), 1e-3)
        return gates, status == "passed", shortfall


def summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The few figures a trial table shows."""
    out: dict[str, Any] = {k: metrics[k] for k in ("accuracy", "accuracy_delta", "argmax_agreement") if k in metrics}
    if metrics.get("rmse"):
        out["max_rmse"] = float(f"{max(metrics['rmse'].values()):.6g}")
    if (metrics.get("detection") or {}).get("matched_fraction") is not None:
        out["detection_match"] = metrics["detection"]["matched_fraction"]
    if metrics.get("relative_rmse"):
        out["max_relative_rmse"] = float(f"{max(metrics['relative_rmse'].values()):.6g}")
    return out
