"""The flat graph the split stage cuts keeps the functions its body calls: a Keras 3 convolution runs through a
jit-compiled `_conv_xla` function (grouped convolutions; D-FINE's HGNetV2 backbone), and a head built from a
graph without it failed at run time with "Failed to find function ... in function library"."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def test_a_head_cut_from_a_model_with_nested_functions_runs(tmp_path: Path) -> None:
    import tensorflow as tf

    from stages.load.model.access import head_from
    from stages.load.model.saved_model import load_saved_model
    from stages.split.converter_verdict import flat_graph

    @tf.function(jit_compile=True)
    def scaled(x: tf.Tensor) -> tf.Tensor:
        return tf.nn.relu(x) * 2.0

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.reduce_sum(scaled(x) + 1.0, axis=-1)}

    module = Model()
    tf.saved_model.save(module, str(tmp_path / "m"), signatures={"serving_default": module.serve})
    handle = load_saved_model(str(tmp_path / "m"), "serving_default")
    graph_def, inputs, _ = flat_graph(handle.fn)
    called = {n.attr["f"].func.name for n in graph_def.node if "f" in n.attr and n.attr["f"].func.name}
    assert called, "the case must keep a nested function call in the flat graph"
    assert called <= {f.signature.name for f in graph_def.library.function}
    cut = next(n.name for n in graph_def.node if n.op == "AddV2")  # the head stops before the reduce
    head = head_from(graph_def, {"x": inputs[0]}, [f"{cut}:0"], {inputs[0]: [1, 4]})
    x = np.array([[-1.0, 0.5, 2.0, -3.0]], np.float32)
    np.testing.assert_allclose(next(iter(head.run({"x": x}).values())), np.maximum(x, 0) * 2 + 1)
