"""The TFLite converter, driven the one way that keeps the signature: through a SavedModel written here.

Models with 64 MB of weights or more take their own SavedModel first: Keras's export (`keras_export`: variables
kept, the converter freezes them in C++) or the user's file (`saved_model_file`). That peaks at a third of the
memory of converting a function frozen in Python and is what lets the largest keras.applications models convert
on a 23 GiB machine. Smaller models, frozen graphs, cut heads and inputs whose shapes had to be fixed take the
frozen concrete function first, which is faster on small graphs (see `roads`).

`from_concrete_functions` silently drops the SignatureDef when it cannot save the function itself (e.g.
Keras's swish has a custom gradient whose captures do not save; EfficientNet then converts with 0 signatures)
and cannot convert functions whose variables could not be frozen. Saving the handle's function ourselves,
without custom gradients and with the object that owns any remaining variables, then `from_saved_model`,
works for both and keeps `serving_default` with the original names as keys. The converter's raw log (C++
stderr included) goes to a file; errors become one paragraph that points at it.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from stages.convert.calibrated import converted
from stages.load.model.conversion_roads import roads
from stages.result import StageError

_NO_16X8_RULE = re.compile(r"Quantization to 16x8-bit not yet supported for op: '(\w+)'")
_UNSUPPORTED = re.compile(
    r"'tf\.(\w+)' op is neither a custom op nor a flex op|failed to legalize operation 'tf\.(\w+)'"
)


def has_signature(flatbuffer: bytes) -> bool:
    from ai_edge_litert.interpreter import Interpreter

    return bool(Interpreter(model_content=flatbuffer).get_signature_list())


def holds_variables(flatbuffer: bytes) -> bool:
    """Whether the converter kept resource variables (VAR_HANDLE ops) instead of freezing them: a file that
    depends on LiteRT initialising state, which the frozen road avoids whenever the model can be frozen."""
    from ai_edge_litert.interpreter import Interpreter

    return any(op["op_name"] == "VAR_HANDLE" for op in Interpreter(model_content=flatbuffer)._get_ops_details())


def convert_flatbuffer(
    handle: Any, variant: dict[str, Any], calib: dict[str, np.ndarray], workdir: Path, made: bytes | None = None
) -> tuple[bytes, str]:
    """The converted model and the road that gave it: the first of `roads(handle)` that gives a file with a
    SignatureDef (the concrete-function road loses it when it cannot save the function, e.g. custom gradients).

    The first road's error is the one raised when every road fails: it is the most telling (the usual road).
    `made`: the first road's result, already converted with these settings (split's builtins check for fp32).
    """
    first: Exception | None = None
    for index, via in enumerate(roads(handle)):
        try:
            if index == 0 and made is not None:
                flatbuffer = made
            else:
                flatbuffer = converted(handle, variant, calib, workdir, via)
        except StageError:
            raise
        except Exception as err:  # noqa: BLE001 - ConverterError, or calibration needing a lost signature
            print(f"{via} road: {type(err).__name__}: {err}", file=sys.stderr)
            if missing_kernels(str(err)):  # the quantizer's rules are the same on every road
                raise
            first = first or err
            continue
        if via == handle.export_road and holds_variables(flatbuffer) and handle.frozen:
            print(f"{via} road kept resource variables; the model freezes, so the frozen road", file=sys.stderr)
            continue
        if via == "saved_model" or has_signature(flatbuffer):
            return flatbuffer, via
    raise first if first is not None else AssertionError("no conversion road")


@contextlib.contextmanager
def captured_stderr(log: Path) -> Iterator[None]:
    """Send file descriptor 2 (where TF's C++ converter writes) and Python's stderr to `log`."""
    sys.stderr.flush()
    saved = os.dup(2)
    with log.open("ab") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def missing_kernels(text: str) -> list[str]:
    """Op types the converter's log says have no rule at the variant's integer precision (per-op repair's cue)."""
    return sorted(set(_NO_16X8_RULE.findall(text)))


def unsupported_ops(text: str) -> list[str]:
    """TF op types the converter's log says TFLite builtins cannot run."""
    return sorted({a or b for a, b in _UNSUPPORTED.findall(text)})


def _clean(line: str) -> str:
    """A log line without glog prefixes, MLIR locations and 'error:' tags."""
    line = re.sub(r"^[EWIF]\d{4} [\d:.]+\s+\d+ \S+\] ", "", line.strip())
    line = re.sub(r"(<unknown>:0: )?(error|note|warning): ", "", line)
    return re.sub(r"loc\(.*?\)+:\s*", "", line).strip()


def failure_message(variant: str, text: str, log: Path) -> str:
    """One paragraph: the real cause named from the converter's log, what to try, and where the log is."""
    ops = unsupported_ops(text)
    tail = f" The converter's full log: {log}."
    if any(op.startswith("TensorList") for op in ops):
        return (
            f"Variant '{variant}' did not convert: the model's recurrent layers (ops {ops}) need a fixed batch "
            "size and frozen variables to become TFLite's fused LSTM/RNN kernels, and converting with batch 1 "
            "failed too. Drop this variant (`'variants=[...]'`), or unroll the recurrent layers "
            "(`unroll=True`) with a fixed sequence length." + tail
        )
    if ops:
        return (
            f"Variant '{variant}' did not convert: TFLite's builtin ops cannot run {ops}. Use `split=auto` to cut "
            "the graph before them and run the rest on the host, or replace those ops in the model." + tail
        )
    lines = [_clean(ln) for ln in text.splitlines() if "error" in ln.lower() and _clean(ln)]
    first = (lines or [_clean(ln) for ln in text.splitlines() if _clean(ln)] or ["unknown error"])[-1]
    return f"Variant '{variant}' did not convert: {first[:300]}. Drop this variant or fix the model." + tail
