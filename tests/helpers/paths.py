"""Where things are, computed once, so no test counts `parents[N]` from its own depth in the tree."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONF_DIR = str(REPO / "conf")
FAULTS = REPO / "tests" / "helpers" / "faults"  # sitecustomize.py: FAULT_ENOSPC=<glob> fails writes of matching files
