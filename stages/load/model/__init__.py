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
from collections import OrderedDict
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


_HANDLES: OrderedDict[str, ModelHandle] = OrderedDict()  # the last few models this process loaded
_KEPT = 4


def _options(model: dict[str, Any]) -> dict[str, Any]:
    options = {
        k: model.get(k) for k in ("safe_mode", "custom_objects", "signature", "inputs", "outputs", "input_shapes")
    }
    if not model_format(model["format"]).shapes_at_load:
        options["input_shapes"] = None  # applied at conversion (stages.load.shapes), not at load
    for role in ("inputs", "outputs"):  # the load stage's meta lists them as TensorInfo dicts: keep the names
        names = options[role]
        if names:
            options[role] = [t["name"] if isinstance(t, dict) else t for t in names]
    return options


def _key(model: dict[str, Any], options: dict[str, Any]) -> str:
    stat = Path(model["path"]).stat()
    return json.dumps([model["format"], model["path"], stat.st_mtime_ns, stat.st_size, options], sort_keys=True)


def load_handle(model: dict[str, Any]) -> ModelHandle:
    """Load (once per process) the model described by the `load` stage's `meta['model']`.

    The load stage asks with the user's settings, every later stage with the names that load found (its meta):
    the same model, so the handle is kept under both, and the stage after `load` in the same worker does not
    load it again (2.6 s for a small MobileNetV2, more than the split's own work)."""
    options = _options(model)
    key = _key(model, options)
    handle = _HANDLES.get(key)
    if handle is None:
        handle = model_format(model["format"]).load(model["path"], options)
        found = {"inputs": [i.name for i in handle.inputs], "outputs": [o.name for o in handle.outputs]}
        for known in (key, _key(model, {**options, **found})):
            _HANDLES[known] = handle
    for known in [k for k, v in _HANDLES.items() if v is handle]:
        _HANDLES.move_to_end(known)
    while len(_HANDLES) > 2 * _KEPT:
        _HANDLES.popitem(last=False)
    handle.adopt_axes(axes_of(model))  # the batch axes the load stage found (stages/load/batch_axis.py)
    return handle
