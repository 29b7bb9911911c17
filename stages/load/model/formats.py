"""The model formats: one entry per format in `FORMATS`, which every stage and preflight ask instead of
comparing `model.format` themselves.

An entry says how to load the format, what preflight checks in its file, whether `model.input_shapes` is
applied by the loader or at conversion, how split sees its graph and whether the converter can read the file
as saved. Importing this module imports no TensorFlow (the loaders import it when called), so preflight can
ask it. A new format is one module beside this one (load, check, and a converter on the file if it has one) and one
entry below (plus its `conf/model/<format>.yaml`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.load.model import frozen_graph, keras_model, saved_model
from stages.load.model.handle import ModelHandle
from stages.result import InputError


@dataclass(frozen=True)
class SourceFormat:
    """Everything a stage may need to know about one source model format."""

    name: str
    # What `model.path` should be, in words (messages).
    what: str
    # File suffixes, the first for a model built by `model.build`; () for a directory.
    suffixes: tuple[str, ...]
    # (path, model config) -> handle; imports TensorFlow when called.
    load: Callable[[str, dict[str, Any]], ModelHandle]
    # Preflight's TensorFlow-free check of the model config and its path (None for a built model), run once the
    # path exists and is readable; raises InputError.
    check: Callable[[dict[str, Any], Path | None], None]
    # True when the loader applies `model.input_shapes` (a frozen graph's placeholders); else conversion does.
    shapes_at_load: bool
    # True when the file is itself the flat graph: split cuts it as read (no graph.pb), and the frozen function
    # is the converter's only road (nothing to try first, no fallback when it fails for another reason).
    graph_file: bool
    # (path, model config) -> a TFLiteConverter on the file as saved (split's second opinion on unsupported
    # ops), or None when the converter cannot read the format itself.
    saved_converter: Callable[[str, dict[str, Any]], Any] | None

    @property
    def expected(self) -> str:
        """The suffixes a file of this format has, or what it is (messages)."""
        return ", ".join(self.suffixes) or self.what


FORMATS: dict[str, SourceFormat] = {
    "keras": SourceFormat(
        name="keras",
        what="a .keras or .h5 file",
        suffixes=(".keras", ".h5", ".hdf5"),
        load=keras_model.load,
        check=keras_model.check,
        shapes_at_load=False,
        graph_file=False,
        saved_converter=keras_model.saved_converter,
    ),
    "saved_model": SourceFormat(
        name="saved_model",
        what="a SavedModel directory",
        suffixes=(),
        load=saved_model.load,
        check=saved_model.check,
        shapes_at_load=False,
        graph_file=False,
        saved_converter=saved_model.saved_converter,
    ),
    "frozen_graph": SourceFormat(
        name="frozen_graph",
        what="a frozen .pb graph",
        suffixes=(".pb", ".pbtxt"),
        load=frozen_graph.load,
        check=frozen_graph.check,
        shapes_at_load=True,
        graph_file=True,
        saved_converter=None,
    ),
}


def model_format(name: str) -> SourceFormat:
    """The entry for `model.format`."""
    if name not in FORMATS:
        *first, last = FORMATS
        raise InputError(f"Unknown model format '{name}': use {', '.join(first)} or {last}.")
    return FORMATS[name]


def shape_overrides(model: dict[str, Any]) -> dict[str, Any] | None:
    """`model.input_shapes` where conversion (and the calibration data) must apply them; None where the
    loader already did."""
    overrides = model.get("input_shapes")
    return overrides if overrides and not model_format(model["format"]).shapes_at_load else None
