"""A tiny stand-in for KerasHub's `RetinaNetObjectDetector.decode_predictions`: its serving function
scores anchors with a sigmoid, ranks them with `argsort` (KerasHub's `non_max_suppression/argsort/Neg` + TopKV2),
gathers boxes AND class probabilities in score order (float tensors downstream of the top-k, as KerasHub's
`Reshape_5`), then runs an NMS with `tf.bitwise` ops inside a `tf.while_loop` (not a TFLite builtin) and takes the
labels after the NMS. A cut placed after the argsort would hand the tail boxes already in score order; the cut
must land before it, at per-anchor tensors.

The model itself is `tests.helpers.keras_detector.build_model` (two pyramid levels, 240 anchors, 3 classes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers.keras_detector import DETECTOR_TAIL, IMAGE, _anchors, _bitwise_nms, build_model

ANCHORS = 240
TOP_K = 64
MAX_DETECTIONS = 10


def serving_module(model: Any) -> Any:
    import tensorflow as tf

    anchors = tf.constant(_anchors())
    iou, threshold = float(DETECTOR_TAIL["iou_threshold"]), float(DETECTOR_TAIL["score_threshold"])

    class Detector(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None, IMAGE, IMAGE, 3], tf.float32, name="images")])
        def serve(self, images: Any) -> dict[str, Any]:
            raw = self.model(images, training=False)
            deltas, logits = raw["bbox_regression"], raw["cls_logits"]
            a_cy, a_cx = (anchors[:, 0] + anchors[:, 2]) / 2, (anchors[:, 1] + anchors[:, 3]) / 2
            a_h, a_w = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
            cx = deltas[..., 0] * a_w + a_cx
            cy = deltas[..., 1] * a_h + a_cy
            w = tf.exp(deltas[..., 2]) * a_w
            h = tf.exp(deltas[..., 3]) * a_h
            boxes = tf.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)
            probs = tf.sigmoid(logits)
            best = tf.reduce_max(probs, -1)
            order = tf.argsort(best, axis=-1)[:, ::-1][:, :TOP_K]  # ascending argsort = Neg + TopKV2, reversed
            top_boxes = tf.reshape(tf.gather(boxes, order, batch_dims=1), [-1, TOP_K, 4])
            top_probs = tf.reshape(tf.gather(probs, order, batch_dims=1), [-1, TOP_K, 3])
            top_scores = tf.reduce_max(top_probs, -1)
            keep = _bitwise_nms(tf, top_boxes, top_scores, iou, threshold)
            ranked = tf.where(keep > 0, top_scores, -1.0)
            final_scores, pick = tf.math.top_k(ranked, k=MAX_DETECTIONS)
            valid = final_scores > -1.0
            final_boxes = tf.where(valid[..., None], tf.gather(top_boxes, pick, batch_dims=1), -1.0)
            labels = tf.argmax(tf.gather(top_probs, pick, batch_dims=1), -1, output_type=tf.int32)
            return {
                "boxes": final_boxes,
                "confidence": tf.where(valid, final_scores, -1.0),
                "labels": tf.where(valid, labels, -1),
                "num_detections": tf.reduce_sum(tf.cast(valid, tf.int32), axis=1),
            }

    return Detector()


def save_sorted_detector(path: Path, seed: int = 0) -> Path:
    """Build and save the stand-in with its post-processing as `serving_default`."""
    import tensorflow as tf

    module = serving_module(build_model(seed))
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path
