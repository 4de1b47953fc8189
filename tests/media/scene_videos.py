"""Real H.264 videos with known cuts, fades and flashes, drawn with numpy and encoded with PyAV.

Each video is a list of shots; a shot paints frame pictures from its own local time. Hard cuts are
where one shot ends and the next begins, so their times are exact multiples of the frame duration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

Picture = npt.NDArray[np.uint8]
Painter = Callable[[float], Picture]
Size = tuple[int, int]


@dataclass(frozen=True)
class Shot:
    seconds: float
    paint: Painter


def solid(size: Size, rgb: tuple[int, int, int]) -> Painter:
    width, height = size
    picture = np.empty((height, width, 3), np.uint8)
    picture[:] = rgb

    def paint(_: float) -> Picture:
        return picture

    return paint


def moving(size: Size, seed: int, *, speed: float = 40.0) -> Painter:
    """A two-colour gradient with a textured square gliding across it and a bright disc orbiting: what
    a real shot changes sample to sample (motion), while its palette and layout stay its own."""
    width, height = size
    rng = np.random.default_rng(seed)
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    ramp = np.linspace(0.0, 1.0, height)[:, None, None]
    background = (top * (1 - ramp) + bottom * ramp).repeat(width, axis=1).astype(np.float32)
    tile = rng.integers(0, 256, (height // 3, height // 3, 3)).astype(np.float32)
    tile = np.kron(tile[::6, ::6], np.ones((6, 6, 1)))[: height // 3, : height // 3]
    disc_colour = rng.integers(128, 256, 3).astype(np.float32)
    ys, xs = np.mgrid[0:height, 0:width]

    def paint(t: float) -> Picture:
        picture = background.copy()
        side = tile.shape[0]
        x = int(t * speed) % max(1, width - side)
        y = height // 3
        picture[y : y + side, x : x + tile.shape[1]] = tile[:, : min(tile.shape[1], width - x)]
        cx = width / 2 + width / 4 * np.cos(t * 2.0)
        cy = height / 2 + height / 4 * np.sin(t * 2.0)
        picture[(xs - cx) ** 2 + (ys - cy) ** 2 < (height / 8) ** 2] = disc_colour
        return picture.clip(0, 255).astype(np.uint8)

    return paint


def dissolve(first: Painter, second: Painter, seconds: float) -> Painter:
    """A cross-fade from ``first`` to ``second`` over ``seconds``."""

    def paint(t: float) -> Picture:
        mix = min(1.0, max(0.0, t / seconds))
        blended = first(t).astype(np.float32) * (1 - mix) + second(t).astype(np.float32) * mix
        return blended.astype(np.uint8)

    return paint


def faded_in(paint_shot: Painter, seconds: float) -> Painter:
    """``paint_shot`` rising out of black over ``seconds``."""

    def paint(t: float) -> Picture:
        level = min(1.0, t / seconds)
        return (paint_shot(t).astype(np.float32) * level).astype(np.uint8)

    return paint


def noisy(paint_shot: Painter, amplitude: int, seed: int = 7) -> Painter:
    """``paint_shot`` with fresh random noise of ± ``amplitude`` on every frame (sensor grain)."""
    rng = np.random.default_rng(seed)

    def paint(t: float) -> Picture:
        picture = paint_shot(t).astype(np.int16)
        grain = rng.integers(-amplitude, amplitude + 1, picture.shape[:2], dtype=np.int16)[:, :, None]
        return (picture + grain).clip(0, 255).astype(np.uint8)

    return paint


def flashed(paint_shot: Painter, at: float, frames: int, fps: int) -> Painter:
    """``paint_shot`` with ``frames`` white frames from ``at`` seconds (a photographer's flash)."""

    def paint(t: float) -> Picture:
        if at <= t < at + frames / fps - 1e-9:
            return np.full_like(paint_shot(t), 250)
        return paint_shot(t)

    return paint


def write_video(
    path: Path, shots: Sequence[Shot], *, size: Size = (320, 180), fps: int = 24, bframes: bool = False
) -> list[float]:
    """Encode the shots one after another into an MP4 at ``path``; the times (s) where shots 2.. begin."""
    cuts: list[float] = []
    index = 0
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        # bframes=False: every frame a reference frame (short tests); True: x264's usual B-frames.
        stream.options = {"preset": "ultrafast" if not bframes else "veryfast", "threads": "1"}
        if bframes:
            stream.options = {**stream.options, "bf": "3"}
        for number, shot in enumerate(shots):
            if number:
                cuts.append(index / fps)
            for local in range(round(shot.seconds * fps)):
                frame = av.VideoFrame.from_ndarray(shot.paint(local / fps), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
                index += 1
        for packet in stream.encode():
            container.mux(packet)
    return cuts
