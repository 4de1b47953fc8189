"""Small, real media files for fakes and tests (decodable by PyAV and Pillow), deterministic per seed."""

from __future__ import annotations

import io
import random
from fractions import Fraction

import av
import numpy as np
from PIL import Image


def _colour(seed: int) -> tuple[int, int, int]:
    rng = random.Random(seed)
    return rng.randrange(256), rng.randrange(256), rng.randrange(256)


def tiny_png(seed: int = 0, size: tuple[int, int] = (64, 48)) -> bytes:
    """A PNG of one colour chosen by seed."""
    buffer = io.BytesIO()
    Image.new("RGB", size, _colour(seed)).save(buffer, format="PNG")
    return buffer.getvalue()


def tiny_mp4(
    seed: int = 0,
    seconds: float = 1.0,
    size: tuple[int, int] = (64, 48),
    fps: int = 12,
    *,
    audio: bool = False,
) -> bytes:
    """An H.264 MP4 whose frames fade from one seed colour towards another.

    With ``audio``, an interleaved AAC track (48 kHz mono): silence for the first half of the video,
    then a 440 Hz tone, so a test can tell where in the source a piece of sound came from.
    """
    buffer = io.BytesIO()
    start, end = _colour(seed), _colour(seed + 1000)
    frames = max(1, round(seconds * fps))
    rate = 48_000
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        sound = container.add_stream("aac", rate=rate) if audio else None
        if sound is not None:
            sound.layout = "mono"
        samples_done = 0
        for index in range(frames):
            t = index / max(1, frames - 1)
            rgb = tuple(round(a + (b - a) * t) for a, b in zip(start, end, strict=True))
            image = Image.new("RGB", size, rgb)
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                container.mux(packet)
            if sound is not None:
                upto = round((index + 1) / fps * rate)
                at = np.arange(samples_done, upto)
                wave = np.where(at >= frames / fps / 2 * rate, 0.5 * np.sin(2 * np.pi * 440 * at / rate), 0.0)
                chunk = av.AudioFrame.from_ndarray(
                    wave.astype(np.float32)[None, :], format="fltp", layout="mono"
                )
                chunk.sample_rate, chunk.pts, chunk.time_base = rate, samples_done, Fraction(1, rate)
                for packet in sound.encode(chunk):
                    container.mux(packet)
                samples_done = upto
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            for packet in sound.encode(None):
                container.mux(packet)
    return buffer.getvalue()
