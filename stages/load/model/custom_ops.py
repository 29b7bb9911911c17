"""Ops a SavedModel uses that this TensorFlow does not register: say whose they are instead of three stack traces.

A graph that uses ops from a custom op library (a package's own .so, loaded by importing that package) cannot be
loaded by any of TensorFlow's loaders, and even loaded it could not become a .tflite: LiteRT has no kernels for
those ops. TensorFlow Decision Forests models are the common case (`SimpleML...` ops).
"""

from __future__ import annotations

# Op name prefixes of well-known custom op libraries: (prefix, package, what it is).
_LIBRARIES = [
    ("SimpleML", "tensorflow_decision_forests", "a TensorFlow Decision Forests (TF-DF) model"),
    ("YggdrasilDecisionForests", "tensorflow_decision_forests", "a TensorFlow Decision Forests (TF-DF) model"),
    ("Addons>", "tensorflow_addons", "a model built with TensorFlow Addons"),
    ("IO>", "tensorflow_io", "a model built with TensorFlow I/O"),
    ("SentencepieceOp", "tensorflow_text", "a model with TensorFlow Text's tokenizers"),
    ("Sentencepiece", "tensorflow_text", "a model with TensorFlow Text's tokenizers"),
    ("WordpieceTokenize", "tensorflow_text", "a model with TensorFlow Text's tokenizers"),
    ("FastWordpiece", "tensorflow_text", "a model with TensorFlow Text's tokenizers"),
    ("TFRA>", "tensorflow_recommenders_addons", "a model built with TensorFlow Recommenders Addons"),
]


def unregistered_ops(path: str) -> list[str]:
    """The op types the SavedModel's graphs and functions use that no loaded library registers."""
    from tensorflow.python.framework import op_def_registry
    from tensorflow.python.saved_model.loader_impl import parse_saved_model

    used: set[str] = set()
    functions: set[str] = set()
    for graph in parse_saved_model(path).meta_graphs:
        library = graph.graph_def.library
        functions |= {f.signature.name for f in library.function}
        used |= {node.op for node in graph.graph_def.node}
        used |= {node.op for f in library.function for node in f.node_def}
    return sorted(op for op in used - functions if op_def_registry.get(op) is None)


def _library(ops: list[str]) -> tuple[str, str] | None:
    for prefix, package, what in _LIBRARIES:
        if any(op.startswith(prefix) for op in ops):
            return package, what
    return None


def custom_op_message(path: str, ops: list[str]) -> str:
    """One paragraph: whose ops these are (in one sentence), and that LiteRT cannot run them."""
    shown = ", ".join(ops[:6]) + (f" and {len(ops) - 6} more" if len(ops) > 6 else "")
    known = _library(ops)
    if known is not None:
        package, what = known
        return (
            f"The SavedModel {path} is {what}: its ops ({shown}) come from the `{package}` package, not from "
            "TensorFlow, and LiteRT has no kernels for them, so it cannot become a .tflite. Serve it with "
            f"TensorFlow and `{package}` (or TF Serving built with those ops), or convert a model that uses "
            "TensorFlow's own ops."
        )
    return (
        f"The SavedModel {path} uses ops this TensorFlow does not register ({shown}): they come from a custom "
        "op library (a package that loads its own .so with `tf.load_op_library` when imported; the op names "
        "usually tell which), and LiteRT has no kernels for them, so it cannot become a .tflite as it is. Export "
        "the model again without those ops (with TensorFlow's own ops in their place), or give LiteRT custom "
        "kernels for them and convert it where that package is imported."
    )


def explain(path: str) -> str | None:
    """The message for a SavedModel that failed to load because of unregistered ops, else None."""
    try:
        ops = unregistered_ops(path)
    except Exception:  # noqa: BLE001 - an unreadable saved_model.pb: the loaders' own errors say more
        return None
    return custom_op_message(path, ops) if ops else None
