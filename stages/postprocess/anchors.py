"""Anchor grids of feature pyramids, the way KerasHub's `AnchorGenerator` (RetinaNet) lays them out.

A detector's raw box predictions are offsets from these anchors, so a numpy tail that decodes them must
rebuild the exact grid: levels `min_level..max_level` (stride 2**level), `num_scales` octave scales, the
aspect ratios, and `anchor_size` (the base size in strides). Anchors are listed level by level, cell by cell
(row-major), then ratio by scale, as KerasHub concatenates them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _base_anchors(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> np.ndarray:
    """[len(ratios) * len(sizes), 4] xyxy around (0, 0), rounded to whole pixels as KerasHub does."""
    size = np.asarray(sizes, np.float32)
    h_ratios = np.sqrt(np.asarray(aspect_ratios, np.float32))
    ws = (1.0 / h_ratios[:, None] * size[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * size[None, :]).reshape(-1)
    return np.round(np.stack([-ws, -hs, ws, hs], axis=1) / 2).astype(np.float32)


def convert_boxes(boxes: np.ndarray, source: str, target: str) -> np.ndarray:
    """Between `xyxy`, `yxyx`, `xywh` (corner + size) and `center_xywh` / `center_yxhw`."""
    if source == target:
        return boxes
    b = np.asarray(boxes, np.float32)
    if source == "xyxy":
        x1, y1, x2, y2 = np.moveaxis(b, -1, 0)
    elif source == "yxyx":
        y1, x1, y2, x2 = np.moveaxis(b, -1, 0)
    elif source == "xywh":
        x1, y1, w, h = np.moveaxis(b, -1, 0)
        x2, y2 = x1 + w, y1 + h
    elif source in ("center_xywh", "center_yxhw"):
        if source == "center_xywh":
            cx, cy, w, h = np.moveaxis(b, -1, 0)
        else:
            cy, cx, h, w = np.moveaxis(b, -1, 0)
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    else:
        raise ValueError(f"unknown box format '{source}' (xyxy, yxyx, xywh, center_xywh, center_yxhw)")
    layouts = {
        "xyxy": (x1, y1, x2, y2),
        "yxyx": (y1, x1, y2, x2),
        "xywh": (x1, y1, x2 - x1, y2 - y1),
        "center_xywh": ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1),
        "center_yxhw": ((y1 + y2) / 2, (x1 + x2) / 2, y2 - y1, x2 - x1),
    }
    if target not in layouts:
        raise ValueError(f"unknown box format '{target}' (xyxy, yxyx, xywh, center_xywh, center_yxhw)")
    return np.stack(layouts[target], axis=-1).astype(np.float32)


def pyramid_anchors(
    image_size: Sequence[int],
    min_level: int = 3,
    max_level: int = 7,
    num_scales: int = 3,
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    anchor_size: float = 4.0,
    box_format: str = "yxyx",
) -> np.ndarray:
    """Every anchor of the pyramid for an image of (height, width): shape [N, 4] in `box_format`, pixels."""
    height, width = int(image_size[0]), int(image_size[1])
    levels = []
    for level in range(int(min_level), int(max_level) + 1):
        rows, cols = math.ceil(height / 2**level), math.ceil(width / 2**level)
        stride_y, stride_x = height // rows, width // cols
        cy, cx = np.meshgrid(
            np.arange(rows, dtype=np.float32) * stride_y, np.arange(cols, dtype=np.float32) * stride_x, indexing="ij"
        )
        shifts = np.stack([cx.ravel(), cy.ravel(), cx.ravel(), cy.ravel()], axis=1)
        sizes = [int(2**level * anchor_size * 2 ** (s / num_scales)) for s in range(int(num_scales))]
        base = _base_anchors(sizes, aspect_ratios)
        levels.append((shifts[:, None, :] + base[None, :, :]).reshape(-1, 4))
    return convert_boxes(np.concatenate(levels), "xyxy", box_format)
