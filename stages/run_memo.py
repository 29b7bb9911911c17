"""Results that two stages of one run would compute identically, computed once within the run.

The per-layer table is one: QuantizationDebugger quantizes with float I/O whatever the variant asks, so int8
and int8_io get the same table from the same calibration, and making it (the debugger's own calibration plus
one instrumented invoke per sample, off XNNPACK) took 24 s per variant on a published audio model. The first
stage to ask computes and writes it; one asking meanwhile, in another worker, waits on the entry's lock and
reads it. The calibrated float model every full-integer variant quantizes is another
(stages/convert/calibrated.py).

The engine names a directory for the run (`run_memo()`, removed when the run ends); a stage called without one
computes everything. Across runs nothing is kept here: the stage cache reuses whole stages.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RUN_MEMO_ENV = "TFLITE_PIPELINE_RUN_MEMO"


@contextmanager
def run_memo() -> Iterator[Path]:
    """A fresh memo directory for the stage workers started inside (they inherit the environment)."""
    root = Path(tempfile.mkdtemp(prefix="tflite-pipeline-run-"))
    saved = os.environ.get(RUN_MEMO_ENV)
    os.environ[RUN_MEMO_ENV] = str(root)
    try:
        yield root
    finally:
        if saved is None:
            os.environ.pop(RUN_MEMO_ENV, None)
        else:
            os.environ[RUN_MEMO_ENV] = saved
        shutil.rmtree(root, ignore_errors=True)


def once(kind: str, key: dict[str, Any], compute: Callable[[], Any]) -> Any:
    """`compute()` (a JSON value), or what an earlier call of this run with the same `kind` and `key` returned."""
    found = _once(kind, key, ".json", lambda: json.dumps(compute()).encode())
    return json.loads(found)


def once_bytes(kind: str, key: dict[str, Any], compute: Callable[[], bytes]) -> bytes:
    """`compute()` (bytes: a model), or what an earlier call of this run with the same `kind` and `key` returned."""
    return _once(kind, key, ".bin", compute)


def _once(kind: str, key: dict[str, Any], suffix: str, compute: Callable[[], bytes]) -> bytes:
    root = os.environ.get(RUN_MEMO_ENV)
    if not root or not Path(root).is_dir():
        return compute()
    from filelock import FileLock

    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:32]
    path = Path(root) / f"{kind}-{digest}{suffix}"
    with FileLock(f"{path}.lock"):  # released by the OS if the holder crashes
        if path.is_file():
            return path.read_bytes()
        value = compute()
        partial = path.with_name(f"{path.name}.partial")
        partial.write_bytes(value)
        partial.replace(path)
        return value
