"""Helpers shared by the benchmark scripts: run a command, measure its wall time and its process tree's peak RSS."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def _tree_rss_kib(root: int) -> int:
    """Sum of VmRSS over `root` and all its descendants, read from /proc (no psutil needed)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid, ppid = int(entry), int(fields.get("PPid", "0").strip() or 0)
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) if "VmRSS" in fields else 0
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        total += rss.get(pid, 0)
        pending += children.get(pid, [])
    return total


def snapshot(dest: Path) -> Path:
    """A copy of the code (pipelines, stages, examples, conf) to run from, so edits made to the working tree
    while a benchmark runs neither change what is measured nor invalidate the cache between two runs."""
    for name in ("pipelines", "stages", "examples", "conf"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def cached_count(output: str) -> tuple[int, int]:
    """(stages served from the cache, stages run) from the pipeline's progress lines."""
    lines = re.findall(r"\[\s*\d+/(\d+)\] \S+\s+(cached|done|FAILED|skipped)", output)
    return sum(1 for _, how in lines if how == "cached"), len(lines)


def run_measured(
    cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 3600, code: Path = REPO
) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """(wall seconds, peak MiB of the whole process tree, sampled every 0.2 s, completed process)."""
    full_env = {**os.environ, "PYTHONPATH": str(code), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss_kib(proc.pid))
            time.sleep(0.2)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    out, _ = proc.communicate(timeout=timeout)
    wall = time.perf_counter() - started
    watcher.join()
    return wall, peak[0] / 1024, subprocess.CompletedProcess(cmd, proc.returncode, out, "")


def pipeline_cmd(*overrides: str) -> list[str]:
    return [PYTHON, "-m", "pipelines", *overrides]


def median(values: list[float]) -> float:
    return statistics.median(values)


def load_avg() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} logical CPUs"
