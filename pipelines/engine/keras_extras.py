"""Keras imports scikit-learn, pandas and matplotlib at its own import whenever they are installed, for
integrations no stage uses (scikit-learn wrappers, DataFrames as `fit` data, image galleries): about 2 s of a
5.5 s TensorFlow import on a 2-core Xeon, paid by every stage worker of every run. In a worker those imports
fail while a Keras module's own import asks for them; Keras treats each as absent (`try: import ... except
ImportError`), and every other importer (the digits dataset's scikit-learn, a custom layer's pandas) gets the
package as usual. Keras 2 (`tf_keras`, which loads Keras 2 files) imports pandas the same way: 0.2 s of its 0.5 s."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import FrameType, ModuleType

SKIPPED = frozenset({"sklearn", "pandas", "matplotlib"})
KERAS_PACKAGES = frozenset({"keras", "tf_keras"})  # Keras 3, and Keras 2 for its files (the same guarded pandas)


class KerasExtrasSkipped(MetaPathFinder):
    """A finder ahead of the others that refuses the packages above to a Keras module, and only to one."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname in SKIPPED and _importer_is_keras(sys._getframe(1)):
            raise ModuleNotFoundError(f"{fullname} is left out of Keras in a stage worker", name=fullname)
        return None


def _importer_is_keras(frame: FrameType | None) -> bool:
    """Whether the first frame outside the import machinery is a Keras module's own import (its module-level
    code); a Keras function that imports one of them when called gets it."""
    while frame is not None and ("importlib" in frame.f_code.co_filename or frame.f_code.co_filename == __file__):
        frame = frame.f_back
    if frame is None or frame.f_code.co_name != "<module>":
        return False
    package = str(frame.f_globals.get("__name__", "")).split(".")[0]
    return package in KERAS_PACKAGES


def skip_keras_extras() -> None:
    """Install the finder in this process (a stage worker), once."""
    if not any(isinstance(finder, KerasExtrasSkipped) for finder in sys.meta_path):
        sys.meta_path.insert(0, KerasExtrasSkipped())
