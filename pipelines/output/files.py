"""Writing what users read without ever leaving half a file: a temp file beside the target, then a rename."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    """Temp file + rename: a full disk or a kill leaves the previous file or none, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def copy_atomic(source: Path, target: Path) -> None:
    """`shutil.copyfile` through a temp file, for the same reason as `write_atomic`."""
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except OSError as err:  # name the file being written, not the source that copyfile may report
        raise OSError(err.errno, err.strerror, str(target)) from err
    finally:
        tmp.unlink(missing_ok=True)
