"""Anchor generation, box decoding and clipping in numpy (keras-retinanet conventions, x1 y1 x2 y2)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_RATIOS = (0.5, 1.0, 2.0)
DEFAULT_SCALES = (1.0, 2 ** (1.0 / 3.0), 2 ** (2.0 / 3.0))


def generate_anchors(
    base_size: float, ratios: Sequence[float] = DEFAULT_RATIOS, scales: Sequence[float] = DEFAULT_SCALES
) -> np.ndarray:
    """Anchors centred on (0, 0), one per (ratio, scale) pair, shape [len(ratios) * len(scales), 4]."""
    ratios_a, scales_a = np.asarray(ratios, np.float64), np.asarray(scales, np.float64)
    count = len(ratios_a) * len(scales_a)
    anchors = np.zeros((count, 4))
    anchors[:, 2:] = base_size * np.tile(scales_a, (2, len(ratios_a))).T
    areas = anchors[:, 2] * anchors[:, 3]
    anchors[:, 2] = np.sqrt(areas / np.repeat(ratios_a, len(scales_a)))
    anchors[:, 3] = anchors[:, 2] * np.repeat(ratios_a, len(scales_a))
    anchors[:, 0::2] -= np.tile(anchors[:, 2] * 0.5, (2, 1)).T
    anchors[:, 1::2] -= np.tile(anchors[:, 3] * 0.5, (2, 1)).T
    return anchors


def shift(feature_shape: Sequence[int], stride: int, anchors: np.ndarray) -> np.ndarray:
    """Replicate `anchors` at every cell centre of a feature map of `feature_shape` (rows, cols)."""
    shift_x = (np.arange(feature_shape[1]) + 0.5) * stride
    shift_y = (np.arange(feature_shape[0]) + 0.5) * stride
    sx, sy = np.meshgrid(shift_x, shift_y)
    shifts = np.stack([sx.ravel(), sy.ravel(), sx.ravel(), sy.ravel()], axis=1)
    return (anchors[None, :, :] + shifts[:, None, :]).reshape(-1, 4)


def anchors_for_shape(
    image_shape: Sequence[int],
    strides: Sequence[int] = (8, 16, 32, 64, 128),
    sizes: Sequence[float] = (32, 64, 128, 256, 512),
    ratios: Sequence[float] = DEFAULT_RATIOS,
    scales: Sequence[float] = DEFAULT_SCALES,
) -> np.ndarray:
    """All anchors of a feature pyramid for an image of (height, width), level by level: shape [N, 4]."""
    levels = []
    for stride, size in zip(strides, sizes, strict=True):
        feature = [(int(image_shape[0]) + stride - 1) // stride, (int(image_shape[1]) + stride - 1) // stride]
        levels.append(shift(feature, stride, generate_anchors(size, ratios, scales)))
    return np.concatenate(levels).astype(np.float32)


def decode_boxes(anchors: np.ndarray, deltas: np.ndarray, mean: float = 0.0, std: float = 0.2) -> np.ndarray:
    """Regression deltas [..., N, 4] relative to anchors [N, 4] -> absolute boxes (bbox_transform_inv)."""
    anchors = np.asarray(anchors, np.float32)
    width = anchors[..., 2] - anchors[..., 0]
    height = anchors[..., 3] - anchors[..., 1]
    scaled = np.asarray(deltas, np.float32) * np.float32(std) + np.float32(mean)
    x1 = anchors[..., 0] + scaled[..., 0] * width
    y1 = anchors[..., 1] + scaled[..., 1] * height
    x2 = anchors[..., 2] + scaled[..., 2] * width
    y2 = anchors[..., 3] + scaled[..., 3] * height
    return np.stack([x1, y1, x2, y2], axis=-1)


def clip_boxes(boxes: np.ndarray, height: float, width: float) -> np.ndarray:
    """Clip x to [0, width] and y to [0, height]."""
    boxes = np.asarray(boxes, np.float32)
    limits = np.array([width, height, width, height], np.float32)
    return np.clip(boxes, 0.0, limits).astype(np.float32)


def decode(
    tensors: dict[str, np.ndarray],
    *,
    regression: str,
    image_shape: Sequence[int],
    outputs: str = "boxes",
    **anchor_args: object,
) -> dict[str, np.ndarray]:
    """Tail form: decode and clip the `regression` head output against the image's anchors."""
    anchors = anchors_for_shape(image_shape, **anchor_args)  # type: ignore[arg-type]
    boxes = decode_boxes(anchors, tensors[regression])
    return {outputs: clip_boxes(boxes, image_shape[0], image_shape[1])}
