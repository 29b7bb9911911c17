"""Assemble `report.json` (the contract in ARCHITECTURE.md) from the stages' outcomes and the judge's verdicts
(stages/verify/judge.py: the report makes none), and write it with report.md and the plots; the table itself is
pipelines/output/table.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pipelines.engine.runner import Outcome
from pipelines.output.files import copy_atomic, write_atomic
from pipelines.output.quantization_report import attach as attach_quantization
from pipelines.output.quantization_report import repair_notes
from pipelines.output.report_notes import latency_warnings, noise_notes, sensitivity_notes, timing_notes
from pipelines.output.table import format_markdown
from stages.verify.detection_metrics import tie_note
from stages.verify.gates import unverified_reason
from stages.verify.judge import judge_variant, overall_status

VARIANT_STAGES = ("convert", "verify", "benchmark")


def _first_error(outcomes: dict[str, Outcome], ids: list[str]) -> str | None:
    for nid in ids:
        outcome = outcomes.get(nid)
        if outcome is not None and outcome.status == "error":
            return f"{nid}: {outcome.error}"
    for nid in ids:
        outcome = outcomes.get(nid)
        if outcome is not None and outcome.status == "skipped":
            return f"{nid}: {outcome.error}"
    return None


def _variant_entry(
    name: str,
    variant_cfg: dict[str, Any],
    outcomes: dict[str, Outcome],
    reference: dict[str, Any],
    run_dir: Path,
    random_data: bool,
) -> dict[str, Any]:
    def result(stage: str) -> Any:
        outcome = outcomes.get(f"{stage}[{name}]")
        return outcome.result if outcome is not None and outcome.status == "ok" else None

    converted, verified, timed = result("convert"), result("verify"), result("benchmark")
    entry: dict[str, Any] = {
        "status": "error",
        "size_bytes": None,
        "tflite_path": None,
        "metrics": {},
        "gates": {},
        "backend": variant_cfg.get("backend", "converter"),
    }
    skipped = converted.meta.get("skipped") if converted is not None else None
    if skipped:  # the variant does not apply to this model (e.g. integer I/O for integer-only inputs)
        entry.update(status="skipped", reason=skipped, error=None)
        return entry
    if converted is not None:
        target = run_dir / "variants" / name / "model.tflite"
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_atomic(converted.path("tflite"), target)
        entry.update(size_bytes=converted.metrics["size_bytes"], tflite_path=str(target.relative_to(run_dir)))
        if "log" in converted.files and converted.path("log").exists():  # TensorFlow's own converter output
            copy_atomic(converted.path("log"), target.with_name("converter.log"))
        entry["metrics"].update({k: v for k, v in converted.metrics.items() if k != "size_bytes"})  # convert_s, ...
        entry["io"] = converted.meta["io"]
        entry["ops"] = converted.meta["contents"]["ops"]
        if "recipe" in converted.meta:  # AI Edge Quantizer: the recipe actually applied
            entry["recipe"] = converted.meta["recipe"]
        attach_quantization(entry, name, converted, run_dir)
        # Which conversion road worked and the input shapes the .tflite was built for (issue 10).
        entry["conversion"] = {k: converted.meta.get(k) for k in ("convert_path", "load_path", "input_shapes")}
    status = None
    if verified is not None:
        entry["metrics"].update({k: v for k, v in verified.metrics.items() if k != "finite"})
        if verified.meta.get("shortened"):  # too slow for the whole evaluation set (stages/verify/stage.py)
            entry["verification"] = {"shortened": verified.meta["shortened"]}
        judged = judge_variant(
            variant_cfg.get("gates") or {},
            verified.metrics,
            random_data,
            reference.get("rounding_noise"),
            entry.get("quantization"),
        )
        status, entry["gates"] = judged.status, judged.gates
        if judged.stability_agrees is not None:  # the raw subset metrics make way for the verdict on them
            stability = entry["quantization"]["stability"]
            del stability["metrics"]
            stability["gates_agree"] = judged.stability_agrees
    if timed is not None and "latency_ms" in timed.metrics:
        entry["metrics"].update(timed.metrics)
        entry["benchmark"] = {
            k: timed.meta.get(k)
            for k in ("num_threads", "threads", "use_xnnpack", "capped", "stopped", "inputs", "environment")
        }
    elif timed is not None and timed.meta.get("timing_skipped"):
        entry["benchmark"] = {"skipped": timed.meta["timing_skipped"]}
    # Any other per-variant stage a user adds to the DAG: its metrics under its own name, its failure reported.
    own = [nid for nid in outcomes if nid.endswith(f"[{name}]")]
    for nid in own:
        stage = nid.split("[", 1)[0]
        extra = outcomes[nid].result
        if stage not in VARIANT_STAGES and extra is not None and extra.metrics:
            entry["metrics"][stage] = dict(extra.metrics)
    error = _first_error(
        outcomes, [f"{s}[{name}]" for s in VARIANT_STAGES] + [n for n in own if n.split("[")[0] not in VARIANT_STAGES]
    )
    if error is None and status is not None:
        entry["status"] = status
        if status == "unverified":
            entry["reason"] = unverified_reason(entry["gates"])
    entry["error"] = _with_log_in_run_dir(error, run_dir / "variants" / name) if error else None
    if reference.get("size_bytes") and entry["size_bytes"]:
        entry["size_ratio"] = round(entry["size_bytes"] / reference["size_bytes"], 4)
    return entry


def _with_log_in_run_dir(error: str, variant_dir: Path) -> str:
    """A failed conversion's raw converter log (kept beside the cache, whose failed entries are discarded) is
    copied into the run directory, and the message points there."""
    found = re.search(r"(/\S+/failed-logs/\S+?\.log)", error)
    if not found or not Path(found.group(1)).is_file():
        return error
    target = variant_dir / "converter.log"
    target.parent.mkdir(parents=True, exist_ok=True)
    copy_atomic(Path(found.group(1)), target)
    return error.replace(found.group(1), str(target))


def _tensor(info: dict[str, Any]) -> dict[str, Any]:
    return {k: info.get(k) for k in ("name", "shape", "dtype", "batch_axis")}


def build_report(cfg: dict[str, Any], outcomes: dict[str, Outcome], run_dir: Path) -> dict[str, Any]:
    """The run's report; copies every converted variant to `variants/<name>/model.tflite`."""
    load = outcomes.get("load")
    model = dict(load.result.meta["model"]) if load and load.result else dict(cfg["model"])
    split_outcome = outcomes.get("split")
    split = split_outcome.result.meta if split_outcome and split_outcome.result else {"mode": cfg["split"]["mode"]}
    calib = outcomes.get("calibrate")
    ref = outcomes.get("reference")
    fp32_size = None
    convert_fp32 = outcomes.get("convert[fp32]")
    if convert_fp32 is not None and convert_fp32.result is not None:
        fp32_size = convert_fp32.result.metrics["size_bytes"]
    reference_info = {
        "size_bytes": fp32_size or model.get("size_bytes"),
        "rounding_noise": (ref.result.metrics.get("rounding_noise") if ref and ref.result else None) or {},
    }
    random_data = bool(calib and calib.result and calib.result.meta.get("random"))
    report: dict[str, Any] = {
        "model": {
            **{k: model.get(k) for k in ("name", "format", "path", "size_bytes", "loader")},
            # Each input's and output's name, shape and batch axis, as the load stage found them (stages/load)
            **({r: [_tensor(t) for t in model[r]] for r in ("inputs", "outputs")} if load and load.result else {}),
        },
        "split": {
            k: split.get(k)
            for k in (
                "mode",
                "unsupported_ops",
                "unsupported_where",
                "cut_tensors",
                "postprocess",
                "tail",
                "deploy",
                "note",
            )
        },
        "calibration": calib.result.meta["calibration"] if calib and calib.result else None,
        "reference": {
            "metrics": dict(ref.result.metrics) if ref and ref.result else {},
            "label_output": ref.result.meta.get("label_output") if ref and ref.result else None,
            "label_output_choice": ref.result.meta.get("label_output_choice") if ref and ref.result else None,
            "output_kinds": ref.result.meta.get("output_kinds") if ref and ref.result else None,
        },
        "variants": {
            name: _variant_entry(name, vcfg, outcomes, reference_info, run_dir, random_data)
            for name, vcfg in sorted(cfg["variants"].items())
        },
        "size_baseline": "fp32 variant" if fp32_size else "source model",
    }
    report["notes"] = []
    if load and load.result and model.get("loader") == "tf_keras":  # which Keras read it, and why (stages/load)
        report["notes"] += [n for n in load.result.meta["load_notes"] if n.startswith("Loaded with tf_keras")]
    choice, label_output = report["reference"]["label_output_choice"], report["reference"]["label_output"]
    kinds = report["reference"].get("output_kinds") or {}
    if choice and label_output and len(kinds) > 1 and not choice.startswith("dataset.label_output"):
        # Several outputs, one chosen by itself: say which, and what the others were taken for.
        others = ", ".join(f"'{n}': {k['kind']}" for n, k in kinds.items() if n != label_output)
        report["notes"].append(f"Class scores: output '{label_output}', {choice} (the others: {others}).")
    if random_data:
        report["notes"] += [
            "dataset=random: no accuracy, and argmax agreement is not gated (the argmax of noise is arbitrary); "
            "variants are judged by their error against the original model (max_relative_rmse). Sizes and "
            "latency hold."
        ]
    report["notes"] += sensitivity_notes(report["reference"]["metrics"])
    report["notes"] += noise_notes(report["variants"])
    report["notes"] += [
        f"{name}: recipe entries that match no op of this model (they did nothing): "
        + ", ".join(f"regex {r['regex']!r} operation {r['operation']!r}" for r in v["recipe"]["unmatched"])
        for name, v in report["variants"].items()
        if (v.get("recipe") or {}).get("unmatched")
    ]
    report["notes"] += repair_notes(report)  # ops moved off a variant's precision so that it runs
    report["notes"] += timing_notes(report["variants"])
    report["notes"] += [n for name, v in report["variants"].items() if (n := tie_note(name, v["metrics"]))]
    report["notes"] += [
        f"{name}: {v['verification']['shortened']['why']}."
        for name, v in report["variants"].items()
        if (v.get("verification") or {}).get("shortened")
    ]
    report["warnings"] = latency_warnings(cfg, report["variants"])
    report["status"] = overall_status([v["status"] for v in report["variants"].values()])
    global_errors = {nid: o.error for nid, o in outcomes.items() if "[" not in nid and o.status == "error"}
    if global_errors:
        report["errors"] = global_errors
    return report


def write_tradeoff_plot(report: dict[str, Any], run_dir: Path, cache_root: Path | None = None) -> None:
    """Draw the trade-off plot and record its name in the report (before `write_report`). With `cache_root`, a
    figure drawn before from the same figures is copied, not redrawn."""
    from pipelines.output.figure_cache import cached_figure
    from pipelines.output.plots import plot_tradeoffs, tradeoff_inputs

    plot = cached_figure(cache_root, tradeoff_inputs(report), run_dir / "tradeoffs.png", plot_tradeoffs)
    if plot is not None:
        report["plot"] = plot.name


def write_layer_plots(report: dict[str, Any], run_dir: Path, cache_root: Path | None = None) -> None:
    """Draw each quantized variant's worst layers and record the figure in its entry (its MLflow child run
    carries it); cached like the trade-off plot. Variants that share one per-layer table (int8 and int8_io:
    stages/run_memo.py) share one figure, titled with all their names and copied into each variant's folder:
    drawing it again would cost most of a second for the same bars."""
    from pipelines.output.figure_cache import cached_figure
    from pipelines.output.plots import plot_worst_layers

    sharing: dict[str, list[str]] = {}  # one per-layer table (as JSON) -> the variants it belongs to
    for name, entry in report["variants"].items():
        info = entry.get("quantization") or {}
        if info.get("layers"):
            sharing.setdefault(json.dumps(info["layers"], sort_keys=True, default=str), []).append(name)
    for names in sharing.values():
        first = report["variants"][names[0]]["quantization"]
        drawn = cached_figure(
            cache_root,
            {"variant": ", ".join(names), "layers": first["layers"]},
            run_dir / "variants" / names[0] / "worst_layers.png",
            lambda inputs, path: plot_worst_layers(inputs["variant"], inputs["layers"], path),
        )
        if drawn is None:
            continue
        for name in names:
            figure = run_dir / "variants" / name / "worst_layers.png"
            if figure != drawn:
                figure.parent.mkdir(parents=True, exist_ok=True)
                copy_atomic(drawn, figure)
            report["variants"][name]["quantization"]["layers_plot"] = str(figure.relative_to(run_dir))


def write_plots(report: dict[str, Any], run_dir: Path, cache_root: Path | None = None) -> None:
    """Every figure of the run: each quantized variant's worst layers, then the trade-off plot."""
    write_layer_plots(report, run_dir, cache_root)
    write_tradeoff_plot(report, run_dir, cache_root)


def write_report(report: dict[str, Any], run_dir: Path) -> None:
    write_atomic(run_dir / "report.json", json.dumps(report, indent=2, default=str))
    write_atomic(run_dir / "report.md", format_markdown(report))
