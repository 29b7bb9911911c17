"""The bundled numpy tails as TensorFlow ops that convert to TFLite builtins, for `split.deploy=in_graph`.

A detector cut before its post-processing ships as a .tflite plus host code; users ask for one file. For the tails
this project knows (`stages.postprocess.detector.detect`, keras-retinanet's `stages.postprocess.nms.filter_detections`)
this module builds the same computation from ops TFLite runs natively: box decoding with the anchors as constants
(MUL, ADD, EXP, LOGISTIC/SOFTMAX, PACK/UNPACK), one NON_MAX_SUPPRESSION_V5 per image and class (unrolled: the batch is
fixed), and a TOPK_V2 over the kept detections, padded with -1 as the numpy tail pads. Both NMS use the same rules
(IoU strictly above the threshold suppresses, scores strictly above the score threshold are candidates, boxes with
no area overlap nothing), so an exact head gives the numpy tail's detections, up to genuine score ties.

Why not TFLite_Detection_PostProcess: it applies the score threshold and per-class limits its own way (one
`max_classes_per_detection`, a fixed candidate cap) and decodes only center-size boxes with one scale per
coordinate; NON_MAX_SUPPRESSION_V5 reproduces the tails' semantics exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from stages.postprocess.anchors import convert_boxes
from stages.postprocess.detector import anchors_from_config
from stages.result import InputError

DETECT = "stages.postprocess.detector.detect"
FILTER_DETECTIONS = "stages.postprocess.nms.filter_detections"
SUPPORTED = (DETECT, FILTER_DETECTIONS)

# `filter_detections` keyword arguments, as `detect` settings (the same NMS, boxes already decoded).
_FILTER_DEFAULTS = {"class_specific_filter": True, "score_threshold": 0.05, "max_detections": 300, "nms_threshold": 0.5}


def detect_settings(target: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The tail's settings as `detect` keyword arguments; InputError for a tail this module cannot build."""
    if target == DETECT:
        return dict(kwargs)
    if target == FILTER_DETECTIONS:
        cfg = {**_FILTER_DEFAULTS, **dict(kwargs)}
        names = list(cfg.get("outputs") or ("boxes", "scores", "labels"))
        return {
            "boxes": cfg["boxes"],
            "classification": cfg["classification"],
            "encoding": "none",
            "score_activation": "none",
            "class_specific": bool(cfg["class_specific_filter"]),
            "score_threshold": float(cfg["score_threshold"]),
            # no NMS: IoU is never above 1, so nothing is suppressed
            "iou_threshold": float(cfg["nms_threshold"]) if cfg.get("apply_nms", True) else 1.0,
            "max_detections": int(cfg["max_detections"]),
            "outputs": {"boxes": names[0], "scores": names[1], "labels": names[2]},
        }
    raise InputError(
        f"`split.deploy=in_graph` builds the post-processing into the .tflite for the bundled tails {list(SUPPORTED)}"
        f", and the configured tail is {target}, which has no in-graph form. Use one of those tails (docs/split.md, "
        f"the `detect` table), or `split.deploy=host` to run {target} on the host."
    )


def semantics_note(settings: Mapping[str, Any]) -> str:
    """What the in-graph post-processing does, for the report's notes (the gates judge whether it matches)."""
    mode = "per-class" if settings.get("class_specific", True) else "class-agnostic"
    return (
        f"split.deploy=in_graph: decoding ({settings.get('encoding', 'center_size')}) and a {mode} NMS "
        "(NON_MAX_SUPPRESSION_V5, IoU > threshold suppresses, scores > threshold kept) run inside the .tflite; "
        "no host code. Its latency includes the NMS."
    )


def _to_xyxy(tf: Any, boxes: Any, source: str) -> Any:
    """`convert_boxes(boxes, source, "xyxy")` as TF ops (the same arithmetic, so the same float32 results)."""
    if source == "xyxy":
        return boxes
    a, b, c, d = tf.unstack(boxes, axis=-1)
    if source == "yxyx":
        return tf.stack([b, a, d, c], axis=-1)
    if source == "xywh":
        return tf.stack([a, b, a + c, b + d], axis=-1)
    if source == "center_xywh":
        return tf.stack([a - c / 2, b - d / 2, a + c / 2, b + d / 2], axis=-1)
    if source == "center_yxhw":
        return tf.stack([b - d / 2, a - c / 2, b + d / 2, a + c / 2], axis=-1)
    raise ValueError(f"unknown box format '{source}' (xyxy, yxyx, xywh, center_xywh, center_yxhw)")


def _from_xyxy(tf: Any, boxes: Any, target: str) -> Any:
    if target == "xyxy":
        return boxes
    x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
    layouts = {
        "yxyx": (y1, x1, y2, x2),
        "xywh": (x1, y1, x2 - x1, y2 - y1),
        "center_xywh": ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1),
        "center_yxhw": ((y1 + y2) / 2, (x1 + x2) / 2, y2 - y1, x2 - x1),
    }
    if target not in layouts:
        raise ValueError(f"unknown box format '{target}' (xyxy, yxyx, xywh, center_xywh, center_yxhw)")
    return tf.stack(layouts[target], axis=-1)


def _decode(tf: Any, raw: Any, s: Mapping[str, Any]) -> Any:
    """Raw box predictions [B, N, 4] -> xyxy boxes, as `detect` decodes them."""
    encoding = s.get("encoding", "center_size")
    if encoding == "none":
        decoded = _to_xyxy(tf, raw, str(s.get("box_format", "xyxy")))
    elif encoding == "deltas":
        grid = anchors_from_config(s.get("anchors"), s.get("retinanet_anchors")).astype(np.float32)
        size = np.stack([grid[:, 2] - grid[:, 0], grid[:, 3] - grid[:, 1]] * 2, axis=-1).astype(np.float32)
        scaled = raw * np.float32(s.get("delta_std", 0.2)) + np.float32(s.get("delta_mean", 0.0))
        decoded = tf.constant(grid) + scaled * tf.constant(size)
    elif encoding == "center_size":
        anchors = s.get("anchors")
        grid = anchors_from_config(anchors, s.get("retinanet_anchors"))
        anchor_format = str((anchors or {}).get("box_format", "yxyx")) if anchors else "xyxy"
        encoded = str(s.get("center_format", "center_xywh"))
        a = convert_boxes(grid, anchor_format, encoded)
        d = raw * tf.constant(np.asarray(s.get("variances", (1.0, 1.0, 1.0, 1.0)), np.float32))
        centre = d[..., :2] * tf.constant(a[:, 2:]) + tf.constant(a[:, :2])
        size = tf.exp(d[..., 2:]) * tf.constant(a[:, 2:])
        decoded = _to_xyxy(tf, tf.concat([centre, size], axis=-1), encoded)
    else:
        raise ValueError(f"encoding must be center_size, deltas or none, got '{encoding}'")
    clip = s.get("clip_to")
    if clip is not None:
        limits = np.array([clip[1], clip[0], clip[1], clip[0]], np.float32)
        decoded = tf.minimum(tf.maximum(decoded, 0.0), tf.constant(limits))
    return decoded


def _scores(tf: Any, raw: Any, activation: str) -> Any:
    if activation == "sigmoid":
        return tf.sigmoid(raw)
    if activation == "softmax":
        return tf.nn.softmax(raw, axis=-1)
    if activation == "none":
        return raw
    raise ValueError(f"score_activation must be sigmoid, softmax or none, got '{activation}'")


def _nms_boxes(tf: Any, boxes: Any) -> Any:
    """Boxes [N, 4] as LiteRT's NON_MAX_SUPPRESSION_V5 must see them to select what TensorFlow's kernel selects.

    Corners are put in order (TF's kernel orders them itself). A box of zero area overlaps nothing in both kernels,
    but LiteRT re-queues every selected candidate and relies on its IoU with itself to drop the copy: a zero-area
    box has IoU 0 with itself, so LiteRT selects it again and again until `max_output_size` is full (one such
    random box emptied an image's detections). Each gets a disjoint unit-area stand-in beyond every real box,
    which overlaps nothing either; the outputs gather the real boxes by index, so they are unchanged."""
    lo = tf.minimum(boxes[:, :2], boxes[:, 2:])
    hi = tf.maximum(boxes[:, :2], boxes[:, 2:])
    area = (hi[:, 0] - lo[:, 0]) * (hi[:, 1] - lo[:, 1])
    base = tf.reduce_max(tf.abs(boxes)) + 1.0
    unit = tf.maximum(1.0, base * 1e-6)  # wider than a float32 step at that distance
    start = base + 2.0 * unit * tf.cast(tf.range(tf.shape(boxes)[0]), tf.float32)
    stand_in = tf.stack([start, start, start + unit, start + unit], axis=-1)
    return tf.where((area > 0.0)[:, None], tf.concat([lo, hi], axis=-1), stand_in)


def _select(tf: Any, boxes: Any, scores: Any, s: Mapping[str, Any]) -> tuple[Any, Any]:
    """One image, one score column: (anchor indices [M], valid [M]) kept by NMS, best first (`detect._select`)."""
    count = int(scores.shape[0])
    index = tf.range(count)
    top_k = s.get("pre_nms_top_k")
    if top_k and int(top_k) < count:
        scores, index = tf.math.top_k(scores, k=int(top_k))
        boxes = tf.gather(boxes, index)
        count = int(top_k)
    positive_only = bool(s.get("positive_only", False))
    limit = count if positive_only else min(int(s["max_detections"]), count)
    threshold = float(s.get("score_threshold", 0.05))
    iou = float(s.get("iou_threshold", 0.5))
    if iou >= 1.0:  # IoU never exceeds 1, so nothing is suppressed: the candidates by score, as the numpy tail
        ranked, picked = tf.math.top_k(tf.where(scores > threshold, scores, tf.float32.min), k=limit)
        valid = ranked > threshold
    else:
        picked, _, kept = tf.raw_ops.NonMaxSuppressionV5(
            boxes=_nms_boxes(tf, boxes),
            scores=scores,
            max_output_size=limit,
            # LiteRT suppresses at IoU >= threshold, TensorFlow and the numpy tail above it: the next float32 up
            # gives LiteRT the same rule (IoUs are float32)
            iou_threshold=float(np.nextafter(np.float32(iou), np.float32(np.inf))),
            score_threshold=threshold,
            soft_nms_sigma=0.0,
            pad_to_max_output_size=True,
        )
        valid = tf.range(limit) < kept
    if positive_only:  # KerasHub drops kept boxes with no coordinate > 0 (after they suppressed others)
        valid = tf.logical_and(valid, tf.reduce_any(tf.gather(boxes, picked) > 0.0, axis=-1))
    return tf.gather(index, picked), valid


def _detect_one(tf: Any, boxes: Any, scores: Any, s: Mapping[str, Any]) -> tuple[Any, Any, Any, Any]:
    """One image: xyxy boxes [N, 4], scores [N, C] -> padded boxes (xyxy), scores, labels, count."""
    limit = int(s["max_detections"])
    background = s.get("background_class")
    classes = [c for c in range(int(scores.shape[-1])) if c != background]
    if s.get("class_specific", True):
        parts = [(*_select(tf, boxes, scores[:, c], s), c) for c in classes]
        index = tf.concat([p[0] for p in parts], axis=0)
        valid = tf.concat([p[1] for p in parts], axis=0)
        labels = tf.concat([tf.fill(tf.shape(p[0]), p[2]) for p in parts], axis=0)
        picked = tf.gather_nd(scores, tf.stack([index, labels], axis=-1))
    else:
        kept = scores if len(classes) == scores.shape[-1] else tf.gather(scores, classes, axis=-1)
        index, valid = _select(tf, boxes, tf.reduce_max(kept, axis=-1), s)
        best = tf.argmax(tf.gather(kept, index), axis=-1, output_type=tf.int32)
        labels = tf.gather(tf.constant(classes, tf.int32), best)
        picked = tf.reduce_max(tf.gather(kept, index), axis=-1)
    short = limit - int(index.shape[0])
    if short > 0:  # fewer slots than detections asked for: pad with invalid entries
        index = tf.concat([index, tf.zeros([short], index.dtype)], axis=0)
        valid = tf.concat([valid, tf.zeros([short], tf.bool)], axis=0)
        labels = tf.concat([labels, tf.zeros([short], labels.dtype)], axis=0)
        picked = tf.concat([picked, tf.zeros([short], picked.dtype)], axis=0)
    # The kept detections by score, ties in order (class by class, NMS order), as `top_padded`'s stable sort.
    ranked = tf.where(valid, picked, tf.float32.min)
    _, top = tf.math.top_k(ranked, k=limit)
    ok = tf.gather(valid, top)
    out_boxes = tf.where(ok[:, None], tf.gather(boxes, tf.gather(index, top)), -1.0)
    out_scores = tf.where(ok, tf.gather(picked, top), -1.0)
    out_labels = tf.where(ok, tf.cast(tf.gather(labels, top), tf.int32), -1)
    return out_boxes, out_scores, out_labels, tf.reduce_sum(tf.cast(ok, tf.int32))


def tail_function(target: str, kwargs: Mapping[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """`fn({tensor name: tf tensor [B, ...]}) -> {model output name: tf tensor}`: the configured numpy tail as TF ops
    (B fixed when traced: the NMS is unrolled per image). InputError for a tail without an in-graph form."""
    s = detect_settings(target, kwargs)
    names: dict[str, str] = dict(s.get("outputs") or {"boxes": "boxes", "scores": "scores", "labels": "labels"})

    def run(tensors: dict[str, Any]) -> dict[str, Any]:
        import tensorflow as tf

        raw = tf.cast(tensors[str(s["boxes"])], tf.float32)
        batch = raw.shape[0]
        if batch is None:
            raise ValueError("the in-graph post-processing needs a fixed batch size")
        decoded = _decode(tf, raw, s)
        scores = _scores(
            tf, tf.cast(tensors[str(s["classification"])], tf.float32), str(s.get("score_activation", "sigmoid"))
        )
        per_image = [_detect_one(tf, decoded[i], scores[i], s) for i in range(int(batch))]
        out = {
            names["boxes"]: _from_xyxy(tf, tf.stack([p[0] for p in per_image]), str(s.get("box_format", "xyxy"))),
            names["scores"]: tf.stack([p[1] for p in per_image]),
            names["labels"]: tf.stack([p[2] for p in per_image]),
        }
        if "num_detections" in names:
            out[names["num_detections"]] = tf.stack([p[3] for p in per_image])
        # padding stays -1 after the box format's arithmetic
        valid = tf.range(int(s["max_detections"]))[None, :] < tf.stack([p[3] for p in per_image])[:, None]
        out[names["boxes"]] = tf.where(valid[..., None], out[names["boxes"]], -1.0)
        return out

    return run


def output_dtypes(target: str, kwargs: Mapping[str, Any]) -> dict[str, str]:
    """{model output name: dtype} of what `tail_function` returns."""
    s = detect_settings(target, kwargs)
    names = dict(s.get("outputs") or {"boxes": "boxes", "scores": "scores", "labels": "labels"})
    kinds = {"boxes": "float32", "scores": "float32", "labels": "int32", "num_detections": "int32"}
    return {names[k]: kinds[k] for k in names}


def with_tail(head: Any, meta: Mapping[str, Any], outputs: list[Any]) -> Any:
    """The head handle (stages.load.model.handle.ModelHandle) with the in-graph tail after it: one function from the
    model's inputs to its own outputs (`outputs`: their TensorInfos, in the model's order). A dynamic batch is traced
    as 1 (the NMS is unrolled per image); fixing other shapes traces head and tail again."""
    from dataclasses import replace

    import tensorflow as tf

    batch = head.inputs[0].shape[0] if head.inputs and head.inputs[0].shape else None
    if batch is None:
        head = head.with_shapes({i.name: (1, *i.shape[1:]) for i in head.inputs})
    tail = tail_function(
        str(meta["postprocess"]), {k: v for k, v in meta["postprocess_config"].items() if k != "_target_"}
    )
    io_outputs = meta["graph_io"]["outputs"]
    aliases = dict(meta.get("postprocess_inputs") or {})
    inner, head_keys = head.fn, {o.name: o.key for o in head.outputs}
    input_names = [i.name for i in head.inputs]
    specs = [tf.TensorSpec(i.shape, i.dtype, name=i.key) for i in head.inputs]

    @tf.function(input_signature=specs)
    def serve(*args: Any) -> dict[str, Any]:
        result = inner(*args)
        by_name = {}
        for name, key in head_keys.items():
            value = result[key]
            value.set_shape([args[0].shape[0], *value.shape[1:]])  # a called function's outputs keep its None batch
            by_name[name] = value
        tensors = {c: by_name[c] for c in meta["cut_tensors"]}
        tensors |= {alias: by_name[c] for alias, c in aliases.items()}
        tensors |= {n: args[input_names.index(n)] for n in meta.get("tail_inputs") or []}
        final = {n: by_name[io_outputs[n]] for n in meta.get("head_final_outputs") or [] if io_outputs[n] in by_name}
        final |= tail(tensors)
        return {o.key: final[o.name] for o in outputs}

    fn = serve.get_concrete_function()
    described = [
        replace(o, shape=tuple(fn.structured_outputs[o.key].shape), dtype=fn.structured_outputs[o.key].dtype.name)
        for o in outputs
    ]

    def retrace(shapes: dict[str, tuple[int | None, ...]]) -> Any:
        return with_tail(head.with_shapes(shapes), meta, outputs)

    return replace(
        head, _fn=fn, outputs=described, live=None, export=None, retrace=retrace, load_path=f"{head.load_path}+in_graph"
    )
