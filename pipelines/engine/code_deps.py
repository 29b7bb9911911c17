"""Which source files a stage's result depends on: the module behind its `_target_` and every project module
that module imports, transitively (pipelines/engine/cache.py hashes them into the stage's key).

Found without importing anything and without syntax trees. `importlib.util.find_spec("a.b.c")` imports `a.b`
first (and with it numpy or TensorFlow), and walking each file's syntax tree costs more than reading it: the
two took about 0.5 s of every run's command process. Here a module is found on disk below its top package, and
a file's imports are read by a pattern over its lines. The pattern also sees an import written in a docstring
or a string; that only adds a file to the key (a rerun recomputes more, never less).
"""

from __future__ import annotations

import importlib.util
import os
import re
import sysconfig
from functools import cache
from pathlib import Path
from typing import NamedTuple

_LIBRARY_DIRS = tuple({sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")})

# `from a.b import c, d as e` / `from a import (c,\n d)` / `import a.b as c, d`, anywhere in a line's indent.
_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+([\w.]+)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)|import[ \t]+([^\n]*))", re.M)


class Source(NamedTuple):
    """A source file, and the folder its top-level package (or module) sits in: the file's name below that
    folder (`stages/load/stage.py`) is what a cache key records, so two checkouts in different places, such as
    two cluster nodes, compute the same keys."""

    path: Path
    root: Path

    @property
    def name(self) -> str:
        return self.path.relative_to(self.root).as_posix() if self.path.is_relative_to(self.root) else str(self.path)


@cache
def code_files(dotted: str) -> dict[str, Path]:
    """The module behind `dotted` plus every project module it imports, transitively, by name (Source.name)."""
    seen: dict[Path, Source] = {}
    pending: list[str | Source] = [dotted]
    while pending:
        item = pending.pop()
        found = item if isinstance(item, Source) else module_file(item)
        if found is None or found.path in seen:
            continue
        seen[found.path] = found
        for imported in imports_of(found.path, found.path.stat().st_mtime_ns):
            pending.append(imported if isinstance(imported, str) else Source(imported, found.root))
    return {source.name: source.path for source in sorted(seen.values())}


@cache
def module_file(dotted: str) -> Source | None:
    """Source file of a module, or of the module holding a dotted function path (`stages.load.stage.load`);
    None for installed libraries (their version is not ours to track) and for anything that cannot be found.
    Only the top-level name goes through importlib (a top-level look-up imports nothing); the rest is looked
    up in its package's folders, as Python's path finder does for plain source packages."""
    parts = dotted.split(".")
    try:
        top = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return None
    if top is None or not top.origin or _is_library(top.origin):
        return None
    found = Path(os.path.realpath(top.origin)) if top.origin.endswith(".py") else None
    folders = list(top.submodule_search_locations or [])
    root = Path(os.path.realpath(folders[0] if folders else top.origin)).parent
    for name in parts[1:]:
        if not folders:
            break  # a plain module: the rest names its attributes
        module = next((Path(d, f"{name}.py") for d in folders if Path(d, f"{name}.py").is_file()), None)
        package = next((Path(d, name) for d in folders if Path(d, name).is_dir()), None)
        if module is not None:
            found, folders = Path(os.path.realpath(module)), []
        elif package is not None:
            init = package / "__init__.py"
            found = Path(os.path.realpath(init)) if init.is_file() else found
            folders = [str(package)]
        else:
            break  # an attribute of the package found so far
    return None if found is None else Source(found, root)


@cache
def imports_of(path: Path, stamp: int) -> tuple[str | Path, ...]:
    """What a source file imports (read once per file version, `stamp`): module names, and the files a
    relative import names. For `from a import b` both `a` and `a.b`, since `b` may be a sub-module."""
    found: list[str | Path] = []
    for source, listed, plain in _IMPORT.findall(path.read_text(errors="replace")):
        names = _names(listed.strip("()") if source else plain)
        if source.startswith("."):
            found += _relative_files(path, source, names)
        elif source:
            found += [source, *(f"{source}.{name}" for name in names)]
        else:
            found += names
    return tuple(found)


def _relative_files(path: Path, source: str, names: list[str]) -> list[Path]:
    """The files `from .x import y` (or `from .. import y`) in `path` names, where they exist."""
    rest = source.lstrip(".")
    base = path.parent
    for _ in range(len(source) - len(rest) - 1):
        base = base.parent
    module = base.joinpath(*rest.split(".")) if rest else base
    candidates = [module.with_suffix(".py"), module / "__init__.py"] if rest else []
    for name in names:
        candidates += [module / f"{name}.py", module / name / "__init__.py"]
    return [Path(os.path.realpath(c)) for c in candidates if c.is_file()]


def _names(listed: str) -> list[str]:
    """`a.b as c, d  # note` -> [a.b, d]; a `;` ends the statement."""
    text = " ".join(line.split("#", 1)[0] for line in listed.split(";", 1)[0].splitlines())
    names = (item.split()[0] for item in text.replace("\\", " ").split(",") if item.split())
    return [name for name in names if re.fullmatch(r"[\w.]+", name)]


def _is_library(origin: str) -> bool:
    return os.path.realpath(origin).startswith(_LIBRARY_DIRS)
