"""A tiny Keras 3 anchor-based detector saved as a SavedModel whose serving function decodes boxes and runs an
NMS with `tf.bitwise` ops inside a `tf.while_loop` (as KerasHub's `decode_predictions` does): TFLite builtins
cannot run it, so `split=auto` must cut before it. The anchors and decoding follow KerasHub's RetinaNet
(center-xywh deltas with variances) so the bundled numpy tail can reproduce the detections exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

IMAGE = 32
CLASSES = 3
DETECTOR_TAIL: dict[str, Any] = {
    "_target_": "stages.postprocess.detector.detect",
    "boxes": "bbox_regression",
    "classification": "cls_logits",
    "encoding": "center_size",
    "variances": [1.0, 1.0, 1.0, 1.0],
    "anchors": {
        "image_size": [IMAGE, IMAGE],
        "min_level": 2,
        "max_level": 3,
        "num_scales": 1,
        "aspect_ratios": [0.5, 1.0, 2.0],
        "anchor_size": 2.0,
        "box_format": "yxyx",
    },
    "box_format": "yxyx",
    "score_activation": "sigmoid",
    "center_format": "center_xywh",
    "class_specific": False,
    "pre_nms_top_k": 64,
    "score_threshold": 0.3,
    "iou_threshold": 0.5,
    "max_detections": 10,
    "outputs": {"boxes": "boxes", "scores": "confidence", "labels": "labels", "num_detections": "num_detections"},
}


def _anchors() -> np.ndarray:
    from stages.postprocess.anchors import pyramid_anchors

    return pyramid_anchors(**DETECTOR_TAIL["anchors"])


def build_model(seed: int = 0) -> Any:
    """Two pyramid levels (strides 4 and 8), 3 anchors a cell: raw deltas [B, 240, 4], logits [B, 240, 3]."""
    import keras

    keras.utils.set_random_seed(seed)
    image = keras.Input((IMAGE, IMAGE, 3), name="images")
    c2 = keras.layers.Conv2D(8, 3, strides=4, padding="same", activation="relu")(image)
    c3 = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(c2)
    boxes, logits = [], []
    for level in (c2, c3):
        b = keras.layers.Conv2D(3 * 4, 3, padding="same")(level)
        c = keras.layers.Conv2D(3 * CLASSES, 3, padding="same", bias_initializer=keras.initializers.Constant(-1.0))(
            level
        )
        boxes.append(keras.layers.Reshape((-1, 4))(b))
        logits.append(keras.layers.Reshape((-1, CLASSES))(c))
    box_out = keras.layers.Concatenate(axis=1, name="bbox_regression")(boxes)
    cls_out = keras.layers.Concatenate(axis=1, name="cls_logits")(logits)
    return keras.Model(image, {"bbox_regression": box_out, "cls_logits": cls_out})


def _bitwise_nms(tf: Any, boxes: Any, scores: Any, iou_threshold: float, score_threshold: float) -> Any:
    """Greedy NMS over score-sorted candidates [B, K]: a keep mask updated with tf.bitwise in a while loop."""
    y1, x1, y2, x2 = tf.unstack(boxes, axis=-1)
    area = tf.maximum(y2 - y1, 0.0) * tf.maximum(x2 - x1, 0.0)
    iy = tf.maximum(tf.minimum(y2[:, :, None], y2[:, None, :]) - tf.maximum(y1[:, :, None], y1[:, None, :]), 0.0)
    ix = tf.maximum(tf.minimum(x2[:, :, None], x2[:, None, :]) - tf.maximum(x1[:, :, None], x1[:, None, :]), 0.0)
    inter = iy * ix
    union = area[:, :, None] + area[:, None, :] - inter
    iou = tf.where(union > 0.0, inter / tf.maximum(union, 1e-12), 0.0)
    count = tf.shape(scores)[1]
    keep = tf.cast(scores > score_threshold, tf.int32)
    later = tf.cast(tf.range(count)[None, :] > tf.range(count)[:, None], tf.int32)  # [K, K]: j after i

    def body(i: Any, keep: Any) -> tuple[Any, Any]:
        kept_i = keep[:, i][:, None]  # [B, 1]
        overlaps = tf.cast(iou[:, i, :] > iou_threshold, tf.int32) * later[i][None, :]
        suppress = tf.bitwise.bitwise_and(overlaps, kept_i)
        return i + 1, tf.bitwise.bitwise_and(keep, tf.bitwise.invert(suppress))

    _, keep = tf.while_loop(lambda i, _: i < count, body, [tf.constant(0), keep])
    return keep


def serving_module(model: Any) -> Any:
    """The detector plus its post-processing as one tf.function, the way users export KerasHub detectors."""
    import tensorflow as tf

    cfg = DETECTOR_TAIL
    anchors = tf.constant(_anchors())  # [N, 4] yxyx, pixels

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
            cx = deltas[..., 0] * a_w + a_cx  # center_xywh deltas, variances 1
            cy = deltas[..., 1] * a_h + a_cy
            w = tf.exp(deltas[..., 2]) * a_w
            h = tf.exp(deltas[..., 3]) * a_h
            boxes = tf.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)
            probs = tf.sigmoid(logits)
            best, labels = tf.reduce_max(probs, -1), tf.argmax(probs, -1, output_type=tf.int32)
            top_scores, top = tf.math.top_k(best, k=int(cfg["pre_nms_top_k"]))
            top_boxes = tf.gather(boxes, top, batch_dims=1)
            keep = _bitwise_nms(tf, top_boxes, top_scores, float(cfg["iou_threshold"]), float(cfg["score_threshold"]))
            ranked = tf.where(keep > 0, top_scores, -1.0)
            final_scores, pick = tf.math.top_k(ranked, k=int(cfg["max_detections"]))
            valid = final_scores > -1.0
            final_boxes = tf.where(valid[..., None], tf.gather(top_boxes, pick, batch_dims=1), -1.0)
            final_labels = tf.where(valid, tf.gather(tf.gather(labels, top, batch_dims=1), pick, batch_dims=1), -1)
            return {
                "boxes": final_boxes,
                "confidence": tf.where(valid, final_scores, -1.0),
                "labels": final_labels,
                "num_detections": tf.reduce_sum(tf.cast(valid, tf.int32), axis=1),
            }

    return Detector()


def save_detector(path: Path, seed: int = 0) -> Path:
    """Build the detector and save it with its post-processing as the `serving_default` signature."""
    import tensorflow as tf

    module = serving_module(build_model(seed))
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def detector_dataset(path: Path, count: int = 24, seed: int = 0) -> Path:
    """Seeded images with bright rectangles (so scores spread), saved as an .npz for `dataset=npz`."""
    rng = np.random.default_rng(seed)
    images = rng.random((count, IMAGE, IMAGE, 3), dtype=np.float32) * 0.2
    for image in images:
        y, x = rng.integers(0, IMAGE - 8, 2)
        image[y : y + 8, x : x + 8] += rng.random(3, dtype=np.float32)
    np.savez(path, x=images)
    return path


def hydra_value(value: Any) -> str:
    """A config value as a Hydra override value (`'+split.postprocess=' + hydra_value(DETECTOR_TAIL)`)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {hydra_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, str):
        return f"'{value}'"
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)
