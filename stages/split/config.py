"""Where the graph is cut (`conf/split/*.yaml`, group `split`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional


class SplitMode(str, Enum):
    auto = "auto"
    none = "none"
    manual = "manual"


class SplitDeploy(str, Enum):
    """Where the tail runs in the deployed model: `host` (the .tflite is the head, the numpy tail runs beside it) or
    `in_graph` (the bundled tail rebuilt from TFLite builtins inside the .tflite: stages/postprocess/in_graph.py)."""

    host = "host"
    in_graph = "in_graph"


@dataclass
class SplitConfig:
    mode: SplitMode = SplitMode.auto
    # manual: tensor names to cut at (they become the head's outputs).
    outputs: Optional[list[str]] = None
    # Numpy tail: `{_target_: pkg.module.fn, ...kwargs}`; `_target_: null` runs the cut-off subgraph with
    # TensorFlow. Declared with its `_target_` key so `split.postprocess._target_=pkg.fn` works without `+`
    # (add keyword arguments with `+split.postprocess.name=value`). Typed Any: OmegaConf 2.3 cannot merge an
    # override dict into a None Optional[dict] field.
    postprocess: Any = field(default_factory=lambda: {"_target_": None})
    deploy: SplitDeploy = SplitDeploy.host
