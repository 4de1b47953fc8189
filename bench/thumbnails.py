"""Thumbnail rendering per media type at 256 px, and loading a cached thumbnail, next to decoding a full-size
source image (what a grid without a thumbnail cache would do), median of N.

    python bench/thumbnails.py [--runs 7] [--size 256]

The sources are generated: a 1080p H.264 clip and a 2048 px PNG drawn by the Sandbox renderer, a 24 MP
JPEG "photo" (the Sandbox picture enlarged, with sensor-like noise), a 4-minute stereo WAV and AAC file,
and a glTF binary. Cached thumbnails are also written as WebP to compare the two formats' size and decode
time, with Pillow and with Qt (the grid's decoder). The last line printed is one JSON object with
every figure.
"""

from __future__ import annotations

import argparse
import array
import io
import json
import math
import os
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
from av.audio.stream import AudioStream
from PIL import Image, ImageChops

from core.db.enums import MediaType
from core.media import render
from core.thumbnails import THUMB_KIND, ThumbnailStore, render_scrub_strip, render_thumbnail


def median_ms(runs: int, action: Callable[[], object]) -> float:
    action()  # warm up: imports, codec initialisation, the page cache
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return round(statistics.median(samples) * 1000, 3)


def decode(path_or_bytes: Path | bytes) -> None:
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(source) as image:
        image.load()


def qt_decode(data: bytes) -> None:
    """What the grid will do with a cached file: QImage decodes it (Qt's own JPEG and WebP readers)."""
    from PySide6.QtGui import QImage

    image = QImage()
    if not image.loadFromData(data):
        raise RuntimeError("Qt could not decode a thumbnail")


def make_photo(path: Path, base: Path) -> Path:
    with Image.open(base) as picture:
        photo = picture.convert("RGB").resize((6000, 4000), Image.Resampling.BICUBIC)
    noise = Image.effect_noise((6000, 4000), 10).convert("RGB")
    ImageChops.add(photo, noise, 1.0, -128).save(path, quality=90)
    return path


def make_audio(path: Path, codec: str, seconds: int = 240, rate: int = 44100) -> Path:
    """A stereo tone whose loudness swells and fades once a second."""
    one_second = array.array(
        "f",
        (
            0.6 * math.sin(math.pi * i / rate) * math.sin(2 * math.pi * 220 * i / rate)
            for i in range(rate)
            for _channel in range(2)
        ),
    ).tobytes()
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout="stereo")
        assert isinstance(stream, AudioStream)
        chunk = stream.codec_context.frame_size or 1024
        data = one_second * seconds
        step = chunk * 2 * 4
        for offset in range(0, len(data) - step + 1, step):
            frame = av.AudioFrame(format="flt", layout="stereo", samples=chunk)
            frame.planes[0].update(data[offset : offset + step])
            frame.sample_rate = rate
            frame.pts = offset // 8
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def make_glb(path: Path) -> Path:
    document = json.dumps({"asset": {"version": "2.0"}}).encode()
    document += b" " * (-len(document) % 4)
    header = struct.pack("<4sII", b"glTF", 2, 20 + len(document)) + struct.pack(
        "<I4s", len(document), b"JSON"
    )
    path.write_bytes(header + document)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    runs, size = args.runs, args.size

    with tempfile.TemporaryDirectory(prefix="pixsim-thumbs-") as tmp:
        root = Path(tmp)
        print("generating sources ...", file=sys.stderr)
        video = render.text_to_video(
            root / "clip.mp4", "a lighthouse at dusk", 7, duration_sec=4, size=(1920, 1080), fps=24
        )
        png = render.text_to_image(root / "still.png", "a red fox in snow", 3, size=(2048, 2048))
        photo = make_photo(root / "photo.jpg", png)
        wav = make_audio(root / "song.wav", "pcm_s16le")
        m4a = make_audio(root / "song.m4a", "aac")
        glb = make_glb(root / "model.glb")
        sources = {
            "video_1080p_h264": (video, MediaType.VIDEO),
            "image_jpeg_24mp": (photo, MediaType.IMAGE),
            "image_png_2048": (png, MediaType.IMAGE),
            "audio_wav_4min": (wav, MediaType.AUDIO),
            "audio_aac_4min": (m4a, MediaType.AUDIO),
            "model_glb": (glb, MediaType.MODEL_3D),
        }

        result: dict[str, object] = {"runs": runs, "size": size, "cpus": os.cpu_count()}
        result["source_bytes"] = {name: path.stat().st_size for name, (path, _) in sources.items()}
        render_ms: dict[str, float] = {}
        for name, (path, kind) in sources.items():
            render_ms[name] = median_ms(runs, lambda p=path, k=kind: render_thumbnail(p, k, size))  # type: ignore[misc]
        render_ms["scrub_strip_8_video_1080p"] = median_ms(runs, lambda: render_scrub_strip(video, 8, size))
        result["render_ms"] = render_ms

        # The cache: what put() writes (WebP) against JPEG, for the same thumbnails.
        store = ThumbnailStore(root / "thumbs")
        thumbs = {name: render_thumbnail(path, kind, size) for name, (path, kind) in sources.items()}
        formats: dict[str, dict[str, float]] = {}
        for label, options in {
            "jpeg_q85": {"format": "JPEG", "quality": 85, "optimize": True},
            "webp_q80": {"format": "WEBP", "quality": 80, "method": 4},
        }.items():
            encoded = {}
            encode_ms = []
            for name, thumb in thumbs.items():
                buffer = io.BytesIO()
                encode_ms.append(median_ms(runs, lambda t=thumb, o=options: t.save(io.BytesIO(), **o)))  # type: ignore[misc]
                thumb.save(buffer, **options)  # type: ignore[arg-type]
                encoded[name] = buffer.getvalue()
            decode_ms = [median_ms(max(runs, 50), lambda d=data: decode(d)) for data in encoded.values()]  # type: ignore[misc]
            qt_ms = [median_ms(max(runs, 50), lambda d=data: qt_decode(d)) for data in encoded.values()]  # type: ignore[misc]
            photo_like = [n for n in thumbs if n.startswith(("video", "image"))]
            formats[label] = {
                "mean_bytes_photo_like": round(statistics.mean(len(encoded[n]) for n in photo_like)),
                "mean_bytes_all": round(statistics.mean(len(data) for data in encoded.values())),
                "median_encode_ms": round(statistics.median(encode_ms), 3),
                "median_decode_ms": round(statistics.median(decode_ms), 3),
                "median_qt_decode_ms": round(statistics.median(qt_ms), 3),
            }
        result["cache_formats"] = formats

        sha = "ab" * 32
        cached = store.put(sha, THUMB_KIND, size, thumbs["image_jpeg_24mp"])
        result["cached_thumbnail_load_ms"] = median_ms(max(runs, 50), lambda: decode(cached))
        result["cached_thumbnail_qt_load_ms"] = median_ms(
            max(runs, 50), lambda: qt_decode(cached.read_bytes())
        )
        result["store_put_ms"] = median_ms(
            runs, lambda: store.put(sha, THUMB_KIND, size, thumbs["video_1080p_h264"])
        )
        result["baseline_full_decode_ms"] = {
            "image_jpeg_24mp": median_ms(runs, lambda: decode(photo)),
            "image_png_2048": median_ms(runs, lambda: decode(png)),
        }

    for key, value in result.items():
        print(f"{key}: {value}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
