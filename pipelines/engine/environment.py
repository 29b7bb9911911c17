"""Environment failures (exit code 3): the tracking store or the file system failed, not the model or the input.

Each is reported in one paragraph: what failed and where, what was kept locally, and the command that finishes
the job once the environment is fixed (the same command: every finished stage comes from the cache).
"""

from __future__ import annotations

import errno
import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

# errno values that mean "the machine's storage failed us", never "the input is wrong".
DISK_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission was denied",
    errno.EPERM: "the operation was not permitted",
    errno.EIO: "the disk reported an I/O error",
}
_ERRNO_IN_TEXT = re.compile(r"\[Errno (\d+)\][^:]*(?::\s*'([^']+)')?")
# TensorFlow's C++ file errors name no errno, only the path and strerror: "... /x/saved_model.pb.tmp; No space
# left on device" (a SavedModel written for the converter).
_STRERROR = {os.strerror(code): code for code in DISK_ERRNOS}
_STRERROR_IN_TEXT = re.compile(rf"(\S+); ({'|'.join(map(re.escape, _STRERROR))})")


class TrackingFailed(Exception):
    """Raised in the tracking process for any store error; carries only text, so it always pickles."""


def rerun_command() -> str:
    """The command line this process was started with, ready to paste."""
    program = "python -m pipelines" if sys.argv and sys.argv[0].endswith("__main__.py") else "tflite-pipeline"
    return " ".join([program, *(shlex.quote(a) for a in sys.argv[1:])])


def disk_errno(err: BaseException) -> int | None:
    """The errno of an OSError the storage caused (full, read-only, no permission), else None."""
    if isinstance(err, OSError) and err.errno in DISK_ERRNOS:
        return err.errno
    return None


def disk_errno_in_text(text: str) -> tuple[int, str | None] | None:
    """(errno, path) for a stage error message such as "OSError: [Errno 28] No space left on device: '/x'"."""
    for match in _ERRNO_IN_TEXT.finditer(text or ""):
        code = int(match.group(1))
        if code in DISK_ERRNOS:
            return code, match.group(2)
    found = _STRERROR_IN_TEXT.search(text or "")
    return (_STRERROR[found.group(2)], found.group(1)) if found else None


def tracking_failure_kind(text: str) -> str:
    """What went wrong with the store, in words, from the error text (MLflow, requests or sqlite). An HTTP
    status counts only as a number of its own: a port (127.0.0.1:45403) or a run id that holds "403" is not one."""
    lower = text.lower()
    if any(s in lower for s in ("disk is full", "no space left", "[errno 28]", "quota")):
        return "the store is full"
    denied = ("readonly database", "read-only", "permission denied", "forbidden", "[errno 13]")
    if any(s in lower for s in denied) or _http_status(lower, "403"):
        return "permission was denied"
    unreachable = (
        "connection refused",
        "max retries exceeded",
        "failed to establish",
        "timed out",
        "name or service not known",
        "connection reset",
        "connection aborted",
        "remote end closed",
        "did not answer",
    )
    if any(s in lower for s in unreachable) or _http_status(lower, "502|503"):
        return "the server is unreachable"
    return "the store returned an error"


def _http_status(text: str, codes: str) -> bool:
    """Whether `text` holds one of `codes` as a status ("error code 403 != 200", "503 Server Error", "status
    403."), not as part of a longer number, a port or a path."""
    return re.search(rf"(?<![\w.:/-])(?:{codes})(?![\w/-]|[.:][\w/])", text) is not None


def first_line(err: BaseException | str, limit: int = 300) -> str:
    text = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    return (text.strip().splitlines() or [""])[0][:limit]


def tracking_failure_message(uri: str, err: BaseException, kept: str) -> str:
    """One paragraph for a tracking store that failed after the work was done."""
    from pipelines.engine.errors import ConfigError, EnvironmentFailure

    detail = first_line(str(err) if isinstance(err, TrackingFailed) else err)  # its text names the real error
    if isinstance(err, ConfigError | EnvironmentFailure):  # the store could not be opened: already a sentence
        what = f"Tracking failed: {err}"
    else:
        what = f"Tracking failed: {tracking_failure_kind(detail)} at the MLflow store '{uri}' ({detail})."
    return (
        f"{what} {kept} Once "
        f"the store is back, run the same command again: `{rerun_command()}`; every stage comes from the cache, "
        "the run is logged as a new MLflow run and the unfinished one is marked KILLED. Exit code 3 (environment)."
    )


def _mib(value: float) -> str:
    return f"{value / 2**20:.1f} MiB"


def free_bytes(path: Path) -> int | None:
    """Free space on the file system holding `path` (or its nearest existing parent)."""
    probe = path.expanduser().absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def estimate_run_bytes(cfg: dict[str, Any]) -> int:
    """About what a run writes: the cache and the run directory each hold every variant (at most the source
    model's size), plus the calibration data, the reports and a sqlite tracking store (a 4 MiB margin)."""
    path = Path(str((cfg.get("model") or {}).get("path") or "")).expanduser()
    if path.is_file():
        size = path.stat().st_size
    elif path.is_dir():
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    else:
        size = 2**20  # a bundled example built on the fly: small
    return size * (2 * len(cfg.get("variants") or {}) + 2) + 4 * 2**20


def disk_failure_message(code: int, path: str | None, cfg: dict[str, Any], kept: str) -> str:
    """One paragraph for a write that the file system refused (full disk, read-only, no permission)."""
    where = Path(path) if path else Path(str(cfg.get("runtime", {}).get("cache_dir", "."))).expanduser()
    what = DISK_ERRNOS[code]
    if code in (errno.ENOSPC, errno.EDQUOT):
        free = free_bytes(where)
        free_text = f"{_mib(free)} free there now" if free is not None else "free space unknown"
        fix = (
            f"Free at least {_mib(estimate_run_bytes(cfg))} on that file system ({free_text}; a run of this "
            "model and these variants writes about that much into the cache and the run directory), or point "
            "`runtime.cache_dir=...` and `hydra.run.dir=...` at a larger disk"
        )
    else:
        fix = (
            "Make that location writable, or point `runtime.cache_dir=...`, `hydra.run.dir=...` (and "
            "`tracking.uri=...`) at a writable one"
        )
    return (
        f"The file system failed: {what} writing {where} ([Errno {code}] {errno.errorcode.get(code, '')}). "
        f"{kept} {fix}, then run the same command again: `{rerun_command()}`; the stages that finished come "
        "from the cache. Exit code 3 (environment)."
    )


def kept_locally(run_dir: Path, report_written: bool, cache_dir: Path) -> str:
    """The sentence saying what survived the failure."""
    if report_written:
        return (
            f"The work is done and kept locally: the report is {run_dir / 'report.md'} (and report.json), the "
            f"variants are under {run_dir / 'variants'}, every stage result is in the cache {cache_dir}."
        )
    return (
        f"No report was written and nothing half-written was kept; the stages that finished are in the cache "
        f"{cache_dir}."
    )
