"""The split stage on tiny TF1 frozen graphs built on the fly with v1 control flow (map_fn -> TensorArrayV3).

Each test runs the real converter: auto finds the unsupported ops, the cut head converts with builtins only,
and head + tail reproduce the full graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stages.result import InputError, StageResult
from tests.helpers.stage_chain import run_stage


def _v1_graph(path: Path, body: Any) -> None:
    """Write a frozen graph built by `body(tf, x)` (returns {output name: tensor}) from input `x` [1, 6]."""
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_util

    saved = control_flow_util.ENABLE_CONTROL_FLOW_V2
    control_flow_util.ENABLE_CONTROL_FLOW_V2 = False
    graph = tf.Graph()
    try:
        with graph.as_default():
            x = tf.compat.v1.placeholder(tf.float32, [1, 6], name="x")
            for name, tensor in body(tf, x).items():
                tf.identity(tensor, name=name)
    finally:
        control_flow_util.ENABLE_CONTROL_FLOW_V2 = saved
    path.write_bytes(graph.as_graph_def().SerializeToString())


def _weights(tf: Any, rows: int, cols: int, seed: int) -> Any:
    return tf.constant(np.random.default_rng(seed).standard_normal((rows, cols)).astype(np.float32))


def _load(tmp_path: Path, graph: Path, outputs: list[str]) -> StageResult:
    from stages.load.stage import load

    cfg = {"model": {"format": "frozen_graph", "path": str(graph), "inputs": ["x"], "outputs": outputs}}
    return run_stage(load, tmp_path, "load", cfg)


def _split(tmp_path: Path, load: StageResult, mode: str = "auto", **extra: Any) -> StageResult:
    from stages.split.stage import split

    cfg = {"split": {"mode": mode, "outputs": None, "postprocess": None, **extra}}
    return run_stage(split, tmp_path, f"split_{mode}", cfg, load)


def _check_head_and_tail(load: StageResult, split: StageResult) -> None:
    """The head converts with builtins only, and TFLite head + TF tail equal the full graph."""
    from stages.load.model.access import full_model_outputs, head_handle
    from stages.split.graph_cut import try_builtins
    from stages.split.stage import run_tail

    head = head_handle(load, split)
    assert try_builtins(head) is None
    feeds = {"x": np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)}
    final = run_tail(split, head.run(feeds), feeds, load)
    expected, _ = full_model_outputs(load, split, feeds)
    for name, value in expected.items():
        np.testing.assert_allclose(final[name], value, rtol=1e-5, atol=1e-5)


def test_unsupported_region_in_the_middle_with_ops_after_it(tmp_path: Path) -> None:
    def body(tf: Any, x: Any) -> dict[str, Any]:
        hidden = tf.nn.relu(tf.matmul(x, _weights(tf, 6, 4, 0)), name="hidden")
        looped = tf.map_fn(lambda row: row * 2.0 + 1.0, hidden)  # TensorArrayScatterV3 + while loop
        after = tf.matmul(tf.tanh(looped), _weights(tf, 4, 3, 1))  # supported ops after the region
        return {"out": after, "side": tf.sigmoid(hidden)}

    graph = tmp_path / "middle.pb"
    _v1_graph(graph, body)
    load = _load(tmp_path, graph, ["out", "side"])
    result = _split(tmp_path, load)
    assert "TensorArrayScatterV3" in result.meta["unsupported_ops"]
    assert result.meta["cut_tensors"] == ["hidden"]
    assert result.meta["head_final_outputs"] == ["side"]  # computed by the head, passed through
    assert "out" not in result.meta["head_outputs"]
    _check_head_and_tail(load, result)


def test_two_unsupported_regions(tmp_path: Path) -> None:
    def body(tf: Any, x: Any) -> dict[str, Any]:
        a = tf.nn.relu(tf.matmul(x, _weights(tf, 6, 4, 0)), name="a")
        b = tf.sigmoid(tf.matmul(x, _weights(tf, 6, 5, 1)), name="b")
        first = tf.map_fn(lambda row: row * 3.0, a)
        second = tf.map_fn(lambda row: row - 1.0, b)
        return {"first": first + 1.0, "second": tf.reduce_sum(second, axis=1)}

    graph = tmp_path / "two.pb"
    _v1_graph(graph, body)
    load = _load(tmp_path, graph, ["first", "second"])
    result = _split(tmp_path, load)
    assert sorted(result.meta["cut_tensors"]) == ["a", "b"]
    regions = {n.split("/")[0] for n in result.meta["unsupported_nodes"]}
    assert regions == {"map", "map_1"}
    _check_head_and_tail(load, result)


def test_nothing_to_cut_is_a_no_op(tmp_path: Path) -> None:
    def body(tf: Any, x: Any) -> dict[str, Any]:
        return {"y": tf.nn.softmax(tf.matmul(x, _weights(tf, 6, 3, 0)))}

    graph = tmp_path / "plain.pb"
    _v1_graph(graph, body)
    load = _load(tmp_path, graph, ["y"])
    result = _split(tmp_path, load)
    assert result.meta["cut_tensors"] == [] and result.meta["unsupported_ops"] == []
    assert not result.meta["head_outputs"]
    from stages.split.stage import run_tail

    marker = {"y": np.ones((1, 3))}
    assert run_tail(result, marker, {}) is marker


def test_split_none_names_the_op_and_suggests_auto(tmp_path: Path) -> None:
    def body(tf: Any, x: Any) -> dict[str, Any]:
        return {"y": tf.map_fn(lambda row: row + 1.0, x)}

    graph = tmp_path / "loop.pb"
    _v1_graph(graph, body)
    load = _load(tmp_path, graph, ["y"])
    with pytest.raises(InputError, match=r"TensorArrayScatterV3.*split=auto"):
        _split(tmp_path, load, mode="none")
    # Every path to the output runs through the loop: auto cannot give the head any output.
    with pytest.raises(InputError, match="no outputs"):
        _split(tmp_path, load)


def test_manual_cut_with_numpy_postprocess(tmp_path: Path) -> None:
    def body(tf: Any, x: Any) -> dict[str, Any]:
        logits = tf.matmul(x, _weights(tf, 6, 4, 0), name="logits")
        return {"probs": tf.nn.softmax(logits)}

    graph = tmp_path / "softmax.pb"
    _v1_graph(graph, body)
    load = _load(tmp_path, graph, ["probs"])
    postprocess = {"_target_": "tests.unit.split.test_split_stage.numpy_softmax", "logits": "logits"}
    result = _split(tmp_path, load, mode="manual", outputs=["logits"], postprocess=postprocess)
    assert result.meta["cut_tensors"] == ["logits"] and result.meta["tail"] == "numpy"
    _check_head_and_tail(load, result)


def test_manual_cut_on_keras_model_by_layer_name(tmp_path: Path, tiny_keras: Path) -> None:
    from stages.load.model.access import full_model_outputs, head_handle
    from stages.load.stage import load
    from stages.split.stage import run_tail

    out = tmp_path / "load"
    out.mkdir()
    loaded = load({"model": {"format": "keras", "path": str(tiny_keras), "safe_mode": True}}, str(out))
    loaded.root = str(out)
    auto = _split(tmp_path, loaded)  # the converter runs all of it: nothing cut
    assert auto.meta["cut_tensors"] == []
    result = _split(tmp_path, loaded, mode="manual", outputs=["dense"])
    assert len(result.meta["cut_tensors"]) == 1 and "dense" in result.meta["cut_tensors"][0]
    feeds = {"image": np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)}
    head = head_handle(loaded, result)
    assert [i.name for i in head.inputs] == ["image"]
    final = run_tail(result, head.run(feeds), feeds, loaded)
    expected, _ = full_model_outputs(loaded, result, feeds)
    np.testing.assert_allclose(final["probs"], expected["probs"], atol=1e-6)


def numpy_softmax(tensors: dict[str, np.ndarray], logits: str) -> dict[str, np.ndarray]:
    """A user tail: softmax of the cut logits."""
    z = tensors[logits] - tensors[logits].max(axis=-1, keepdims=True)
    return {"probs": np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)}
