"""The source files a stage's cache key hashes: every form of import a project module may use is followed, an
installed library is not, and nothing is imported to find them."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from pipelines.engine.code_deps import code_files, module_file


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package `depsdemo` whose `stage` module imports its siblings in every way, and one it never imports;
    any import of the package itself would raise."""
    _write(
        tmp_path,
        {
            "depsdemo/__init__.py": "raise RuntimeError('imported')\n",
            "depsdemo/stage.py": '''
                """A docstring that mentions nothing importable."""
                import numpy as np
                import depsdemo.plain as plain, depsdemo.second  # two at once
                from depsdemo.sub import leaf
                from depsdemo import (
                    grouped,  # a comment inside the group
                    other as renamed,
                )
                from .relative import helper

                def run():
                    from depsdemo.lazy import thing  # a call-time import counts too
                    return thing
            ''',
            "depsdemo/plain.py": "VALUE = 1\n",
            "depsdemo/second.py": "from depsdemo.chained import x\n",
            "depsdemo/chained.py": "x = 1\n",
            "depsdemo/sub/__init__.py": "",
            "depsdemo/sub/leaf.py": "",
            "depsdemo/grouped.py": "",
            "depsdemo/other.py": "",
            "depsdemo/relative.py": "",
            "depsdemo/lazy.py": "thing = 1\n",
            "depsdemo/unused.py": "",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path / "depsdemo"


def test_every_import_form_is_followed_and_nothing_is_imported(project: Path) -> None:
    found = code_files("depsdemo.stage.run")
    assert set(found) == {
        f"depsdemo/{name}"
        for name in [
            "__init__.py",  # `from depsdemo import ...` names the package itself
            "stage.py",
            "plain.py",
            "second.py",
            "chained.py",  # transitively, through second.py
            "sub/__init__.py",
            "sub/leaf.py",
            "grouped.py",
            "other.py",
            "relative.py",
            "lazy.py",
        ]
    }
    assert all(path == (project.parent / name).resolve() for name, path in found.items())
    assert "depsdemo" not in sys.modules  # found on disk: the package's __init__ (which raises) never ran


def test_libraries_and_unknown_names_have_no_file(project: Path) -> None:
    assert module_file("numpy.linalg") is None  # installed: its version is not the project's to track
    assert module_file("no_such_module_here.x") is None
    found = module_file("depsdemo.plain.VALUE")  # an attribute's module
    assert found is not None and found.path == (project / "plain.py").resolve() and found.name == "depsdemo/plain.py"


def test_the_stages_own_code_is_found_by_names_that_do_not_depend_on_the_checkouts_place() -> None:
    names = set(code_files("stages.convert.stage.convert"))
    assert {"stages/convert/stage.py", "stages/convert/converter.py", "stages/result.py"} <= names
