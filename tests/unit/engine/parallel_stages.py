"""Toy stages for the parallel runner's tests: each records when it ran and in which process."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from stages.result import StageResult


def _record(cfg: dict[str, Any], name: str, started: float) -> None:
    line = {"name": name, "start": started, "end": time.time(), "pid": os.getpid()}
    with open(cfg["log_file"], "a") as fh:
        fh.write(json.dumps(line) + "\n")


def source(cfg: dict[str, Any], out_dir: str) -> StageResult:
    started = time.time()
    (Path(out_dir) / "value.txt").write_text("1")
    _record(cfg, "source", started)
    return StageResult(files={"value": "value.txt"})


def work(cfg: dict[str, Any], out_dir: str, source: StageResult) -> StageResult:
    """Sleeps `seconds` (a stand-in for a conversion); `crash: true` takes its process down, `hang: true` never
    returns, `interrupt: true` sends the engine SIGINT (Ctrl-C) while its siblings run."""
    started = time.time()
    variant = cfg["variant"]
    if variant.get("interrupt"):
        time.sleep(0.5)
        os.kill(os.getppid(), signal.SIGINT)
    if variant.get("crash"):
        os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(3600 if variant.get("hang") else float(variant.get("seconds", cfg["seconds"])))
    (Path(out_dir) / "out.txt").write_text(variant["name"])
    _record(cfg, f"work[{variant['name']}]", started)
    return StageResult(files={"out": "out.txt"})


def bench(cfg: dict[str, Any], out_dir: str, work: StageResult) -> StageResult:
    """A stand-in for a benchmark: must run alone."""
    started = time.time()
    time.sleep(float(cfg["seconds"]))
    _record(cfg, f"bench[{cfg['variant']['name']}]", started)
    return StageResult(metrics={"ok": 1})
