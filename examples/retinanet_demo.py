"""A small RetinaNet-shaped TF1 frozen graph whose post-processing TFLite builtins cannot run.

The graph mirrors keras-retinanet's inference model: a conv backbone with two pyramid levels, regression and
classification heads (`regression/concat`, `classification/concat`), anchor decoding and clipping
(`clipped_boxes/stack`), then `filtered_detections`: a `tf.map_fn` over the batch with per-class NMS and
padding to a fixed count, built with v1 control flow so the graph holds `TensorArrayScatterV3`, exactly the
op that stops TFLite in the seed report. Weights are seeded random constants: the point is the graph's
structure, not its detections.

Run directly to write it somewhere: `python -m examples.retinanet_demo out.pb`.
"""

from __future__ import annotations

import sys
from typing import Any

INPUT = "input_1"
OUTPUTS = ["boxes", "scores", "labels"]
STRIDES = (8, 16)
SIZES = (16, 32)


def _filter_detections(
    tf: Any,
    boxes: Any,
    classification: Any,
    num_classes: int,
    max_detections: int,
    score_threshold: float,
    nms_threshold: float,
) -> list[Any]:
    """keras-retinanet's filter_detections for one image (class-specific NMS, top-k, pad with -1)."""
    all_indices = []
    for c in range(num_classes):
        scores = classification[:, c]
        indices = tf.where(tf.greater(scores, score_threshold))
        kept = tf.image.non_max_suppression(
            tf.gather_nd(boxes, indices),
            tf.gather(scores, indices)[:, 0],
            max_output_size=max_detections,
            iou_threshold=nms_threshold,
        )
        indices = tf.gather(indices, kept)
        labels = c * tf.ones_like(indices[:, 0])
        all_indices.append(tf.stack([indices[:, 0], labels], axis=1))
    indices = tf.concat(all_indices, axis=0)
    scores = tf.gather_nd(classification, indices)
    labels = indices[:, 1]
    scores, top = tf.nn.top_k(scores, k=tf.minimum(max_detections, tf.shape(scores)[0]))
    boxes = tf.gather(boxes, tf.gather(indices[:, 0], top))
    labels = tf.gather(labels, top)
    pad = tf.maximum(0, max_detections - tf.shape(scores)[0])
    boxes = tf.pad(boxes, [[0, pad], [0, 0]], constant_values=-1)
    scores = tf.pad(scores, [[0, pad]], constant_values=-1)
    labels = tf.cast(tf.pad(labels, [[0, pad]], constant_values=-1), tf.int32)
    boxes.set_shape([max_detections, 4])
    scores.set_shape([max_detections])
    labels.set_shape([max_detections])
    return [boxes, scores, labels]


def build(
    path: str,
    seed: int = 0,
    image_size: int = 64,
    num_classes: int = 4,
    max_detections: int = 20,
    score_threshold: float = 0.05,
    nms_threshold: float = 0.5,
) -> None:
    """Write the frozen graph (binary GraphDef) to `path`; deterministic for a given seed."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_util

    from stages.postprocess.boxes import anchors_for_shape

    rng = np.random.default_rng(seed)

    def weight(*shape: int, scale: float = 1.0) -> Any:
        fan_in = int(np.prod(shape[:-1]))
        return tf.constant((rng.standard_normal(shape) * scale / np.sqrt(fan_in)).astype(np.float32))

    def conv(x: Any, out: int, stride: int = 1, relu: bool = True, scale: float = 1.0) -> Any:
        y = tf.nn.conv2d(x, weight(3, 3, int(x.shape[-1]), out, scale=scale), stride, "SAME")
        y = tf.nn.bias_add(y, tf.constant(rng.uniform(-0.1, 0.1, out).astype(np.float32)))
        return tf.nn.relu(y) if relu else y

    anchors_per_cell = 9
    anchors = anchors_for_shape((image_size, image_size), STRIDES, SIZES)
    graph = tf.Graph()
    saved_flag = control_flow_util.ENABLE_CONTROL_FLOW_V2
    control_flow_util.ENABLE_CONTROL_FLOW_V2 = False  # v1 loops: map_fn then emits TensorArrayScatterV3
    try:
        with graph.as_default():
            image = tf.compat.v1.placeholder(tf.float32, [1, image_size, image_size, 3], name=INPUT)
            x = conv(image, 16, 2)
            c3 = conv(conv(x, 32, 2), 32)  # stride 4... then 8 below
            p3 = conv(c3, 32, 2)
            p4 = conv(p3, 32, 2)
            regressions, classifications = [], []
            with tf.name_scope("heads"):
                for level in (p3, p4):
                    reg = conv(conv(level, 32), anchors_per_cell * 4, relu=False, scale=0.5)
                    cls = conv(conv(level, 32), anchors_per_cell * num_classes, relu=False, scale=2.0)
                    regressions.append(tf.reshape(reg, [1, -1, 4]))
                    classifications.append(tf.reshape(cls, [1, -1, num_classes]))
            regression = tf.concat(regressions, axis=1, name="regression/concat")
            classification = tf.sigmoid(tf.concat(classifications, axis=1), name="classification/concat")
            with tf.name_scope("decode_boxes"):
                a = tf.constant(anchors[None])
                width, height = a[:, :, 2] - a[:, :, 0], a[:, :, 3] - a[:, :, 1]
                d = regression * 0.2
                decoded = [
                    a[:, :, 0] + d[:, :, 0] * width,
                    a[:, :, 1] + d[:, :, 1] * height,
                    a[:, :, 2] + d[:, :, 2] * width,
                    a[:, :, 3] + d[:, :, 3] * height,
                ]
            limits = [image_size, image_size, image_size, image_size]
            clipped = [tf.clip_by_value(t, 0.0, float(lim)) for t, lim in zip(decoded, limits, strict=True)]
            boxes = tf.stack(clipped, axis=2, name="clipped_boxes/stack")
            with tf.name_scope("filtered_detections"):
                detections = tf.map_fn(
                    lambda args: _filter_detections(
                        tf, args[0], args[1], num_classes, max_detections, score_threshold, nms_threshold
                    ),
                    elems=[boxes, classification],
                    dtype=[tf.float32, tf.float32, tf.int32],
                    parallel_iterations=32,
                )
            for name, tensor in zip(OUTPUTS, detections, strict=True):
                tf.identity(tensor, name=name)
    finally:
        control_flow_util.ENABLE_CONTROL_FLOW_V2 = saved_flag
    with open(path, "wb") as fh:
        fh.write(graph.as_graph_def().SerializeToString())


if __name__ == "__main__":
    build(sys.argv[1] if len(sys.argv) > 1 else "retinanet_demo.pb")
