"""Calibrate stage: disjoint calibration and evaluation sets, checked against the model's input signature.

Everything downstream reads these two files, so every variant is calibrated and verified on the same data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from stages.calibrate.datasets import check_labels, check_samples, digits_split, random_inputs, read_npz
from stages.calibrate.layout import batch_first
from stages.load.batch_axis import sample_shape
from stages.load.model.formats import shape_overrides
from stages.load.shapes import axis_of, fixed_shapes
from stages.result import InputError, StageResult
from stages.samples import checksum, save_samples


def check_inputs(feeds: dict[str, np.ndarray], inputs: list[dict[str, Any]], source: str) -> dict[str, np.ndarray]:
    """The samples (check_samples), then shape and dtype against the model's inputs; returns arrays cast to
    the input dtypes. The arrays are batch-first: samples on axis 0, then one sample's dims (the input's shape
    without its batch axis, stages/load/batch_axis.py)."""
    check_samples({name: np.asarray(array) for name, array in feeds.items()}, source)
    checked = {}
    for spec in inputs:
        array = np.asarray(feeds[spec["name"]])
        expected = sample_shape(spec["shape"], axis_of(spec))
        if array.ndim != len(expected) + 1 or any(
            e is not None and e != a for e, a in zip(expected, array.shape[1:], strict=False)
        ):
            shown = ["N"] + ["?" if d is None else d for d in expected]
            raise InputError(
                f"The dataset {source} gives input '{spec['name']}' samples of shape "
                f"{list(array.shape)}, but "
                f"the model expects {shown} (N samples first). Reshape the data or fix the model's "
                "input shape."
            )
        if np.dtype(spec["dtype"]).kind in "iub" and array.dtype.kind == "f" and not np.all(np.mod(array, 1) == 0):
            raise InputError(
                f"The dataset {source} gives input '{spec['name']}' as {array.dtype} with fractional "
                "values, but the "
                f"model expects {spec['dtype']} (ids or indices): casting would truncate silently. "
                "Store integers."
            )
        checked[spec["name"]] = array.astype(spec["dtype"], copy=False)
    return checked


def calibrate(cfg: dict[str, Any], out_dir: str, load: StageResult, split: StageResult) -> StageResult:
    dataset = dict(cfg["dataset"])
    if dataset["kind"] == "digits" and load.meta["model"].get("example_dataset"):
        dataset.update(load.meta["model"]["example_dataset"])  # a bundled example's own data, not digits
    inputs = load.meta["model"]["inputs"]
    names = [i["name"] for i in inputs]
    num, seed = int(cfg["num_samples"]), int(cfg["seed"])
    stable, n_holdout = bool(cfg.get("stability", False)), int(cfg.get("holdout_samples", 0))
    kind = dataset["kind"]
    labels: np.ndarray | None
    layouts: dict[str, Any] = {}
    pool_labels: np.ndarray | None
    if kind == "digits":
        x_train, y_train, x_test, y_test = digits_split(seed=0)
        if len(names) != 1:
            raise InputError(f"The digits dataset feeds one input; the model has {names}. Use `dataset=npz`.")
        dims = sample_shape(inputs[0]["shape"], axis_of(inputs[0]))
        known = [int(d) for d in dims if d is not None]
        if len(known) == len(dims) and int(np.prod(known)) == 64:
            x_train, x_test = x_train.reshape([-1, *known]), x_test.reshape([-1, *known])
        source = "digits (scikit-learn, training split for calibration, test split for evaluation)"
        train = check_inputs({names[0]: x_train}, inputs, "digits")
        test = check_inputs({names[0]: x_test}, inputs, "digits")
        pool, pool_labels = train, y_train
        order = np.random.default_rng(seed).permutation(len(y_train))
        evaluation, labels = test, y_test
    else:
        if kind == "npz":
            feeds, labels = read_npz(dataset["path"], names)
            source = str(dataset["path"])
            feeds, layouts = batch_first(feeds, inputs, source)
        else:
            shapes = fixed_shapes(inputs, load.meta["model"].get("input_shapes"), None)
            shaped = [{**i, "shape": shapes[i["name"]]} for i in inputs]
            feeds, labels = random_inputs(shaped, int(dataset["num_samples"]), int(dataset["seed"])), None
            source = f"random (seed {dataset['seed']}): for size and latency only, accuracy is meaningless"
        overrides = shape_overrides(load.meta["model"])
        if overrides and kind == "npz":
            # the data must have the shapes the model will be converted for
            shapes = fixed_shapes(inputs, overrides, feeds)
            inputs = [{**i, "shape": shapes[i["name"]]} for i in inputs]
        feeds = check_inputs(feeds, inputs, source)
        total = len(next(iter(feeds.values())))
        if labels is not None:
            labels = check_labels(labels, total, source)
        shuffled = np.random.default_rng(int(dataset["seed"])).permutation(total)
        n_eval = max(1, min(int(round(total * float(dataset["eval_fraction"]))), total - 1))
        eval_idx = shuffled[:n_eval][: int(dataset["max_eval_samples"])]
        rest = shuffled[n_eval:]  # never evaluated on: calibration and evaluation stay disjoint
        order = rest[np.random.default_rng(seed).permutation(len(rest))]  # calibrate.seed draws from the rest
        pool, pool_labels = feeds, labels
        evaluation = {k: v[eval_idx] for k, v in feeds.items()}
        labels = labels[eval_idx] if labels is not None else None
    # Disjoint slices of the calibration pool: calibration, a second calibration subset for the stability check,
    # and held-out samples the int8_mixed search judges its trials on. None of them is in the evaluation set.
    calib_idx = order[:num]
    second_idx = order[num : 2 * num] if stable else order[:0]
    holdout_idx = order[num + len(second_idx) :][:n_holdout]
    if stable and len(second_idx) < len(calib_idx):
        raise InputError(
            f"calibrate.stability=true needs two disjoint calibration subsets of {len(calib_idx)} samples, but "
            f"the dataset {source} leaves only {len(order)} samples outside evaluation. Lower "
            "`calibrate.num_samples` or give more samples."
        )
    calib = {k: v[calib_idx] for k, v in pool.items()}
    out = Path(out_dir)
    save_samples(out / "calib.npz", calib, None)
    save_samples(out / "eval.npz", evaluation, labels)
    files = {"calib": "calib.npz", "eval": "eval.npz"}
    if stable:
        save_samples(out / "calib_b.npz", {k: v[second_idx] for k, v in pool.items()}, None)
        files["calib_b"] = "calib_b.npz"
    holdout = {k: v[holdout_idx] for k, v in pool.items()}
    save_samples(out / "holdout.npz", holdout, pool_labels[holdout_idx] if pool_labels is not None else None)
    files["holdout"] = "holdout.npz"
    meta = {
        "calibration": {
            "count": len(next(iter(calib.values()))),
            "requested": num,
            "seed": seed,  # calibrate.seed: which calibration samples were drawn
            # dataset.seed: which samples were held out for evaluation (digits: scikit-learn's fixed test split)
            "split_seed": None if kind == "digits" else int(dataset["seed"]),
            "source": source,
            "checksum": checksum(calib),
            "stability": [len(calib_idx), len(second_idx)] if stable else None,
            # Inputs not batched on axis 0: the model's batch axis and the one the user's data had it on.
            **({"input_layout": layouts} if layouts else {}),
        },
        "holdout": {
            "count": len(holdout_idx),
            "labels": pool_labels is not None,
            "source": f"{source}: calibration pool, disjoint from the calibration and evaluation samples",
            "checksum": checksum(holdout),
        },
        "evaluation": {"count": len(next(iter(evaluation.values()))), "labels": labels is not None},
        "random": kind == "random",
        "label_output": dataset.get("label_output"),  # dataset.label_output, for stages that score class outputs
        "output_kinds": dataset.get("output_kinds"),  # dataset.output_kinds, for stages that judge outputs
        # Each input's batch axis (stages/load/batch_axis.py): the samples above are batch-first, the model's
        # layout is rebuilt from these where a stage feeds it without the load stage's meta (benchmark).
        "batch_axes": {i["name"]: axis_of(i) for i in inputs},
    }
    return StageResult(files=files, meta=meta)
