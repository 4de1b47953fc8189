"""Media tests, and a video whose frames are easy to tell apart (shared with the provider tests)."""

from __future__ import annotations

import colorsys
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageChops, ImageDraw, ImageStat


def numbered_frame(index: int, count: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """Frame ``index`` of ``count``: its own hue, and a white square that crosses the frame."""
    width, height = size
    r, g, b = colorsys.hsv_to_rgb(index / count, 0.8, 0.8)
    image = Image.new("RGB", size, (round(r * 255), round(g * 255), round(b * 255)))
    side = height // 3
    left = round(index * (width - side) / max(1, count - 1))
    ImageDraw.Draw(image).rectangle(
        (left, height // 3, left + side - 1, height // 3 + side - 1), fill="white"
    )
    return image


def numbered_video(path: Path, count: int = 24, fps: int = 12, size: tuple[int, int] = (64, 48)) -> Path:
    """An H.264 MP4 of ``numbered_frame`` 0..count-1, a keyframe every 5 frames (so seeks land mid-video)."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "8", "g": "5", "threads": "1"}
        for index in range(count):
            frame = av.VideoFrame.from_image(numbered_frame(index, count, size))
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two same-sized images, per channel value (0..255)."""
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    return sum(ImageStat.Stat(diff).mean) / 3
