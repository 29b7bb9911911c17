"""split.deploy=in_graph: the bundled numpy tails rebuilt as TF ops (stages/postprocess/in_graph.py) give the numpy
tails' detections on random head outputs with well-separated scores, in TensorFlow and converted to TFLite."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stages.postprocess.detector import detect
from stages.postprocess.in_graph import DETECT, FILTER_DETECTIONS, tail_function
from stages.postprocess.nms import filter_detections
from stages.result import InputError

PYRAMID = {
    "image_size": [32, 32],
    "min_level": 2,
    "max_level": 3,
    "num_scales": 1,
    "aspect_ratios": [0.5, 1.0, 2.0],
    "anchor_size": 2.0,
    "box_format": "yxyx",
}  # 240 anchors
RETINANET = {"image_shape": [32, 32], "strides": [8, 16], "sizes": [16, 32]}  # 180 anchors
OUTPUTS = {"boxes": "boxes", "scores": "confidence", "labels": "labels", "num_detections": "num_detections"}


def _separated(rng: np.random.Generator, shape: tuple[int, ...], logits: bool) -> np.ndarray:
    """Scores with no two closer than 1e-4 (no ties for either NMS to break differently)."""
    p = rng.permutation(np.linspace(0.01, 0.99, int(np.prod(shape)))).reshape(shape).astype(np.float32)
    return np.log(p / (1 - p)).astype(np.float32) if logits else p


def _head(anchors: int, classes: int, logits: bool, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "raw_boxes": (rng.normal(size=(2, anchors, 4)) * 0.3).astype(np.float32),
        "raw_scores": _separated(rng, (2, anchors, classes), logits),
    }


def _decoded_head(seed: int = 0) -> dict[str, np.ndarray]:
    """keras-retinanet's cut: decoded xyxy boxes (overlapping clusters) and sigmoid probabilities."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 64, (2, 300, 2))
    sizes = rng.uniform(4, 20, (2, 300, 2))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=-1).astype(np.float32)
    return {"raw_boxes": boxes, "raw_scores": _separated(rng, (2, 300, 4), logits=False)}


CASES: list[tuple[str, str, dict[str, Any], dict[str, np.ndarray]]] = [
    (
        "keras_hub_agnostic",
        DETECT,
        {
            "encoding": "center_size",
            "center_format": "center_xywh",
            "anchors": PYRAMID,
            "box_format": "yxyx",
            "score_activation": "sigmoid",
            "class_specific": False,
            "pre_nms_top_k": 64,
            "score_threshold": 0.3,
            "iou_threshold": 0.5,
            "max_detections": 10,
            "positive_only": True,
            "outputs": OUTPUTS,
        },
        _head(240, 3, logits=True),
    ),
    (
        "ssd_softmax_per_class",
        DETECT,
        {
            "encoding": "center_size",
            "center_format": "center_yxhw",
            "variances": [0.1, 0.1, 0.2, 0.2],
            "anchors": PYRAMID,
            "score_activation": "softmax",
            "background_class": 0,
            "class_specific": True,
            "score_threshold": 0.2,
            "iou_threshold": 0.45,
            "max_detections": 15,
            "clip_to": [32, 32],
        },
        _head(240, 4, logits=True, seed=1),
    ),
    (
        "retinanet_deltas",
        DETECT,
        {
            "encoding": "deltas",
            "retinanet_anchors": RETINANET,
            "score_activation": "none",
            "class_specific": True,
            "score_threshold": 0.5,
            "iou_threshold": 0.5,
            "max_detections": 20,
        },
        _head(180, 3, logits=False, seed=2),
    ),
    (
        "filter_detections",
        FILTER_DETECTIONS,
        {"outputs": ["boxes", "scores", "labels"], "score_threshold": 0.05, "max_detections": 20},
        _decoded_head(),
    ),
    (
        "filter_detections_agnostic",
        FILTER_DETECTIONS,
        {"class_specific_filter": False, "score_threshold": 0.3, "max_detections": 12, "nms_threshold": 0.4},
        _decoded_head(seed=3),
    ),
]


def _numpy(target: str, kwargs: dict[str, Any], head: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    fn = detect if target == DETECT else filter_detections
    return fn(head, boxes="raw_boxes", classification="raw_scores", **kwargs)  # type: ignore[operator]


def _traced(target: str, kwargs: dict[str, Any], head: dict[str, np.ndarray]) -> Any:
    import tensorflow as tf

    tail = tail_function(target, {"boxes": "raw_boxes", "classification": "raw_scores", **kwargs})
    specs = [tf.TensorSpec(v.shape, tf.float32, name=k) for k, v in head.items()]

    @tf.function(input_signature=specs)
    def serve(raw_boxes: Any, raw_scores: Any) -> dict[str, Any]:
        return tail({"raw_boxes": raw_boxes, "raw_scores": raw_scores})

    return serve.get_concrete_function()


def _same(expected: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(expected)
    for name, want in expected.items():
        value = np.asarray(got[name])
        assert value.shape == want.shape, name
        if want.dtype.kind == "f":
            np.testing.assert_allclose(value, want, atol=1e-4, rtol=1e-5, err_msg=name)
        else:
            np.testing.assert_array_equal(value, want, err_msg=name)


@pytest.mark.slow  # real conversions of seconds each: the fast tier keeps the cheaper ones
@pytest.mark.parametrize(("label", "target", "kwargs", "head"), CASES, ids=[c[0] for c in CASES])
def test_tf_tail_gives_the_numpy_tails_detections(
    label: str, target: str, kwargs: dict[str, Any], head: dict[str, np.ndarray]
) -> None:
    expected = _numpy(target, kwargs, head)
    counts = (np.asarray(next(v for k, v in expected.items() if "score" in k or "confidence" in k)) > -1).sum(axis=1)
    assert counts.min() >= 2, "the case must keep detections to compare"
    got = _traced(target, kwargs, head)(**{k: v for k, v in head.items()})
    _same(expected, {k: v.numpy() for k, v in got.items()})


def test_converted_tail_holds_the_nms_builtin_and_the_same_detections() -> None:
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    label, target, kwargs, head = CASES[0]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([_traced(target, kwargs, head)], tf.Module())
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    flatbuffer = converter.convert()
    interpreter = Interpreter(model_content=flatbuffer)
    ops = {d["op_name"] for d in interpreter._get_ops_details()}
    assert "NON_MAX_SUPPRESSION_V5" in ops and "TOPK_V2" in ops, ops
    runner = interpreter.get_signature_runner()
    _same(_numpy(target, kwargs, head), runner(**head))


def test_a_tail_without_an_in_graph_form_is_refused_by_name() -> None:
    with pytest.raises(InputError, match=r"stages\.postprocess\.boxes\.decode.*split\.deploy=host"):
        tail_function("stages.postprocess.boxes.decode", {})


def _edge_boxes() -> dict[str, np.ndarray]:
    """Boxes where LiteRT's NON_MAX_SUPPRESSION_V5 and the numpy tail part unless the in-graph tail guards them:
    a best-scoring zero-area box (LiteRT selects it over and over, emptying the image), a pair at IoU exactly 0.5
    (LiteRT suppresses at >=, the tail above), a box with its corners swapped, two identical boxes."""
    boxes = [
        [10.0, 10.0, 10.0, 30.0],  # zero area, best score
        [0.0, 0.0, 4.0, 1.0],
        [0.0, 0.0, 2.0, 1.0],  # IoU with the one above: exactly 0.5
        [30.0, 30.0, 20.0, 20.0],  # corners swapped
        [21.0, 21.0, 30.0, 30.0],  # IoU 0.81 with the swapped box
        [40.0, 40.0, 50.0, 50.0],
        [40.0, 40.0, 50.0, 50.0],  # identical to the one above
    ]
    scores = np.linspace(0.95, 0.6, len(boxes), dtype=np.float32)
    return {
        "raw_boxes": np.asarray([boxes], np.float32),
        "raw_scores": np.stack([scores, scores[::-1] * 0.5], axis=-1)[None].astype(np.float32),
    }


def _on_litert(target: str, kwargs: dict[str, Any], head: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    converter = tf.lite.TFLiteConverter.from_concrete_functions([_traced(target, kwargs, head)], tf.Module())
    return dict(Interpreter(model_content=converter.convert()).get_signature_runner()(**head))


def test_litert_nms_keeps_the_numpy_rules_for_zero_area_ties_at_the_threshold_and_swapped_corners() -> None:
    kwargs = {"class_specific_filter": False, "score_threshold": 0.05, "max_detections": 6, "nms_threshold": 0.5}
    head = _edge_boxes()
    expected = _numpy(FILTER_DETECTIONS, kwargs, head)
    kept = expected["scores"][0][expected["scores"][0] > -1]
    assert len(kept) == 5, "the case must keep the zero-area box, both boxes at IoU 0.5 and both duplicates"
    _same(expected, _on_litert(FILTER_DETECTIONS, kwargs, head))


@pytest.mark.slow  # a second real conversion
def test_without_nms_litert_keeps_identical_boxes_as_the_numpy_tail() -> None:
    kwargs = {"class_specific_filter": False, "score_threshold": 0.05, "max_detections": 7, "apply_nms": False}
    head = _edge_boxes()
    expected = _numpy(FILTER_DETECTIONS, kwargs, head)
    assert (expected["scores"][0] > -1).sum() == 7
    _same(expected, _on_litert(FILTER_DETECTIONS, kwargs, head))
