"""Keras 3 models as users export them today, end to end through the CLI.

- A detector saved with its post-processing in the serving function (box decoding + an NMS with `tf.bitwise`
  ops inside a `tf.while_loop`): `split=auto` takes the converter's verdict, cuts before the NMS, and the fp32
  variant matches the original's detections, with the bundled numpy tail and with the cut-off part in TF.
- A transformer block on int32 token ids of variable length: timed on the dataset's ids (made-up ids index
  out of the vocabulary: `gather index out of bounds`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stages.result import InputError
from tests.helpers.cli import cli
from tests.helpers.keras_detector import DETECTOR_TAIL, detector_dataset, hydra_value, save_detector
from tests.helpers.keras_text import save_transformer, token_dataset

# One xdist worker runs this module: its session/module fixtures are built once, not once per worker.
pytestmark = pytest.mark.xdist_group("keras3_models")


@pytest.fixture(scope="session")
def detector(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("detector")
    return save_detector(root / "saved_model"), detector_dataset(root / "images.npz")


def _run(tmp_path: Path, *args: str) -> tuple[Any, dict[str, Any]]:
    done = cli([*args, "tracking.enabled=false", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    report_file = tmp_path / "run" / "report.json"
    assert report_file.exists(), done.stderr[-3000:]
    return done, json.loads(report_file.read_text())


def _detector_args(model: Path, data: Path) -> list[str]:
    return [
        "model=saved_model",
        f"model.path={model}",
        "dataset=npz",
        f"dataset.path={data}",
        "variants=[fp32]",
        "benchmark.min_runs=5",
        "benchmark.min_seconds=0",
    ]


@pytest.mark.slow
def test_detector_with_bundled_numpy_tail(tmp_path: Path, detector: tuple[Path, Path]) -> None:
    done, report = _run(tmp_path, *_detector_args(*detector), f"+split.postprocess={hydra_value(DETECTOR_TAIL)}")
    split = report["split"]
    assert "BitwiseAnd" in split["unsupported_ops"]
    # The tail names the raw predictions it decodes: the cut is exactly there, before decoding and NMS.
    assert [c.rsplit("/", 2)[-2] for c in split["cut_tensors"]] == ["bbox_regression_1", "cls_logits_1"]
    fp32 = report["variants"]["fp32"]
    assert fp32["status"] == "passed", (fp32, done.stderr[-2000:])
    detection = fp32["metrics"]["detection"]
    assert detection["reference_detections"] > 20  # the images give real detections, not an empty match
    assert detection["matched_fraction"] >= 0.99
    assert detection["box_max_abs_err"] < 1e-3
    assert fp32["metrics"]["latency_ms"]["p50"] > 0
    assert done.returncode == 0


@pytest.mark.slow
def test_detector_without_a_tail_runs_the_cut_off_part_in_tensorflow(
    tmp_path: Path, detector: tuple[Path, Path]
) -> None:
    done, report = _run(tmp_path, *_detector_args(*detector))
    split = report["split"]
    assert split["tail"] == "tensorflow" and {"BitwiseAnd", "Invert"} <= set(split["unsupported_ops"])
    assert "while" in split["unsupported_where"]["BitwiseAnd"]  # where it sits: inside the loop body
    # The last tensors TFLite can run: decoded boxes and scores; no indices or masks cross the cut.
    assert split["cut_tensors"] and not any("TopKV2" in c or "Greater" in c for c in split["cut_tensors"])
    fp32 = report["variants"]["fp32"]
    assert fp32["status"] == "passed", (fp32, done.stderr[-2000:])
    assert fp32["metrics"]["detection"]["matched_fraction"] >= 0.99
    assert done.returncode == 0


@pytest.mark.slow
def test_split_none_names_the_op_inside_the_while_body(tmp_path: Path, detector: tuple[Path, Path]) -> None:
    from stages.load.stage import load
    from stages.split.stage import split

    (tmp_path / "load").mkdir()
    model = {"format": "saved_model", "path": str(detector[0]), "signature": "serving_default"}
    loaded = load({"model": model}, str(tmp_path / "load"))
    loaded.root = str(tmp_path / "load")
    (tmp_path / "split").mkdir()
    with pytest.raises(InputError, match=r"BitwiseAnd.*split=auto"):
        split({"split": {"mode": "none", "outputs": None, "postprocess": None}}, str(tmp_path / "split"), loaded)


@pytest.mark.slow
def test_transformer_on_token_ids_is_timed_on_the_dataset(tmp_path: Path) -> None:
    model = save_transformer(tmp_path / "text.keras")
    data = token_dataset(tmp_path / "ids.npz")
    args = ["model=keras", f"model.path={model}", "dataset=npz", f"dataset.path={data}", "variants=[fp32]"]
    done, report = _run(tmp_path, *args, "benchmark.min_runs=20", "benchmark.min_seconds=0")
    assert "gather index out of bounds" not in done.stdout + done.stderr
    fp32 = report["variants"]["fp32"]
    assert fp32["status"] == "passed", (fp32, done.stderr[-2000:])
    assert fp32["metrics"]["max_abs_err"]["probs"] < 1e-4
    assert fp32["metrics"]["latency_ms"]["count"] >= 20
    assert fp32["benchmark"]["inputs"].endswith("evaluation samples, cycled, batch 1")
    assert report["reference"]["metrics"]["latency_ms"]["p50"] > 0


@pytest.mark.slow
def test_no_cut_possible_names_the_op_and_where_it_sits(tmp_path: Path) -> None:
    """Every path from the input runs through the bitwise loop: nothing is left for TFLite."""
    import tensorflow as tf

    class Masked(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            bits = tf.cast(x > 0.0, tf.int32)
            _, bits = tf.while_loop(
                lambda i, b: i < 3, lambda i, b: (i + 1, tf.bitwise.bitwise_and(b, tf.roll(b, 1, 1))), [0, bits]
            )
            return {"y": tf.cast(bits, tf.float32)}

    module = Masked()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.serve})
    from stages.load.stage import load
    from stages.split.stage import split

    (tmp_path / "load").mkdir()
    (tmp_path / "split").mkdir()
    model = {"format": "saved_model", "path": str(tmp_path / "sm"), "signature": "serving_default"}
    loaded = load({"model": model}, str(tmp_path / "load"))
    loaded.root = str(tmp_path / "load")
    with pytest.raises(InputError, match=r"BitwiseAnd.* at .*while.*head would have no outputs"):
        split({"split": {"mode": "auto", "outputs": None, "postprocess": None}}, str(tmp_path / "split"), loaded)
