"""What this machine lets a process use, read the same way by the engine's pool, verify and the timing child."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1
