"""`split=auto` cuts upstream of every selection op that feeds the unsupported region: the head hands
over per-anchor tensors, the tail does all sorting and selecting. GraphDef-level: no conversion runs here."""

from __future__ import annotations

from typing import Any

import pytest


def _graph(select: str) -> tuple[Any, str]:
    """x [B, 16] logits -> sigmoid -> `select` (argsort+gather, top_k+gather, boolean_mask, argmax) -> a
    BitwiseAnd (the op TFLite cannot run) -> output. Returns (GraphDef, the BitwiseAnd node's name)."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, 16], name="x")
        scores = tf.sigmoid(x, name="scores")
        boxes = tf.stack([x, x + 1.0, x + 2.0, x + 3.0], axis=-1, name="boxes")  # [1, 16, 4] per anchor
        if select == "argsort":
            order = tf.argsort(scores, axis=-1)[:, ::-1][:, :8]
            picked = tf.gather(boxes, order, batch_dims=1)
        elif select == "top_k":
            picked = tf.gather(boxes, tf.math.top_k(scores, 8).indices, batch_dims=1)
        elif select == "boolean_mask":
            picked = tf.boolean_mask(boxes, scores > 0.5)[None]
        else:  # argmax picks one row
            picked = tf.gather(boxes, tf.argmax(scores, -1), batch_dims=1)[:, None]
        bits = tf.bitwise.bitwise_and(tf.cast(picked * 100.0, tf.int32), 7, name="bits")
        tf.cast(bits, tf.float32, name="y")
    return graph.as_graph_def(), "bits"


@pytest.mark.parametrize("select", ["argsort", "top_k", "boolean_mask", "argmax"])
def test_cut_lands_before_the_selection(select: str) -> None:
    from stages.split.graph_cut import compute_cut

    graph_def, bad = _graph(select)
    plan = compute_cut(graph_def, ["x"], ["y"], [bad])
    ops = {n.name: n.op for n in graph_def.node}
    # Every cut tensor is per-anchor (the scores or the boxes), never a gathered, sorted or masked product.
    assert set(plan.cut_tensors) <= {"scores", "boxes"}, plan.cut_tensors
    assert "boxes" in plan.cut_tensors
    selecting = {"TopKV2", "GatherV2", "Where", "ArgMax", "Neg"}
    assert {n for n in plan.tail if ops[n] in selecting}, "the selection moved into the tail"
    assert not any(ops[n] in selecting for n in ops if n not in plan.tail and n not in ("x",))


def test_gather_by_constant_or_shape_indices_stays_in_the_head() -> None:
    """A gather whose indices come from constants or shapes selects nothing by data: the cut stays after it."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 16], name="x")
        fixed = tf.gather(x, [0, 2, 4], axis=1, name="fixed")
        by_shape = tf.gather(fixed, tf.range(tf.shape(fixed)[1]), axis=1, name="by_shape")
        bits = tf.bitwise.bitwise_and(tf.cast(by_shape, tf.int32), 7, name="bits")
        tf.cast(bits, tf.float32, name="y")
    from stages.split.graph_cut import compute_cut

    plan = compute_cut(graph.as_graph_def(), ["x"], ["y"], ["bits"])
    assert plan.cut_tensors == ["by_shape"]


def test_a_selection_behind_a_layer_with_weights_stays_in_the_head() -> None:
    """A DETR-style query pick (top-k of encoder scores, gather) followed by a decoder matmul is the model, not
    its post-processing: the cut lands after the matmul, right before the unsupported op's own inputs."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, 16, 4], name="x")
        scores = tf.reduce_max(x, axis=-1, name="scores")
        queries = tf.gather(x, tf.math.top_k(scores, 8).indices, batch_dims=1, name="queries")  # the pick
        decoded = tf.matmul(queries, tf.ones([4, 4]), name="decoder")  # a layer with weights
        boxes = tf.sigmoid(decoded, name="boxes")
        bits = tf.bitwise.bitwise_and(tf.cast(boxes * 100.0, tf.int32), 7, name="bits")
        tf.cast(bits, tf.float32, name="y")
    from stages.split.graph_cut import compute_cut

    graph_def = graph.as_graph_def()
    plan = compute_cut(graph_def, ["x"], ["y"], ["bits"])
    ops = {n.name: n.op for n in graph_def.node}
    assert not any(ops[n] in ("TopKV2", "GatherV2", "MatMul") for n in plan.tail), sorted(plan.tail)
    assert plan.cut_tensors == ["boxes"] or all(c.startswith(("boxes", "mul")) for c in plan.cut_tensors), plan
