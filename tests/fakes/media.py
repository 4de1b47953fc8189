"""Small, real media files for fakes and tests (decodable by PyAV and Pillow), deterministic per seed."""

from __future__ import annotations

import io
import random

import av
from PIL import Image


def _colour(seed: int) -> tuple[int, int, int]:
    rng = random.Random(seed)
    return rng.randrange(256), rng.randrange(256), rng.randrange(256)


def tiny_png(seed: int = 0, size: tuple[int, int] = (64, 48)) -> bytes:
    """A PNG of one colour chosen by seed."""
    buffer = io.BytesIO()
    Image.new("RGB", size, _colour(seed)).save(buffer, format="PNG")
    return buffer.getvalue()


def tiny_mp4(seed: int = 0, seconds: float = 1.0, size: tuple[int, int] = (64, 48), fps: int = 12) -> bytes:
    """An H.264 MP4 whose frames fade from one seed colour towards another."""
    buffer = io.BytesIO()
    start, end = _colour(seed), _colour(seed + 1000)
    frames = max(1, round(seconds * fps))
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for index in range(frames):
            t = index / max(1, frames - 1)
            rgb = tuple(round(a + (b - a) * t) for a, b in zip(start, end, strict=True))
            image = Image.new("RGB", size, rgb)
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()
