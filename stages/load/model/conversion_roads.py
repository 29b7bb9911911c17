"""The conversion roads: the ways a loaded model becomes a TFLiteConverter, before any quantization setting.

Split's builtins check and every variant's conversion take the same roads (stages/convert/converter.py adds the
scheme's flags), so a road belongs to the model, not to a stage. Why there are several, and their order, is
told in stages/convert/converter.py's docstring.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def save_for_conversion(handle: Any, directory: Path) -> Path:
    """Write the handle's function as a SavedModel with one `serving_default` signature."""
    import tensorflow as tf

    module = tf.Module()
    if handle.keepalive is not None:
        module.owner = handle.keepalive  # the variables an unfrozen function reads are saved with it
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    tf.saved_model.save(module, str(directory), signatures={"serving_default": handle.fn}, options=options)
    return directory


# Weights from which a model converts through its SavedModel first. Freezing in Python and converting the frozen
# function peaks at about 40 bytes per weight byte (ConvNeXtTiny's 111 MB: 4.8 GB; ConvNeXtLarge's 790 MB ran
# out of 23 GiB), the SavedModel road at about 15; below this the frozen function converts about three times
# faster (the default example's CNN: 0.17 s against 0.5 s a conversion) and its peak is small anyway.
LEAN_FROM_BYTES = 64 * 2**20


def roads(handle: Any) -> Iterator[str]:
    """The conversion roads for a handle, in the order they are tried: the frozen function, the source's own
    SavedModel with its variables (Keras's export, the user's file) and our SavedModel of the function; a model
    with `LEAN_FROM_BYTES` of weights or more takes its own SavedModel first.

    Lazy: a model that goes its own SavedModel's way first is frozen only if that road fails.
    """
    own = handle.export is not None
    if own and handle.weight_bytes() >= LEAN_FROM_BYTES:
        yield handle.export_road
        own = False
    if handle.frozen:
        yield "concrete_function"
    if own:
        yield handle.export_road
    yield "saved_model"


def plain_converter(handle: Any, workdir: Path | None = None, via: str | None = None) -> Any:
    """A TFLiteConverter for `handle` on road `via` (one of `roads(handle)`, the first by default), with no
    optimization or quantization set: fp32 with the converter's defaults."""
    import tensorflow as tf

    via = via or next(roads(handle))
    if via == "concrete_function":
        return tf.lite.TFLiteConverter.from_concrete_functions([handle.fn], tf.Module())
    if via == handle.export_road:
        saved, key = handle.export()
        return tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=[key])
    directory = Path(tempfile.mkdtemp(prefix="savedmodel-", dir=workdir))
    return tf.lite.TFLiteConverter.from_saved_model(
        str(save_for_conversion(handle, directory)), signature_keys=["serving_default"]
    )
