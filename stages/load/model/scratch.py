"""Scratch folders that live as long as the process: a model exported once for all of its conversions.

Removed at exit (the stage worker leaves through `os._exit`, which runs the exit handlers first); a worker
killed from outside leaves its folders in the system's temp directory, named `tflite-pipeline-*`.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

_FOLDERS: list[Path] = []


def scratch_dir(prefix: str) -> Path:
    """A new folder under the system's temp directory (`TMPDIR`), removed when the process exits."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    _FOLDERS.append(folder)
    return folder


@atexit.register
def remove_all() -> None:
    for folder in _FOLDERS:
        shutil.rmtree(folder, ignore_errors=True)
    _FOLDERS.clear()
