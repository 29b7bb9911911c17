"""Tiny real stages for engine tests: they write files, record each execution, or fail on purpose."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from stages.result import StageError, StageResult


def _record(cfg: dict[str, Any], name: str) -> None:
    with open(cfg["log_file"], "a") as fh:
        fh.write(f"{name}\n")


def produce(cfg: dict[str, Any], out_dir: str) -> StageResult:
    _record(cfg, "produce")
    value = int(cfg["value"]) + (len(Path(cfg["data_path"]).read_text()) if cfg.get("data_path") else 0)
    (Path(out_dir) / "value.txt").write_text(str(value))
    return StageResult(files={"value": "value.txt"}, metrics={"value": value})


def scale(cfg: dict[str, Any], out_dir: str, produce: StageResult) -> StageResult:
    variant = cfg["variant"]
    _record(cfg, f"scale[{variant['name']}]")
    if variant.get("fail"):
        raise StageError(f"variant {variant['name']} was told to fail")
    if variant.get("crash"):
        os.kill(os.getpid(), signal.SIGKILL if variant["crash"] == "kill" else signal.SIGSEGV)
    value = int(produce.path("value").read_text()) * int(variant["factor"])
    (Path(out_dir) / "scaled.txt").write_text(str(value))
    return StageResult(files={"scaled": "scaled.txt"}, metrics={"value": value, "pid": os.getpid()})


def report(cfg: dict[str, Any], out_dir: str, scale: StageResult) -> StageResult:
    _record(cfg, f"report[{cfg['variant']['name']}]")
    return StageResult(metrics={"value": int(scale.path("scaled").read_text()) + 1})
