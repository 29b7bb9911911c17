"""Inputs for the published models, made by code or cut from data that ships in a package: crops of
scikit-learn's two sample photos (china.jpg, flower.jpg), text drawn with Pillow's bundled font, and synthetic
audio (tones, chirps, harmonic "vowels", noise mixtures). Each maker returns {input key: array}, samples first,
and is seeded: the same call gives the same array."""

from __future__ import annotations

import numpy as np

RATE_BP = 22050  # basic-pitch's sample rate
RATE_16K = 16000


def photo_crops(n: int, size: int, seed: int = 0, width: int | None = None) -> np.ndarray:
    """uint8 [n, size, width, 3]: random crops (a quarter to all of the shorter side), resized, half of them
    mirrored, from scikit-learn's china.jpg and flower.jpg."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        photo = photos[i % len(photos)]
        side = int(rng.integers(min(photo.shape[:2]) // 4, min(photo.shape[:2])))
        top, left = rng.integers(0, photo.shape[0] - side + 1), rng.integers(0, photo.shape[1] - side + 1)
        crop = Image.fromarray(photo[top : top + side, left : left + side]).resize((width or size, size))
        arr = np.asarray(crop)
        out.append(arr[:, ::-1] if rng.random() < 0.5 else arr)
    return np.stack(out)


def text_images(n: int, height: int, width: int, seed: int = 0, lines: int = 1) -> np.ndarray:
    """uint8 [n, height, width, 3]: random words in dark ink on light paper (Pillow's bundled font), a quarter of
    the single-line ones upside down (the direction classifier's two classes)."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    out = []
    for _ in range(n):
        paper = tuple(int(v) for v in rng.integers(190, 256, 3))
        image = Image.new("RGB", (width, height), paper)
        draw = ImageDraw.Draw(image)
        size = int(height * 0.6) if lines == 1 else int(rng.integers(14, 28))
        font = ImageFont.load_default(size=size)
        y = 0.15 * height if lines == 1 else float(rng.integers(2, 20))
        for _ in range(lines):
            words = " ".join("".join(rng.choice(alphabet, int(rng.integers(2, 8)))) for _ in range(4))
            ink = tuple(int(v) for v in rng.integers(0, 80, 3))
            draw.text((float(rng.integers(2, 12)), y), words, fill=ink, font=font)
            y += size * 1.6
            if y > height - size:
                break
        if lines == 1 and rng.random() < 0.25:
            image = image.rotate(180)
        out.append(np.asarray(image))
    return np.stack(out)


def audio(n: int, samples: int, rate: int, seed: int = 0) -> np.ndarray:
    """float32 [n, samples] in [-1, 1]: each clip a mixture of steady tones, a chirp, a harmonic "vowel" with a
    moving pitch and syllable-like loudness, and white noise at a random level."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / rate
    out = np.zeros((n, samples), np.float32)
    for i in range(n):
        clip = np.zeros(samples)
        for _ in range(int(rng.integers(1, 4))):  # notes
            f = 110.0 * 2 ** (rng.integers(0, 36) / 12)
            on, off = sorted(rng.uniform(0, t[-1], 2))
            clip += rng.uniform(0.1, 0.4) * np.sin(2 * np.pi * f * t) * ((t >= on) & (t <= off))
        f0, f1 = rng.uniform(80, 2000, 2)  # chirp
        clip += rng.uniform(0, 0.2) * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1])))
        pitch = rng.uniform(90, 250) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.2, 1) * t))  # voice
        phase = 2 * np.pi * np.cumsum(pitch) / rate
        voice = sum(np.sin(k * phase) / k for k in range(1, 12))
        clip += rng.uniform(0, 0.3) * voice * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 5) * t)) ** 2
        clip += rng.uniform(0.001, 0.1) * rng.standard_normal(samples)
        out[i] = clip / max(1.0, float(np.abs(clip).max()))
    return out


def _mel_filters(rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Slaney-style triangular mel filters, [n_fft // 2 + 1, n_mels] (librosa's default shape, without librosa)."""

    def mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    edges = 700.0 * (10 ** (np.linspace(mel(np.array(0.0)), mel(np.array(rate / 2)), n_mels + 2) / 2595.0) - 1)
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    lower = (freqs[:, None] - edges[None, :-2]) / (edges[1:-1] - edges[:-2])
    upper = (edges[None, 2:] - freqs[:, None]) / (edges[2:] - edges[1:-1])
    return np.maximum(0, np.minimum(lower, upper)) * (2.0 / (edges[2:] - edges[:-2]))


def faces_gray_64(n: int) -> dict[str, np.ndarray]:
    """fer's input: 64x64 grey in [-1, 1] (fer scales x/255, minus 0.5, times 2)."""
    grey = photo_crops(n, 64).mean(-1, keepdims=True).astype("float32")
    return {"x": (grey / 255.0 - 0.5) * 2.0}


def _mtcnn(n: int, size: int) -> dict[str, np.ndarray]:
    """MTCNN's input: RGB in about [-1, 1] ((x - 127.5) / 128)."""
    return {"x": (photo_crops(n, size).astype("float32") - 127.5) / 128.0}


def patches_rgb_48(n: int) -> dict[str, np.ndarray]:
    return _mtcnn(n, 48)


def patches_rgb_24(n: int) -> dict[str, np.ndarray]:
    return _mtcnn(n, 24)


def audio_basic_pitch(n: int) -> dict[str, np.ndarray]:
    """basic-pitch's input: [n, 43844, 1], 2 s windows of 22.05 kHz mono audio."""
    return {"x": audio(n, 43844, RATE_BP)[..., None]}


def mel_musicnn(n: int) -> dict[str, np.ndarray]:
    """musicnn's input: [n, 187, 96] log-compressed mel spectrogram, log10(10000 x + 1), of 3 s at 16 kHz
    (n_fft 512, hop 256, 96 bands: musicnn's configuration)."""
    clips = audio(n, 256 * 186 + 512, RATE_16K)
    frames = np.lib.stride_tricks.sliding_window_view(clips, 512, axis=1)[:, ::256][:, :187]
    power = np.abs(np.fft.rfft(frames * np.hanning(512), axis=-1)) ** 2
    return {"x": np.log10(10000 * (power @ _mel_filters(RATE_16K, 512, 96)) + 1).astype("float32")}


def audio_dnsmos(n: int) -> dict[str, np.ndarray]:
    """DNSMOS's input: [n, 144160], 9.01 s of 16 kHz audio."""
    return {"x": audio(n, 144160, RATE_16K)}


def images_rgb_320(n: int) -> dict[str, np.ndarray]:
    """nudenet's input (NHWC after onnx2tf): RGB in [0, 1]."""
    return {"x": photo_crops(n, 320).astype("float32") / 255.0}


def images_rgb_416_255(n: int) -> dict[str, np.ndarray]:
    """ddddocr's detector input (NHWC after onnx2tf): RGB in [0, 255], half photos, half text."""
    half = n // 2
    both = np.concatenate([photo_crops(half, 416), text_images(n - half, 416, 416, lines=12)])
    return {"x": both.astype("float32")}


def _paddle(images: np.ndarray) -> np.ndarray:
    return (images.astype("float32") / 255.0 - 0.5) / 0.5


def text_lines_48x192(n: int) -> dict[str, np.ndarray]:
    return {"x": _paddle(text_images(n, 48, 192))}


def text_lines_48x320(n: int) -> dict[str, np.ndarray]:
    return {"x": _paddle(text_images(n, 48, 320))}


def text_lines_gray_64x256(n: int) -> dict[str, np.ndarray]:
    """ddddocr's recogniser input (NHWC after onnx2tf): grey text lines 64 high, scaled as its beta model is,
    (x / 255 - 0.5) / 0.5."""
    grey = text_images(n, 64, 256).astype("float32").mean(axis=-1, keepdims=True)
    return {"x": (grey / 255.0 - 0.5) / 0.5}


def audio_silero_576(n: int) -> dict[str, np.ndarray]:
    """Silero VAD's 16 kHz input: one 512-sample chunk after its 64-sample context (576), and its LSTM state
    [2, batch, 128], given samples first ([n, 2, 128]): zero as a stream starts for half, small random values as
    in mid-stream for the others."""
    rng = np.random.default_rng(0)
    state = 0.3 * rng.standard_normal((n, 2, 128)) * (np.arange(n) % 2 == 1)[:, None, None]
    return {"input": audio(n, 576, RATE_16K), "state": state.astype("float32")}


def text_pages_320(n: int) -> dict[str, np.ndarray]:
    """PaddleOCR's detector input: ImageNet-normalised RGB pages of text lines."""
    pages = text_images(n, 320, 320, lines=12).astype("float32") / 255.0
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    return {"x": ((pages - mean) / std).astype("float32")}
