"""MLflow pyfunc model (models-from-code): a .tflite file run by the LiteRT interpreter, plus the numpy tail
when the model was split.

MLflow stores this file with the model and executes it on `mlflow.pyfunc.load_model`, so a registered model
does not need this project installed: the part of `stages/` it runs travels as the model's code path
(`stages.litert_runtime` and the bundled `stages.postprocess` tails; pipelines/tracking/logged_model.py); the
runtime needs only `ai-edge-litert` and `numpy`.

`predict` takes `{input name: array}` (or one array for a single-input model) and returns `{output name: float
array}`, with the original model's tensor names, exactly as verification compares them.
"""

from __future__ import annotations

import importlib
import json
import warnings
from typing import Any

import mlflow
import numpy as np


def _without_type_hint_warning(show: Any) -> Any:
    """MLflow warns at class creation that `predict` lacks type hints (left out on purpose, see predict); its
    own `catch_warnings` overrides filters, so the message is dropped where warnings are shown instead."""

    def quiet(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        if "Add type hints to the `predict` method" not in str(message):
            show(message, category, *args, **kwargs)

    return quiet


_show, warnings.showwarning = warnings.showwarning, _without_type_hint_warning(warnings.showwarning)
try:

    class TFLitePyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
        """Artifacts: `tflite` (the model file) and `config` (signature names, input names, the split tail)."""

        def load_context(self, context: Any) -> None:
            from stages.litert_runtime import SignatureModel

            with open(context.artifacts["config"]) as fh:
                self.config = json.load(fh)
            self.model = SignatureModel(context.artifacts["tflite"], self.config["names"])
            self.inputs: list[str] = self.config["inputs"]
            self.tail = self.config.get("tail")

        def _feeds(self, model_input: Any) -> dict[str, np.ndarray]:
            if isinstance(model_input, dict):
                feeds = {str(k): np.asarray(v) for k, v in model_input.items()}
            elif isinstance(model_input, np.ndarray | list) and len(self.inputs) == 1:
                feeds = {self.inputs[0]: np.asarray(model_input)}
            else:
                raise TypeError(
                    f"predict() takes a dict {{input name: array}} for inputs {self.inputs} "
                    "(or one array when the "
                    f"model has a single input), not {type(model_input).__name__}."
                )
            missing = [n for n in self.inputs if n not in feeds]
            if missing:
                raise KeyError(f"predict() input lacks {missing}; the model's inputs are {self.inputs}.")
            return {n: feeds[n].astype(np.float32) if feeds[n].dtype.kind == "f" else feeds[n] for n in self.inputs}

        def _run_tail(self, head: dict[str, np.ndarray], feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            """The numpy postprocess tail, as stages.split.stage.run_tail calls it (cut tensors + tail inputs)."""
            tail = self.tail
            module_name, _, fn_name = tail["postprocess_config"]["_target_"].rpartition(".")
            fn = getattr(importlib.import_module(module_name), fn_name)
            kwargs = {k: v for k, v in tail["postprocess_config"].items() if k != "_target_"}
            tensors = {c: head[c] for c in tail["cut_tensors"]} | {n: feeds[n] for n in tail.get("tail_inputs", [])}
            tensors |= {name: head[c] for name, c in (tail.get("postprocess_inputs") or {}).items()}
            final = {n: head[n] for n in tail.get("head_final_outputs", []) if n in head}
            return final | {k: np.asarray(v) for k, v in fn(tensors, **kwargs).items()}

        # model_input is left unannotated on purpose: MLflow turns a type hint into input validation.
        def predict(self, context: Any, model_input, params: dict[str, Any] | None = None) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]  # noqa: ANN001
            feeds = self._feeds(model_input)
            outputs = self.model(feeds)
            return self._run_tail(outputs, feeds) if self.tail else outputs
finally:
    warnings.showwarning = _show


mlflow.models.set_model(TFLitePyfunc())
