"""Through the CLI: a YOLO-style head whose one output concatenates pixel boxes and class scores.

Full-integer quantization gives that output one scale, set by the pixel boxes, which leaves the class scores a
step of about 1.3: the detections vanish while the tensor's relative RMSE stays small. The report must record
the output's kind and give each variant the verdict its detection match deserves.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ANCHORS, CLASSES = 64, 3


@pytest.fixture(scope="module")
def yolo_keras(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """[1, 4+C, N] on 8x8x1 digits: centre xy in 0..320 px, wh 16..80 px, scores 0.6 * sigmoid (in [0, 0.6])."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Flatten()(keras.layers.Conv2D(8, 3, activation="relu")(inputs))
    xy = keras.layers.Dense(2 * ANCHORS, activation="sigmoid")(x)
    wh = keras.layers.Dense(2 * ANCHORS, activation="sigmoid")(x)
    cls = keras.layers.Dense(CLASSES * ANCHORS, activation="sigmoid")(x)
    xy = keras.layers.Reshape((2, ANCHORS))(keras.layers.Rescaling(320.0)(xy))
    wh = keras.layers.Reshape((2, ANCHORS))(keras.layers.Rescaling(64.0, offset=16.0)(wh))
    cls = keras.layers.Reshape((CLASSES, ANCHORS))(keras.layers.Rescaling(0.6)(cls))
    output = keras.layers.Concatenate(axis=1, name="output0")([xy, wh, cls])
    path = tmp_path_factory.mktemp("yolo") / "yolo.keras"
    keras.Model(inputs, output).save(path)
    return path


@pytest.mark.slow
def test_verdicts_follow_the_detection_match_of_a_yolo_head(run_cli, tmp_path: Path, yolo_keras: Path) -> None:
    result = run_cli(
        "model=keras",
        f"model.path={yolo_keras}",
        "variants=[fp32,fp16,int8]",
        "tracking.enabled=false",
        "benchmark.enabled=false",
    )
    assert result.returncode == 1, result.stdout + result.stderr  # int8 fails
    report = json.loads(next(tmp_path.glob("outputs/runs/*/*/report.json")).read_text())
    [(name, kind)] = report["reference"]["output_kinds"].items()
    assert kind["kind"] == "yolo" and "4+3" in kind["why"], kind
    statuses = {}
    for variant in ("fp32", "fp16", "int8"):
        entry = report["variants"][variant]
        detection = entry["metrics"]["detection"]
        gate = entry["gates"]["min_detection_match"]
        assert gate["evaluated"] and gate["value"] == detection["matched_fraction"]
        assert (
            "argmax_agreement" not in entry["metrics"]
            and "min_argmax_agreement" not in entry["gates"]
            or not (entry["gates"]["min_argmax_agreement"]["evaluated"])
        )
        assert entry["metrics"]["output_kinds"] == {name: "yolo"}
        assert (entry["status"] == "passed") == all(g["passed"] for g in entry["gates"].values() if g["evaluated"])
        statuses[variant] = (entry["status"], detection["matched_fraction"], detection["reference_detections"])
    assert statuses["fp32"][0] == "passed" and statuses["fp32"][1] >= 0.99, statuses
    assert statuses["fp16"][0] == "passed" and statuses["fp16"][1] >= 0.97, statuses
    assert statuses["int8"][0] == "failed" and statuses["int8"][1] < 0.9, statuses
    assert statuses["fp32"][2] > 100  # the head does detect things on the digits
