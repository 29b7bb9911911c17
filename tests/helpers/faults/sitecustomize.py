"""Test-only fault injection, never imported in production: tests/e2e/test_faults_lose_nothing.py puts this
folder on PYTHONPATH.

`FAULT_ENOSPC=<glob>` makes every open for writing of a file whose name matches the glob raise
`OSError(ENOSPC)`, in the CLI process and in the worker and tracking processes it spawns (they inherit the
environment), as a full disk would at that write.
"""

from __future__ import annotations

import builtins
import errno
import fnmatch
import io
import os
from typing import Any

_PATTERN = os.environ.get("FAULT_ENOSPC")

if _PATTERN:
    pattern: str = _PATTERN
    _real_open = io.open

    def _open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, str | os.PathLike) and any(c in mode for c in "wax+"):
            name = os.path.basename(os.fspath(file))
            if fnmatch.fnmatch(name, pattern):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(file))
        return _real_open(file, mode, *args, **kwargs)

    io.open = _open
    builtins.open = _open
