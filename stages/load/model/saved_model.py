"""SavedModels: loaded through the road that works for this file, recorded in the handle's `load_path`.

1. `v2`: `tf.saved_model.load` (the object graph) and the chosen signature; converted from the file itself
   (`saved_model_file`), frozen only when a stage needs the graph (see `ModelHandle`);
2. `v1_session`: TF's v1 session loader, which reads only the MetaGraph and its signature (never the object
   graph: files from older Keras versions whose optimizer objects can no longer be revived load here), the
   graph frozen with the session's variable values;
3. `v2_signatures`: TF's loader for TF1 SavedModels (signatures only, variables kept), the last resort.
A road whose function cannot be frozen is used only when no later road gives a frozen one.
Every road names inputs and outputs after the signature, so the report and comparisons use the same names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages.load.model.custom_ops import explain
from stages.load.model.handle import ModelHandle, TensorInfo, freeze_or_keep, infos, rekeyed, signature_key
from stages.result import InputError


def check(model: dict[str, Any], path: Path | None) -> None:
    """Preflight's check: the directory holds a saved_model.pb (a built model needs none)."""
    if path is not None and not (path / "saved_model.pb").is_file():
        raise InputError(
            f"{path} is not a SavedModel directory (no saved_model.pb inside). Point `model.path` at the "
            "directory that `tf.saved_model.save` wrote, or pick `model=keras`/`model=frozen_graph`."
        )


def load(path: str, options: dict[str, Any]) -> ModelHandle:
    """The loader as the format table calls it (`options`: the model config's loader keys)."""
    return load_saved_model(path, options.get("signature") or "serving_default")


def saved_converter(path: str, model: dict[str, Any]) -> Any:
    """The TFLite converter on the file itself, for the configured signature: split's second opinion."""
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_saved_model(path, signature_keys=[model.get("signature") or "serving_default"])


def _first_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:240]}"


class MissingSignature(InputError):
    """The user asked for a signature the SavedModel does not have: no other road can help."""


def _missing_signature(path: str, signature: str, available: list[str]) -> InputError:
    return MissingSignature(
        f"The SavedModel {path} has no signature '{signature}' (it has {sorted(available)}). "
        "Set `model.signature` to one of those."
    )


def _from_signatures(signatures: Any, path: str, signature: str, load_path: str, owner: Any) -> ModelHandle:
    import tensorflow as tf

    if signature not in signatures:
        raise _missing_signature(path, signature, list(signatures))
    sig = signatures[signature]
    in_specs = sig.structured_input_signature[1]
    in_names = sorted(in_specs)
    inputs = infos([(n, in_specs[n]) for n in in_names])
    out_struct = sig.structured_outputs
    outputs = infos([(n, tf.TensorSpec(out_struct[n].shape, out_struct[n].dtype)) for n in sorted(out_struct)])
    specs = [tf.TensorSpec(i.shape, i.dtype, name=i.key) for i in inputs]

    @tf.function(input_signature=specs)
    def serve(*args: Any) -> dict[str, Any]:
        result = sig(**dict(zip(in_names, args, strict=True)))
        return {o.key: result[o.name] for o in outputs}

    if load_path == "v2" and all(t.key == t.name for t in [*inputs, *outputs]):
        # The converter can read the user's file itself, under the same names: freeze only if a stage asks.
        def own_file() -> tuple[str, str]:
            return path, signature

        live = serve.get_concrete_function()
        return ModelHandle(
            None, inputs, outputs, load_path, True, owner, live=live, export=own_file, export_road="saved_model_file"
        )
    fn, frozen, notes = freeze_or_keep(serve.get_concrete_function(), inputs)
    return ModelHandle(fn, inputs, outputs, load_path, frozen, owner, notes)


def _meta_graph_tags(path: str, signature: str) -> list[str]:
    from tensorflow.python.saved_model.loader_impl import parse_saved_model

    graphs = parse_saved_model(path).meta_graphs
    for graph in graphs:
        if signature in graph.signature_def:
            return list(graph.meta_info_def.tags)
    available = sorted({k for g in graphs for k in g.signature_def})
    raise _missing_signature(path, signature, available)


def _v1_session(path: str, signature: str, tags: list[str]) -> ModelHandle:
    import tensorflow as tf

    from stages.load.model.frozen_graph import frozen_graph_handle

    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.load(session, tags, path)
        sig = meta.signature_def[signature]
        in_names, out_names = sorted(sig.inputs), sorted(sig.outputs)
        fetch = [sig.outputs[n].name.split(":")[0] for n in out_names]
        graph_def = tf.compat.v1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(), fetch)
    handle = frozen_graph_handle(
        graph_def, [sig.inputs[n].name for n in in_names], [sig.outputs[n].name for n in out_names], None
    )
    keyed = lambda old, names: [  # noqa: E731
        TensorInfo(n, signature_key(n), o.shape, o.dtype) for n, o in zip(names, old, strict=True)
    ]
    return rekeyed(handle, keyed(handle.inputs, in_names), keyed(handle.outputs, out_names), "v1_session")


def load_saved_model(path: str, signature: str) -> ModelHandle:
    """The first loader whose function TF can freeze; else the first that loads at all (variables kept).

    Why the earlier roads failed is kept in the handle's `notes`, so the report can say it.
    """
    tried: list[str] = []
    kept: ModelHandle | None = None
    for road in ("v2", "v1_session", "v2_signatures"):
        try:
            handle = _ROADS[road](path, signature)
        except MissingSignature:
            raise
        except Exception as err:  # noqa: BLE001 - revival raises AttributeError, KeyError, ValueError, ...
            tried.append(f"{road}: {_first_line(err)}")
            continue
        handle.notes[:0] = tried
        if handle.export is not None or handle.frozen:  # the converter reads the file itself, or it froze
            return handle
        tried.extend(f"{road}: {note}" for note in handle.notes[len(tried) :])
        kept = kept or handle
    if kept is not None:
        kept.notes[:] = tried
        return kept
    custom = explain(path)  # ops from a custom op library (TF-DF's SimpleML...): say whose, not three stacks
    if custom is not None:
        raise InputError(custom)
    raise InputError(
        f"Could not load the SavedModel {path} with any of TensorFlow's loaders ({'; '.join(tried)}). Check that "
        "the directory is a complete SavedModel (saved_model.pb and variables/) written by a TensorFlow "
        "version this one reads, or export it again with `model.export(path)` or `tf.saved_model.save`."
    )


def _v2(path: str, signature: str) -> ModelHandle:
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    return _from_signatures(loaded.signatures, path, signature, "v2", loaded)


def _v2_signatures(path: str, signature: str) -> ModelHandle:
    from tensorflow.python.saved_model import load_v1_in_v2

    loaded = load_v1_in_v2.load(path, _meta_graph_tags(path, signature))
    return _from_signatures(loaded.signatures, path, signature, "v2_signatures", loaded)


_ROADS = {
    "v2": _v2,
    "v2_signatures": _v2_signatures,
    "v1_session": lambda path, sig: _v1_session(path, sig, _meta_graph_tags(path, sig)),
}
