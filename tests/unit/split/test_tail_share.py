"""The tail's share of the model: weights count the constant inputs of convolutions and matmuls, so
an anchor table or an NMS does not look like model; a tail with most of the weights is too large for
`split=auto`, a small one (under 1,024 parameters) never is. GraphDef-level, no conversion."""

from __future__ import annotations

from typing import Any

import numpy as np


def _graph(width: int) -> Any:
    """x [1, 8] -> matmul 8x8 -> BitwiseAnd -> matmul 8 x width -> matmul width x width, plus a large
    constant (an anchor table) added after the bitwise op."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, 8], name="x")
        h = tf.matmul(x, tf.constant(rng.random((8, 8), dtype=np.float32)), name="stem")
        q = tf.cast(tf.bitwise.bitwise_and(tf.cast(h * 8.0, tf.int32), 6, name="bits"), tf.float32)
        q = q + tf.reduce_sum(tf.constant(rng.random((5000, 8), dtype=np.float32)), 0)  # not weights
        y = tf.matmul(q, tf.constant(rng.random((8, width), dtype=np.float32)))
        tf.matmul(y, tf.constant(rng.random((width, width), dtype=np.float32)), name="y")
    return graph.as_graph_def()


def test_tail_with_most_weights_is_too_large() -> None:
    from stages.split.graph_cut import compute_cut
    from stages.split.tail_share import tail_share

    graph_def = _graph(64)
    plan = compute_cut(graph_def, ["x"], ["y"], ["bits"])
    share = tail_share(graph_def, plan.tail)
    assert (share.weights, share.total_weights) == (8 * 64 + 64 * 64, 64 + 8 * 64 + 64 * 64)
    assert (share.compute, share.total_compute) == (2, 3)
    assert share.too_large and "of the model's weights" in share.text()


def test_small_tail_is_not_refused() -> None:
    from stages.split.graph_cut import compute_cut
    from stages.split.tail_share import tail_share

    graph_def = _graph(4)
    plan = compute_cut(graph_def, ["x"], ["y"], ["bits"])
    share = tail_share(graph_def, plan.tail)
    assert share.weight_share > 0.1 and share.weights < 1024 and not share.too_large
