"""Processes a test started by command line (Ray's daemons detach from the test): found by a marker in their
command line or open files, stopped by id, TERM then KILL (Ray daemons ignore SIGTERM for seconds; never
`ray stop`, which stops every user's Ray)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def pids_of(marker: str) -> list[int]:
    """Processes whose command line or open files name `marker` (a temp dir only our own `ray start` used). The
    open files find the agents each raylet starts (`ray::DashboardAgent`, `ray::RuntimeEnvAgent`): their process
    title replaces the command line (and may blank the environment), and they outlive a killed raylet, orphaned,
    with their logs under the marker still open."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if marker in (proc / "cmdline").read_bytes().decode(errors="replace") or _has_open(proc, marker):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def _has_open(proc: Path, marker: str) -> bool:
    for fd in (proc / "fd").iterdir():
        try:
            if marker in os.readlink(fd):
                return True
        except OSError:
            continue
    return False


def stop_marked(marker: str) -> None:
    """TERM the marked processes, then KILL whatever is left after 10 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids_of(marker):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + 10
        while pids_of(marker) and time.time() < deadline:
            time.sleep(0.2)
