"""The source model's config (`conf/model/*.yaml`, group `model`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from stages.load.model.formats import FORMATS

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
    # The numpy tail matching this model's cut-off post-processing ({_target_, ...kwargs}); used when
    # `split.postprocess` is not set. Typed Any for the same OmegaConf reason as input_shapes.
    postprocess: Any = None
    # Bundled examples only: the data they are meant for, used instead of the default `dataset=digits`
    # (e.g. {kind: random, num_samples: 64}). Any explicit non-digits dataset wins.
    example_dataset: Any = None
