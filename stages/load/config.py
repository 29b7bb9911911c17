"""The source model's config (`conf/model/*.yaml`, group `model`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from stages.load.model.formats import FORMATS
from stages.settings import BadSetting

# The formats are the format table's (stages/load/model/formats.py): a new format is one module and one entry
# there, and Hydra then accepts `model.format=<it>` without a second list.
ModelFormat = Enum("ModelFormat", {name: name for name in FORMATS}, type=str)  # type: ignore[misc]


@dataclass
class ModelConfig:
    # Default: the model file's (or directory's) name without extension.
    name: Optional[str] = None
    format: ModelFormat = ModelFormat["keras"]
    path: Optional[str] = None
    # Dotted path of a function `build(path: str, **build_args) -> None` that creates the model file when
    # `path` does not exist yet (the bundled examples); its source is part of the cache key.
    build: Optional[str] = None
    build_args: dict[str, Any] = field(default_factory=dict)
    # Frozen graphs only: tensor names (with or without ':0').
    inputs: Optional[list[str]] = None
    outputs: Optional[list[str]] = None
    # {name: [dims]}: frozen graphs' static shapes; for every format, fixes unknown dims (spatial size, sequence
    # length) before conversion, else they come from the dataset's shape. Typed Any: OmegaConf 2.3 cannot
    # merge an override dict into a None Optional[dict] field.
    input_shapes: Any = None
    # SavedModel only.
    signature: str = "serving_default"
    # Keras only: refuse Lambda layers and other arbitrary code unless the user opts in.
    safe_mode: bool = True
    # Keras only: the model author's custom layers, activations, ... that the file names but Keras does not know,
    # for Keras 3 and for tf_keras (Keras 2 files) alike: a list of importable modules (every public class and
    # function defined in them is registered under its name) or {name: dotted.path}. Typed Any for the same
    # OmegaConf reason as input_shapes.
    custom_objects: Any = None
    # The numpy tail matching this model's cut-off post-processing ({_target_, ...kwargs}); used when
    # `split.postprocess` is not set. Typed Any for the same OmegaConf reason as input_shapes.
    postprocess: Any = None
    # Bundled examples only: the data they are meant for, used instead of the default `dataset=digits`
    # (e.g. {kind: random, num_samples: 64}). Any explicit non-digits dataset wins.
    example_dataset: Any = None

    def __post_init__(self) -> None:
        _check_custom_objects(self.custom_objects)


_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _check_custom_objects(value: Any) -> None:
    """Its shape only (importing user code is the load stage's job, in the worker)."""
    if value is None:
        return
    why = (
        " must be a list of importable modules (`model.custom_objects=[my_pkg.layers]`) or a mapping from the "
        "name the file uses to a dotted path (`'model.custom_objects={FixedDropout: my_pkg.layers.FixedDropout}'`)"
    )
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple):
        bad = [v for v in value if not isinstance(v, str) or not _DOTTED.match(v)]
    elif isinstance(value, dict):
        bad = [f"{k}: {v}" for k, v in value.items() if not isinstance(v, str) or not _DOTTED.match(v)]
    else:
        raise BadSetting("custom_objects", value, why + ".")
    if bad:
        raise BadSetting("custom_objects", value, f"{why}; {bad} is not a dotted Python name.")
