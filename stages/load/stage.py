"""Load stage: find (or build) the source model, load it once to check it, and record its named I/O."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from stages.load.model.formats import FORMATS, model_format
from stages.result import InputError, StageResult


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _build(model: dict[str, Any], out_dir: Path) -> Path:
    module_name, _, fn_name = model["build"].rpartition(".")
    build = getattr(importlib.import_module(module_name), fn_name)
    suffix = (model_format(model["format"]).suffixes or ("",))[0]
    target = out_dir / f"model{suffix}"
    build(str(target), **(model.get("build_args") or {}))
    return target


def probe_axes(handle: Any, model: dict[str, Any]) -> list[str]:
    """Outputs whose batch axis the signature leaves open (stages/load/batch_axis.py) are probed on seeded
    random samples shaped by the signature and `model.input_shapes`, other unknown dims set to PROBE_DIM; where
    the probe fails, axis 0 is assumed, and running the model on the data checks it (a clear error if the
    samples are not there)."""
    import numpy as np

    from stages.load.batch_axis import UNKNOWN, sample_shape
    from stages.load.model.formats import shape_overrides
    from stages.load.shapes import fixed_shapes

    if all(o.batch_axis != UNKNOWN for o in handle.outputs):
        return []
    try:
        shapes = fixed_shapes([i.to_json() for i in handle.inputs], shape_overrides(model), None)
    except InputError:  # unknown sequence or spatial dims: a small size the probe can run
        shapes = {i.name: list(i.shape) for i in handle.inputs}
    rng = np.random.default_rng(0)
    feeds = {
        i.name: rng.random(
            [2, *(PROBE_DIM if d is None else d for d in sample_shape(shapes[i.name], i.batch_axis))]
        ).astype(i.dtype)
        for i in handle.inputs
    }
    return handle.resolve_axes(feeds)


PROBE_DIM = 8  # an unknown non-batch dim in the batch-axis probe


def load(cfg: dict[str, Any], out_dir: str) -> StageResult:
    from stages.load.model import load_handle

    model = dict(cfg["model"])
    files: dict[str, str] = {}
    if model.get("path"):
        path = Path(model["path"]).expanduser().resolve()
    elif model.get("build"):
        path = _build(model, Path(out_dir))
        files["model"] = path.name
    else:
        raise InputError(f"No model given: set `model.path` (and `model={'|'.join(FORMATS)}`).")
    if not path.exists():
        raise InputError(f"The model path {path} does not exist. Set `model.path` to your model file or directory.")
    model["path"] = str(path)
    model["name"] = model.get("name") or path.name.split(".")[0]
    try:
        handle = load_handle(model)
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - loaders raise anything from OSError to protobuf errors
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        expected = model_format(model["format"]).expected
        raise InputError(
            f"Could not load {path} as a {model['format']} model ({type(err).__name__}: {first[:300]}). "
            f"Check that `model={model['format']}` matches its format (expected {expected}) and that the file "
            "was copied completely; if it loads in TensorFlow itself, please report this message."
        ) from None
    notes = probe_axes(handle, model)
    meta = {
        "model": {
            **model,
            "size_bytes": _size(path),
            # Which loader read it: `keras` (Keras 3) or `tf_keras` (Keras 2), a SavedModel road, or `frozen`.
            "loader": handle.load_path,
            "inputs": [i.to_json() for i in handle.inputs],
            "outputs": [o.to_json() for o in handle.outputs],
        },
        # Which loader worked (SavedModels fall back v2 -> v2_signatures -> v1_session) and why others did not.
        "load_path": handle.load_path,
        "load_notes": handle.notes + notes,
    }
    return StageResult(files=files, meta=meta)
