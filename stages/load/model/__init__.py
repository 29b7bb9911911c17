"""One view of every source model format: a TF function with named inputs and named outputs.

Keras files, SavedModels (through their serving signature) and TF1 frozen graphs all become a
`ModelHandle`: a concrete function (variables frozen to constants when a stage needs it, see `ModelHandle`)
which returns a dict keyed by output name, so the TFLite signature carries the original names and every comparison is by
name, never by position. Handles are memoised per process: the persistent worker loads each model once, not
once per variant. One module per format: `keras_model`, `saved_model`, `frozen_graph`, each an entry of the
table in `formats`, which answers every question about a format; stages get the whole model or the split's head
from `access`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from stages.load.batch_axis import axes_of
from stages.load.model.formats import model_format
from stages.load.model.frozen_graph import check_node_names, frozen_graph_handle, read_graph_def
from stages.load.model.handle import ModelHandle, TensorInfo, signature_key

__all__ = [
    "ModelHandle",
    "TensorInfo",
    "check_node_names",
    "frozen_graph_handle",
    "load_handle",
    "read_graph_def",
    "signature_key",
]


@lru_cache(maxsize=4)
def _load_cached(fmt: str, path: str, stamp: tuple[int, int], options: str) -> ModelHandle:
    return model_format(fmt).load(path, json.loads(options))


def load_handle(model: dict[str, Any]) -> ModelHandle:
    """Load (once per process) the model described by the `load` stage's `meta['model']`."""
    path = model["path"]
    stat = Path(path).stat()
    options = {
        k: model.get(k) for k in ("safe_mode", "custom_objects", "signature", "inputs", "outputs", "input_shapes")
    }
    if not model_format(model["format"]).shapes_at_load:
        options["input_shapes"] = None  # applied at conversion (stages.load.shapes), not at load
    for role in ("inputs", "outputs"):  # the load stage's meta lists them as TensorInfo dicts: keep the names
        names = options[role]
        if names:
            options[role] = [t["name"] if isinstance(t, dict) else t for t in names]
    handle = _load_cached(model["format"], path, (stat.st_mtime_ns, stat.st_size), json.dumps(options, sort_keys=True))
    handle.adopt_axes(axes_of(model))  # the batch axes the load stage found (stages/load/batch_axis.py)
    return handle
