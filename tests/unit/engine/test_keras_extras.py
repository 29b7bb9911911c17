"""The stage worker leaves Keras's optional integrations out of Keras's own import, and only out of it: checked
on stand-in packages named `keras` and `pandas` in a fresh interpreter, so nothing heavy is imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from pipelines.engine.worker import Worker
from tests.helpers.paths import REPO

SCRIPT = textwrap.dedent(
    """
    import sys
    from pipelines.engine.keras_extras import skip_keras_extras
    skip_keras_extras()
    skip_keras_extras()  # a second call installs nothing more
    import keras
    assert keras.pandas is None and keras.submodule.pandas is None, "Keras got pandas"
    assert "pandas" not in sys.modules, "pandas was imported for Keras"
    import tf_keras
    assert tf_keras.pandas is None, "Keras 2 got pandas"
    import keras.on_call
    assert keras.on_call.load().REAL, "a Keras function's own import at call time did not get pandas"
    del sys.modules["pandas"]
    import other
    assert other.pandas is not None and other.pandas.REAL, "another module did not get pandas"
    import keras.late
    assert keras.late.pandas is other.pandas, "Keras's later import did not find the loaded package"
    print(sum(type(f).__name__ == "KerasExtrasSkipped" for f in sys.meta_path))
    """
)


def _package(root: Path, name: str, init: str) -> None:
    (root / name).mkdir()
    (root / name / "__init__.py").write_text(init)


def test_keras_sees_no_pandas_while_every_other_importer_does(tmp_path: Path) -> None:
    guarded = "try:\n    import pandas\nexcept ImportError:\n    pandas = None\n"
    _package(tmp_path, "keras", guarded + "from keras import submodule\n")
    (tmp_path / "keras" / "submodule.py").write_text(guarded)
    (tmp_path / "keras" / "late.py").write_text("import pandas\n")
    (tmp_path / "keras" / "on_call.py").write_text("def load():\n    import pandas\n    return pandas\n")
    _package(tmp_path, "tf_keras", guarded)
    _package(tmp_path, "pandas", "REAL = True\n")
    (tmp_path / "other.py").write_text(guarded)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=tmp_path,
        env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"


def finders() -> list[str]:
    """Runs in the worker: the import finders in place when a stage runs."""
    return [type(f).__name__ for f in sys.meta_path]


def test_a_stage_worker_runs_its_stages_with_the_finder_in_place() -> None:
    with Worker(warm=None) as worker:
        found = worker.call(f"{__name__}.finders", {}, timeout_s=60, what="finders")
    assert found[0] == "KerasExtrasSkipped"
