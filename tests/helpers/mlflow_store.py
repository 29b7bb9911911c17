"""An empty MLflow sqlite store, migrated once per test process and copied wherever a test needs a new one.

Creating a store runs MLflow's schema migrations: about 4 s of CPU each time, paid by every CLI run in a fresh
directory and every tracker test; copying the finished file takes milliseconds. What a run logs is the same on
either store. Tests of store creation itself (a full disk while the tables are made, two runs racing on a new
store) name their store explicitly (`tracking.uri=...`), and the CLI helper leaves those alone.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_CREATE = "import sys, mlflow; mlflow.MlflowClient(sys.argv[1]).search_experiments()"
_template: Path | None = None


def _template_store() -> Path:
    global _template
    if _template is None:
        folder = Path(tempfile.mkdtemp(prefix="mlflow-template-"))
        atexit.register(shutil.rmtree, folder, True)
        path = folder / "mlflow.db"
        subprocess.run(
            [sys.executable, "-c", _CREATE, f"sqlite:///{path}"], cwd=folder, check=True, capture_output=True
        )
        _template = path
    return _template


def new_sqlite_store(path: Path) -> str:
    """A ready store at `path` (a copy of the migrated template); returns its tracking URI."""
    shutil.copyfile(_template_store(), path)
    return f"sqlite:///{path}"
