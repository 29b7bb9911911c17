"""Lineage: which data calibrated and evaluated a run, and each variant as a servable MLflow LoggedModel.

Before tracking, in the main process, `prepare` records the calibration and evaluation sets (name, digest, source,
shapes, file) in the report and writes each variant's `model_config.json` beside its `model.tflite`: only the
stage results know these. In the tracking process the sets become MLflow datasets (parent and child runs); each
variant's LoggedModel (the LiteRT pyfunc, which the registry registers) is pipelines/tracking/logged_model.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipelines.tracking.logged_model import MODEL_CONFIG
from stages.convert.quantization.aeq import reads_calibration


def calibrated_variants(cfg: dict[str, Any]) -> set[str]:
    """The variants whose conversion read the calibration set, as their quantization scheme says
    (stages/convert/schemes.py); their child runs get the calibration dataset as an input."""
    variants = cfg.get("variants", {})
    return {name for name, v in variants.items() if reads_calibration({"name": name, "mode": name, **(v or {})})}


def model_config(variant: str, outcomes: dict[str, Any]) -> dict[str, Any]:
    """What the pyfunc needs besides the .tflite: signature-key names, input names and the split tail."""
    convert = outcomes[f"convert[{variant}]"].result
    load = outcomes["load"].result
    split = outcomes["split"].result.meta if outcomes.get("split") and outcomes["split"].result else {}
    tail = None
    if split.get("head_outputs") and split.get("deploy") != "in_graph":  # in_graph: the .tflite holds the tail
        if not split.get("postprocess"):
            raise ValueError(
                "the model was split and its tail runs in TensorFlow, which a LiteRT-only pyfunc cannot serve; "
                "give the tail as a numpy function with `split.postprocess._target_=...`"
            )
        keys = ("cut_tensors", "tail_inputs", "head_final_outputs", "postprocess_config", "postprocess_inputs")
        tail = {k: split.get(k) for k in keys}
    return {
        "variant": variant,
        "names": convert.meta["names"],
        "inputs": [i["name"] for i in load.meta["model"]["inputs"]],
        "io": convert.meta.get("io"),
        "tail": tail,
    }


def prepare(report: dict[str, Any], outcomes: dict[str, Any], run_dir: Path) -> None:
    """Record the datasets in the report and write each servable variant's `model_config.json`."""
    from pipelines.output.files import write_atomic

    calibrate = outcomes.get("calibrate")
    if calibrate is not None and calibrate.result is not None:
        report["datasets"] = dataset_records(calibrate.result)
    for name, entry in report["variants"].items():
        if not entry.get("tflite_path"):
            continue
        try:
            config = model_config(name, outcomes)
        except ValueError:  # a TensorFlow tail: no LoggedModel; the registry reports why if asked
            continue
        write_atomic((run_dir / entry["tflite_path"]).with_name(MODEL_CONFIG), json.dumps(config, indent=2))


def dataset_records(calibrate: Any) -> dict[str, dict[str, Any]]:
    """Name, digest, source, shapes and file of the calibration and evaluation sets."""
    from stages.samples import checksum, load_samples

    meta = calibrate.meta["calibration"]
    source = str(meta["source"])
    origin = Path(source.split(" (")[0]).stem or "data"
    records = {}
    for context, key in (("calibration", "calib"), ("evaluation", "eval")):
        feeds, labels = load_samples(calibrate.path(key))
        digest = checksum(feeds | ({"labels": labels} if labels is not None else {}))
        records[context] = {
            "name": f"{origin}-{context}",
            "digest": digest[:16],
            "source": source,
            "path": str(calibrate.path(key)),
            "count": len(next(iter(feeds.values()))),
            "shapes": {k: list(v.shape) for k, v in feeds.items()},
            "labels": labels is not None,
        }
    return records


# --- In the tracking process: calls on the tracker's `mlflow` module ----------------------------------------


def _dataset(mlflow: Any, record: dict[str, Any]) -> Any:
    from mlflow.data.dataset_source_registry import get_dataset_source_from_json

    from stages.samples import load_samples

    feeds, labels = load_samples(Path(record["path"]))
    return mlflow.data.from_numpy(
        feeds,
        source=get_dataset_source_from_json(json.dumps({"uri": record["source"]}), "local"),
        targets=labels,
        name=record["name"],
        digest=record["digest"],
    )


def link_children(
    mlflow: Any, report: dict[str, Any], calibrated: set[str], models: dict[str, str] | None = None
) -> None:
    """Datasets: both on the parent, evaluation on every child, calibration on the children it calibrated; the
    children's LoggedModels listed on the parent's page (as its inputs: the models it compares). `models` (child
    run id -> model id, as the tracker logged them) spares asking the store for each child's outputs."""
    from mlflow.entities import DatasetInput, InputTag, LoggedModelInput

    client = mlflow.MlflowClient()
    records = report.get("datasets") or {}
    inputs = {
        context: DatasetInput(_dataset(mlflow, record)._to_mlflow_entity(), [InputTag("mlflow.data.context", context)])
        for context, record in records.items()
        if Path(record["path"]).exists()
    }
    model_ids = []
    for name, entry in report["variants"].items():
        run_id = entry.get("mlflow_run_id")
        if not run_id:
            continue
        used = ["calibration", "evaluation"] if name in calibrated else ["evaluation"]
        if any(c in inputs for c in used):
            _log_inputs(client, run_id, datasets=[inputs[c] for c in used if c in inputs])
        if models is not None:
            model_ids += [models[run_id]] if run_id in models else []
        else:
            outputs = client.get_run(run_id).outputs
            model_ids += [o.model_id for o in (outputs.model_outputs if outputs else [])]
    if inputs or model_ids:
        parent = mlflow.active_run().info.run_id
        _log_inputs(client, parent, datasets=list(inputs.values()), models=[LoggedModelInput(m) for m in model_ids])


def _log_inputs(client: Any, run_id: str, **inputs: Any) -> None:
    """`client.log_inputs`, again when another run registered the same dataset at the same moment. Why: MLflow's
    sqlite store looks a dataset up, then inserts it; two runs (parallel sweep jobs, two commands on one store)
    logging the same data into one experiment can both miss it, and the second insert fails with `UNIQUE
    constraint failed: datasets...`. The failed transaction wrote nothing; the retry finds the dataset."""
    import time

    for attempt in range(3):
        try:
            client.log_inputs(run_id, **inputs)
            return
        except Exception as err:  # noqa: BLE001 - only the race is retried; anything else is raised as it was
            if "UNIQUE constraint failed: datasets" not in str(err) or attempt == 2:
                raise
            time.sleep(0.2 * (attempt + 1))
