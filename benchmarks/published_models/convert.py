"""Turn the weights found in a wheel into a file the pipeline reads (.h5, SavedModel directory, frozen .pb).

Each converter takes the unpacked wheel's root, the entry and the destination folder, and returns the model's
path and the `model=` override that loads it. ONNX models go through onnx2tf (a separate install: its path is
`--onnx2tf`, see prepare.py), run in a child process because it imports tf_keras (TF_USE_LEGACY_KERAS=1)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.published_models.catalog import Published


def copy_keras(root: Path, entry: Published, dest: Path, **_: Any) -> tuple[Path, str]:
    """A Keras file as shipped (a tf.keras 2 .hdf5 is renamed .h5: the pipeline reads the format by suffix)."""
    out = dest / f"{entry.name}.h5"
    shutil.copyfile(root / entry.member, out)
    return out, "keras"


def copy_saved_model(root: Path, entry: Published, dest: Path, **_: Any) -> tuple[Path, str]:
    out = dest / entry.name
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(root / entry.member, out)
    return out, "saved_model"


def mtcnn_export(root: Path, entry: Published, dest: Path, net: str, size: int, **_: Any) -> tuple[Path, str]:
    """The package's own network class with its own weights (joblib + lz4), exported as a SavedModel: the class
    is a subclassed Keras model, so a .keras file would need the package installed to load."""
    sys.path.insert(0, str(root))
    import joblib
    import keras

    module = __import__(f"mtcnn.network.{net}", fromlist=[net.upper()])
    model = getattr(module, net[0].upper() + net[1:].upper().replace("NET", "Net"))()
    model.build((None, size, size, 3))
    model.set_weights(joblib.load(root / entry.member))
    out = dest / entry.name
    shutil.rmtree(out, ignore_errors=True)
    spec = keras.InputSpec(shape=(None, size, size, 3), dtype="float32")
    model.export(str(out), format="tf_saved_model", input_signature=[spec])
    return out, "saved_model"


def musicnn_freeze(root: Path, entry: Published, dest: Path, **_: Any) -> tuple[Path, str]:
    """Freeze a TF1 training checkpoint by hand: its .meta holds the training graph (gradients, Adam) whose shape
    annotations TF 2.21 refuses, so keep only what `model/Sigmoid` needs, feed is_training=False as a constant
    and replace each variable with its checkpointed value."""
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2
    from tensorflow.core.protobuf import meta_graph_pb2

    ckpt = root / entry.member
    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString((ckpt / ".meta").read_bytes())
    reader = tf.compat.v1.train.NewCheckpointReader(str(ckpt) + "/")  # the prefix is "" in that folder
    graph = graph_pb2.GraphDef()
    for node in meta.graph_def.node:
        new = graph.node.add()
        new.CopyFrom(node)
        new.attr.pop("_output_shapes", None)
        new.ClearField("device")
        if node.name == "model/Placeholder_2":  # is_training
            new.Clear()
            new.name, new.op = node.name, "Const"
            new.attr["dtype"].type = tf.bool.as_datatype_enum
            new.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(False))
        elif node.op == "VariableV2":
            value = reader.get_tensor(node.name)
            new.Clear()
            new.name, new.op = node.name, "Const"
            new.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
            new.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    frozen = tf.compat.v1.graph_util.extract_sub_graph(graph, ["model/Sigmoid"])
    out = dest / f"{entry.name}.pb"
    out.write_bytes(frozen.SerializeToString())
    return out, "frozen_graph"


def onnx_to_saved_model(
    root: Path,
    entry: Published,
    dest: Path,
    shapes: dict[str, list[int]],
    onnx2tf: Path,
    keep: tuple[str, ...] = (),
    **_: Any,
) -> tuple[Path, str]:
    """Fix the input shapes (onnxsim folds the dynamic dimensions onnx2tf cannot handle), rewrite what onnx2tf
    1.29 mis-converts (see `_ONNX_FIXES`), give every node a name TensorFlow accepts as a scope, then onnx2tf to
    a SavedModel (NHWC: onnx2tf transposes image inputs; `keep` names inputs whose layout it must keep, `-kat`,
    such as an LSTM state [2, batch, 128])."""
    work = dest / f"{entry.name}.onnx2tf"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    fixed = work / "fixed.onnx"
    env = {**os.environ, "PYTHONPATH": str(onnx2tf), "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    _run([sys.executable, "-c", _ONNX_FIXES, str(root / entry.member), str(fixed), json.dumps(shapes)], work, env)
    _write_onnx2tf_sample_images(work)
    out = dest / entry.name
    shutil.rmtree(out, ignore_errors=True)
    flags = ["-kat", *keep] if keep else []
    _run([sys.executable, "-m", "onnx2tf.onnx2tf", "-i", str(fixed), "-o", str(out), "-osd", *flags], work, env)
    for extra in out.glob("*.tflite"):  # onnx2tf's own conversions: not what is measured
        extra.unlink()
    return out, "saved_model"


# Run with onnx2tf's packages on the path (argv: source, destination, input shapes as JSON). After onnxsim, three
# rewrites that change no result (onnxruntime gives the same outputs) but avoid onnx2tf 1.29.24 failures:
# - `Constant` nodes become initializers (onnx2tf converts an LSTM whose weights come from Constant nodes into
#   one that disagrees with onnxruntime: Silero VAD's, max error 1.6 in its state, 0.17 against 0.02 in its
#   speech probability);
# - an LSTM without initial states gets explicit zero ones, as ONNX defines them (onnx2tf indexes the missing
#   `initial_h` of a bidirectional LSTM: ddddocr's recogniser, "'NoneType' object is not subscriptable");
# - a Slice with constant bounds keeps only the axes it cuts, its ends clamped to the dims (onnx2tf mis-slices
#   an `INT64_MAX` end on a transposed axis: Silero's STFT, a [1, 0, 258] tensor and a failed LSTM after it).
_ONNX_FIXES = """
import json, re, sys
import numpy as np, onnx, onnxsim
from onnx import numpy_helper, shape_inference
m, ok = onnxsim.simplify(onnx.load(sys.argv[1]), overwrite_input_shapes=json.loads(sys.argv[3]))
assert ok
constants = [n for n in m.graph.node if n.op_type == 'Constant' and [a.name for a in n.attribute] == ['value']]
for n in constants:
    m.graph.initializer.append(onnx.helper.get_attribute_value(n.attribute[0]))
    m.graph.initializer[-1].name = n.output[0]
    m.graph.node.remove(n)
init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
graph = shape_inference.infer_shapes(m).graph
dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in [*graph.value_info, *graph.input]}
def const(name, value):
    m.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    return name
for i, n in enumerate(m.graph.node):
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
    if n.op_type == 'LSTM' and (len(n.input) < 6 or not n.input[5]):
        directions = 2 if attrs.get('direction') == b'bidirectional' else 1
        batch = dims.get(n.input[0], [1, 1])[0 if attrs.get('layout') else 1] or 1
        n.input.extend([''] * (7 - len(n.input)))
        for k in (5, 6):
            n.input[k] = const(f'lstm{i}_state{k}', np.zeros((directions, batch, attrs['hidden_size']), 'float32'))
    bounded = len(n.input) >= 4 and all(x in init for x in n.input[1:])
    if n.op_type == 'Slice' and bounded and all(dims.get(n.input[0], [0])):
        shape = dims[n.input[0]]
        starts, ends, axes = (init[x].astype(int) for x in n.input[1:4])
        steps = init[n.input[4]].astype(int) if len(n.input) > 4 else np.ones_like(starts)
        if np.any(steps <= 0):
            continue
        cuts = []
        for s, e, a, st in zip(starts, ends, axes, steps):
            size = shape[a]
            s, e = (min(max(v + size if v < 0 else v, 0), size) for v in (s, e))
            if not (st == 1 and s == 0 and e == size):
                cuts.append((s, e, a, st))
        if cuts:
            parts = [np.array([c[j] for c in cuts], 'int64') for j in range(4)]
            del n.input[1:]
            n.input.extend(const(f'slice{i}_{j}', part) for j, part in enumerate(parts))
for i, n in enumerate(m.graph.node):
    n.name = re.sub(r'[^A-Za-z0-9_./-]', '_', n.name) or f'node_{i}'
onnx.save(m, sys.argv[2])
"""


def _write_onnx2tf_sample_images(work: Path) -> None:
    """onnx2tf checks image models on 20 sample images it downloads from GitHub unless the file is in its working
    directory: give it crops of scikit-learn's bundled photos instead (same name, shape and [0, 1] range)."""
    import numpy as np

    from benchmarks.published_models.data import photo_crops

    name = "calibration_image_sample_data_20x128x128x3_float32.npy"
    np.save(work / name, photo_crops(20, 128, seed=1).astype("float32") / 255.0)


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)[-3000:]
        raise RuntimeError(f"{cmd[2] if len(cmd) > 2 else cmd[0]} failed ({done.returncode}):\n{tail}")
