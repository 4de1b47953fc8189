"""Procedural renders for the offline Sandbox: real H.264 MP4 and PNG files drawn with Pillow and encoded
with PyAV, written atomically, and byte-identical for the same inputs and seed on the same installation.

Pure functions over Pillow images; nothing here knows about providers, jobs or the library. Video
functions take an optional ``cancelled`` callable, checked before each frame (``TransferCancelled``).
"""

from __future__ import annotations

import colorsys
import functools
import math
import os
import random
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from core.errors import TransferCancelled

Size = tuple[int, int]
Rate = int | Fraction
Cancelled = Callable[[], bool]
RGB = tuple[int, int, int]

DEFAULT_SIZE: Size = (640, 360)
DEFAULT_FPS = 24
# Camera moves a storyboard keyframe's ``action`` may name; any other action drifts gently.
ACTIONS = ("zoom_in", "zoom_out", "pan_left", "pan_right", "pan_up", "pan_down")

# No encoder version or wall-clock time in the file (re-renders are byte-identical), and the index at the
# front so players and probes start without reading to the end.
_MUX_OPTIONS = {"movflags": "+faststart", "fflags": "+bitexact"}
# x264's output depends on its thread count, so the count is fixed rather than chosen per machine. One
# encoder thread is enough: frames are drawn while the previous one is encoded (see _write_video).
_X264_OPTIONS = {"preset": "veryfast", "crf": "21", "threads": "1"}
_SANDBOX_LABEL = "SANDBOX"


@dataclass(frozen=True)
class Keyframe:
    """A storyboard image that the video shows exactly at ``frame``, then moves per ``action``."""

    frame: int
    image: Image.Image
    action: str | None = None


def frame_count(duration_sec: float, fps: Rate) -> int:
    """How many frames a video of ``duration_sec`` at ``fps`` has (at least one)."""
    return max(1, round(duration_sec * fps))


# -- public renders ---------------------------------------------------------------------------------


def text_to_video(
    out: Path,
    prompt: str,
    seed: int,
    *,
    duration_sec: float = 3,
    size: Size = DEFAULT_SIZE,
    fps: Rate = DEFAULT_FPS,
    cancelled: Cancelled | None = None,
) -> Path:
    """Drifting gradients and floating shapes coloured from the seed, with the prompt as a caption."""
    rng = _rng(seed, prompt)
    scene = _Scene(size, rng)
    caption = _Caption(size, prompt, seed)

    def frame(index: int) -> Image.Image:
        t = _seconds(index, fps)
        image = scene.frame(t)
        caption.draw(image, _ease(min(1.0, t / 0.5)))
        return image

    return _write_video(out, frame_count(duration_sec, fps), frame, size, fps, cancelled)


def image_to_video(
    out: Path,
    image: Image.Image,
    prompt: str,
    seed: int,
    *,
    duration_sec: float = 3,
    size: Size = DEFAULT_SIZE,
    fps: Rate = DEFAULT_FPS,
    cancelled: Cancelled | None = None,
) -> Path:
    """The still brought to life: a slow zoom and pan (Ken Burns) under drifting light and sparks."""
    rng = _rng(seed, prompt)
    still = _Still(image, size)
    scene = _Scene(size, rng, shapes=False)
    caption = _Caption(size, prompt, seed)
    count = frame_count(duration_sec, fps)
    deepest = 1 + rng.uniform(0.12, 0.22)
    zoom_in = rng.random() < 0.7
    drift = _direction(rng)

    def frame(index: int) -> Image.Image:
        t = _seconds(index, fps)
        eased = _ease(index / max(1, count - 1))
        zoom = 1 + (deepest - 1) * (eased if zoom_in else 1 - eased)
        picture = still.view(zoom, drift)
        scene.decorate(picture, t, 0.6)
        caption.draw(picture, _ease(min(1.0, t / 0.5)))
        return picture

    return _write_video(out, count, frame, size, fps, cancelled)


def extend(
    out: Path,
    first_frame: Image.Image,
    prompt: str,
    seed: int,
    *,
    duration_sec: float = 3,
    fps: Rate = DEFAULT_FPS,
    size: Size | None = None,
    cancelled: Cancelled | None = None,
) -> Path:
    """A continuation: its first frame is ``first_frame``; the camera then pushes on while the seed's
    colours, light and caption fade in. ``size`` defaults to the frame's own."""
    size = size or first_frame.size
    rng = _rng(seed, prompt)
    still = _Still(first_frame, size)
    scene = _Scene(size, rng, shapes=False)
    caption = _Caption(size, prompt, seed)
    count = frame_count(duration_sec, fps)
    deepest = 1 + rng.uniform(0.15, 0.3)
    drift = _direction(rng)

    def frame(index: int) -> Image.Image:
        if index == 0:
            return still.base.copy()
        t = _seconds(index, fps)
        eased = _ease(index / max(1, count - 1))
        picture = still.view(1 + (deepest - 1) * eased, drift)
        picture = Image.blend(picture, scene.background(t), 0.25 * eased)
        scene.decorate(picture, t, 0.6 * eased)
        caption.draw(picture, _ease(min(1.0, t / 0.8)))
        return picture

    return _write_video(out, count, frame, size, fps, cancelled)


def transition(
    out: Path,
    first: Image.Image,
    last: Image.Image,
    prompt: str,
    seed: int,
    *,
    duration_sec: float = 3,
    size: Size = DEFAULT_SIZE,
    fps: Rate = DEFAULT_FPS,
    cancelled: Cancelled | None = None,
) -> Path:
    """From ``first`` (the first frame, exactly) to ``last`` (the last frame): one image pushes in and
    slides away while the other settles, crossfading, with the seed's shapes sweeping through."""
    rng = _rng(seed, prompt)
    start, end = _Still(first, size), _Still(last, size)
    scene = _Scene(size, rng)
    caption = _Caption(size, prompt, seed)
    count = max(2, frame_count(duration_sec, fps))
    drift = _direction(rng)
    against = (-drift[0], -drift[1])

    def frame(index: int) -> Image.Image:
        if index == 0:
            return start.base.copy()
        if index == count - 1:
            return end.base.copy()
        u = index / (count - 1)
        eased = _ease(u)
        leaving = start.view(1 + 0.2 * eased, drift)
        arriving = end.view(1.2 - 0.2 * eased, against)
        picture = Image.blend(leaving, arriving, eased)
        envelope = math.sin(math.pi * u)
        scene.decorate(picture, _seconds(index, fps), 0.8 * envelope)
        caption.draw(picture, envelope)
        return picture

    return _write_video(out, count, frame, size, fps, cancelled)


def storyboard(
    out: Path,
    keyframes: Sequence[Keyframe],
    prompt: str,
    seed: int,
    *,
    duration_sec: float = 3,
    size: Size = DEFAULT_SIZE,
    fps: Rate = DEFAULT_FPS,
    cancelled: Cancelled | None = None,
) -> Path:
    """A video in which each keyframe's image is the frame at its index, crossfading from one to the
    next; before the first keyframe the seed's scene (with the prompt) fades into it, and each keyframe
    moves per its action (``ACTIONS``) once reached."""
    count = frame_count(duration_sec, fps)
    frames = [k.frame for k in keyframes]
    if not keyframes or frames != sorted(set(frames)) or frames[0] < 0 or frames[-1] >= count:
        raise ValueError(f"keyframes need distinct, increasing frames within 0..{count - 1}, got {frames}")
    rng = _rng(seed, prompt)
    stills = [_Still(k.image, size) for k in keyframes]
    scene = _Scene(size, rng)
    caption = _Caption(size, prompt, seed)

    def moved(k: int, index: int) -> Image.Image:
        seconds = _seconds(index - frames[k], fps)
        if seconds <= 0:
            return stills[k].base.copy()
        action = keyframes[k].action
        if action == "zoom_out":
            return stills[k].view(1 / (1 + 0.1 * seconds), backdrop=lambda: scene.frame(_seconds(index, fps)))
        if action in _PANS:
            return stills[k].view(1 + 0.08 * seconds, _PANS[action], pan_fully=True)
        return stills[k].view(1 + (0.1 if action == "zoom_in" else 0.04) * seconds)

    def frame(index: int) -> Image.Image:
        if index < frames[0]:
            mix = _ease(index / frames[0])
            picture = Image.blend(scene.frame(_seconds(index, fps)), stills[0].base, mix)
            caption.draw(picture, 1 - mix)
            return picture
        k = max(i for i, at in enumerate(frames) if at <= index)
        current = moved(k, index)
        if k == len(frames) - 1 or index == frames[k]:
            return current
        mix = _ease((index - frames[k]) / (frames[k + 1] - frames[k]))
        return Image.blend(current, stills[k + 1].base, mix)

    return _write_video(out, count, frame, size, fps, cancelled)


def text_to_image(out: Path, prompt: str, seed: int, *, size: Size = DEFAULT_SIZE) -> Path:
    """A PNG: one moment of the seed's scene with the prompt as a caption."""
    rng = _rng(seed, prompt)
    scene = _Scene(size, rng)
    caption = _Caption(size, prompt, seed)
    picture = scene.frame(rng.uniform(0.5, 4.0))
    caption.draw(picture, 1.0)
    with _atomic(out) as partial:
        picture.save(partial, format="PNG")
    return out


# -- output ------------------------------------------------------------------------------------------


@contextmanager
def _atomic(out: Path) -> Iterator[Path]:
    """A temporary path beside ``out``; on success it is flushed to disk and renamed to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")
    os.close(handle)
    partial = Path(name)
    try:
        yield partial
        with partial.open("rb+") as written:
            os.fsync(written.fileno())
        partial.replace(out)  # atomic (os.replace)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _fsync_directory(out.parent)


def _fsync_directory(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows cannot open directories; its rename is durable enough
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _write_video(
    out: Path,
    count: int,
    render_frame: Callable[[int], Image.Image],
    size: Size,
    fps: Rate,
    cancelled: Cancelled | None,
) -> Path:
    width, height = size
    if width % 2 or height % 2 or width < 16 or height < 16:
        raise ValueError(f"a video needs even dimensions of at least 16 px, got {width}x{height}")
    rate = Fraction(fps)
    with _atomic(out) as partial, av.open(str(partial), "w", format="mp4", options=_MUX_OPTIONS) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        # A keyframe every two seconds keeps seeking (frame_at, players) quick.
        stream.options = {**_X264_OPTIONS, "g": str(max(1, round(2 * rate)))}

        def encode(index: int, picture: Image.Image) -> None:
            frame = av.VideoFrame.from_image(picture)  # type: ignore[no-untyped-call]
            frame.pts = index
            frame.time_base = 1 / rate
            container.mux(stream.encode(frame))

        # Draw the next frame while the previous one is encoded (both release the GIL); frames still
        # reach the encoder one at a time and in order, so the bytes do not depend on timing.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-encode") as encoder:
            pending: Future[None] | None = None
            for index in range(count):
                if cancelled is not None and cancelled():
                    raise TransferCancelled("The render was cancelled.")
                picture = render_frame(index)
                if pending is not None:
                    pending.result()
                pending = encoder.submit(encode, index, picture)
            if pending is not None:
                pending.result()
        container.mux(stream.encode())
    return out


# -- drawing -----------------------------------------------------------------------------------------


def _rng(seed: int, prompt: str) -> random.Random:
    # Seeding with a string hashes it with SHA-512: stable across runs, unlike hash().
    return random.Random(f"pixsim-sandbox|{seed}|{prompt}")


def _seconds(index: int, fps: Rate) -> float:
    return float(index / fps)


def _ease(u: float) -> float:
    u = min(1.0, max(0.0, u))
    return u * u * (3 - 2 * u)


def _direction(rng: random.Random) -> tuple[float, float]:
    angle = rng.uniform(0, 2 * math.pi)
    return math.cos(angle), math.sin(angle)


_PANS = {"pan_left": (-1.0, 0.0), "pan_right": (1.0, 0.0), "pan_up": (0.0, -1.0), "pan_down": (0.0, 1.0)}


def _hsv(hue: float, saturation: float, value: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


# Fades use this many opacity steps, so each mask is rescaled at most this often, not once per frame.
_FADE_STEPS = 48


@functools.cache
def _fade_table(step: int) -> tuple[int, ...]:
    return tuple(round(v * step / _FADE_STEPS) for v in range(256))


class _Fader:
    """A coverage mask and its copies at fixed opacity steps, each made on first use."""

    def __init__(self, mask: Image.Image) -> None:
        self.mask = mask
        self._steps: dict[int, Image.Image] = {}

    def at(self, opacity: float) -> Image.Image:
        step = round(min(1.0, max(0.0, opacity)) * _FADE_STEPS)
        if step == _FADE_STEPS:
            return self.mask
        faded = self._steps.get(step)
        if faded is None:
            faded = self._steps[step] = self.mask.point(_fade_table(step))
        return faded


@dataclass(frozen=True)
class _Palette:
    first: tuple[RGB, RGB, RGB]  # dark, middle and light stops of one background
    second: tuple[RGB, RGB, RGB]  # and of the other it breathes into
    accents: tuple[RGB, ...]

    @classmethod
    def from_rng(cls, rng: random.Random) -> _Palette:
        hue = rng.random()
        # Analogous, complementary, triadic or split-complementary harmonies.
        offsets = rng.choice(((0.0, 0.08, 0.16), (0.0, 0.5, 0.08), (0.0, 0.33, 0.66), (0.0, 0.42, 0.58)))
        first = (_hsv(hue, 0.85, 0.16), _hsv(hue + 0.03, 0.7, 0.5), _hsv(hue + 0.08, 0.45, 0.9))
        other = hue + offsets[1]
        second = (_hsv(other, 0.85, 0.14), _hsv(other + 0.03, 0.7, 0.46), _hsv(other + 0.08, 0.5, 0.85))
        accents = tuple(
            _hsv(hue + offset + rng.uniform(-0.03, 0.03), rng.uniform(0.5, 0.9), rng.uniform(0.85, 1.0))
            for offset in offsets
            for _ in range(2)
        )
        return cls(first, second, accents)


@dataclass(frozen=True)
class _Sprite:
    """A shape floating on a slow Lissajous path (positions are fractions of the frame)."""

    fill: Image.Image
    mask: _Fader
    x: float
    y: float
    swing_x: float
    swing_y: float
    rate_x: float  # swings per second
    rate_y: float
    phase_x: float
    phase_y: float
    spin: float  # degrees per second
    angle: float

    def place(self, picture: Image.Image, t: float, strength: float) -> None:
        width, height = picture.size
        cx = width * (self.x + self.swing_x * math.sin(2 * math.pi * self.rate_x * t + self.phase_x))
        cy = height * (self.y + self.swing_y * math.sin(2 * math.pi * self.rate_y * t + self.phase_y))
        mask = self.mask.at(strength)
        if self.spin:
            mask = mask.rotate(self.angle + self.spin * t, resample=Image.Resampling.BICUBIC)
        corner = (round(cx - mask.width / 2), round(cy - mask.height / 2))
        picture.paste(self.fill, corner, mask)


@dataclass(frozen=True)
class _Spark:
    x: float
    y: float
    rise: float  # frame heights per second
    sway: float
    rate: float
    phase: float
    mask: _Fader


class _Scene:
    """A seed's procedural animation: two gradients breathing into each other under a drifting camera,
    floating shapes (or soft orbs only), rising sparks and a vignette. Time ``t`` is in seconds."""

    _OVERSCAN = 1.15

    def __init__(self, size: Size, rng: random.Random, *, shapes: bool = True) -> None:
        self.size = size
        width, height = size
        palette = _Palette.from_rng(rng)
        wide = (math.ceil(width * self._OVERSCAN), math.ceil(height * self._OVERSCAN))
        self._first = _gradient(wide, palette.first, rng.uniform(0, 360), rng, palette.accents[0])
        self._second = _gradient(wide, palette.second, rng.uniform(0, 360), rng, palette.accents[-1])
        self._breath = (rng.uniform(0.08, 0.16), rng.uniform(0, 2 * math.pi))
        self._pan = (rng.uniform(0.04, 0.09), rng.uniform(0.05, 0.1), rng.uniform(0, 2 * math.pi))
        kinds = ("orb", "disc", "ring", "square", "triangle", "orb") if shapes else ("orb",)
        self._sprites = [self._sprite(rng, rng.choice(kinds), palette) for _ in range(rng.randint(6, 9))]
        sparks = [_Fader(_soft_dot(max(2, round(height * r)))) for r in (0.008, 0.012, 0.018)]
        self._sparks = [
            _Spark(
                rng.random(),
                rng.random(),
                rng.uniform(0.03, 0.09),
                rng.uniform(0.005, 0.02),
                rng.uniform(0.2, 0.6),
                rng.uniform(0, 2 * math.pi),
                rng.choice(sparks),
            )
            for _ in range(28)
        ]
        self._spark_colour = tuple(round((c + 255 * 2) / 3) for c in palette.accents[1])
        self._vignette = _vignette(size)

    def _sprite(self, rng: random.Random, kind: str, palette: _Palette) -> _Sprite:
        height = self.size[1]
        diameter = max(8, round(height * rng.uniform(0.16, 0.42 if kind == "orb" else 0.3)))
        colour = rng.choice(palette.accents)
        light = tuple(min(255, round(c * 0.6 + 255 * 0.4)) for c in colour)
        fill = ImageOps.colorize(
            Image.linear_gradient("L").resize((diameter, diameter)), black=colour, white=light
        ).transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        opacity = rng.uniform(0.35, 0.6) if kind == "orb" else rng.uniform(0.6, 0.9)
        spins = kind in ("square", "triangle")
        return _Sprite(
            fill=fill,
            mask=_Fader(_Fader(_shape(kind, diameter)).at(opacity)),
            x=rng.uniform(0.1, 0.9),
            y=rng.uniform(0.15, 0.75),
            swing_x=rng.uniform(0.05, 0.22),
            swing_y=rng.uniform(0.04, 0.15),
            rate_x=rng.uniform(0.04, 0.16),
            rate_y=rng.uniform(0.05, 0.18),
            phase_x=rng.uniform(0, 2 * math.pi),
            phase_y=rng.uniform(0, 2 * math.pi),
            spin=rng.uniform(-40, 40) if spins else 0.0,
            angle=rng.uniform(0, 360),
        )

    def background(self, t: float) -> Image.Image:
        width, height = self.size
        rate_x, rate_y, pan_phase = self._pan
        spare_x, spare_y = self._first.width - width, self._first.height - height
        # Whole-pixel steps: on smooth gradients they are invisible, and a crop costs far less than resampling.
        left = round(spare_x * (0.5 + 0.5 * math.sin(2 * math.pi * rate_x * t + pan_phase)))
        top = round(spare_y * (0.5 + 0.5 * math.cos(2 * math.pi * rate_y * t + pan_phase)))
        box = (left, top, left + width, top + height)
        rate, phase = self._breath
        mix = 0.5 + 0.5 * math.sin(2 * math.pi * rate * t + phase)
        return Image.blend(self._first.crop(box), self._second.crop(box), mix)

    def decorate(self, picture: Image.Image, t: float, strength: float = 1.0) -> None:
        """Draw the shapes and sparks onto ``picture`` at ``strength`` (0: nothing, 1: full)."""
        if strength <= 0.004:
            return
        for sprite in self._sprites:
            sprite.place(picture, t, strength)
        width, height = picture.size
        for spark in self._sparks:
            twinkle = 0.55 + 0.45 * math.sin(2 * math.pi * spark.rate * t * 3 + spark.phase)
            y = ((spark.y - spark.rise * t) % 1.1 - 0.05) * height
            x = (spark.x + spark.sway * math.sin(2 * math.pi * spark.rate * t + spark.phase)) * width
            mask = spark.mask.at(strength * twinkle)
            picture.paste(self._spark_colour, (round(x - mask.width / 2), round(y - mask.height / 2)), mask)

    def frame(self, t: float) -> Image.Image:
        picture = self.background(t)
        self.decorate(picture, t)
        picture.paste((0, 0, 0), (0, 0), self._vignette)
        return picture


def _gradient(
    size: Size, stops: tuple[RGB, RGB, RGB], angle: float, rng: random.Random, glow: RGB
) -> Image.Image:
    """A three-stop linear gradient at ``angle`` degrees with a soft glow of light."""
    width, height = size
    side = math.ceil(math.hypot(width, height))
    ramp = Image.linear_gradient("L").resize((side, side), Image.Resampling.BILINEAR)
    ramp = ramp.rotate(angle, resample=Image.Resampling.BILINEAR)
    left, top = (side - width) // 2, (side - height) // 2
    ramp = ramp.crop((left, top, left + width, top + height))
    picture = ImageOps.colorize(ramp, black=stops[0], white=stops[2], mid=stops[1])
    radius = round(max(width, height) * rng.uniform(0.5, 0.8))
    # Pillow's radial gradient is 0 at the centre and about 180 at the middle of each edge.
    light = Image.radial_gradient("L").resize((radius, radius), Image.Resampling.BILINEAR)
    light = light.point([round(160 * max(0.0, 1 - v / 178) ** 2) for v in range(256)])
    centre = (rng.uniform(0.15, 0.85) * width, rng.uniform(0.1, 0.6) * height)
    picture.paste(glow, (round(centre[0] - radius / 2), round(centre[1] - radius / 2)), light)
    return picture


def _shape(kind: str, diameter: int) -> Image.Image:
    """An antialiased coverage mask (drawn at 4x, then reduced) of one shape, inside its inscribed circle."""
    big = diameter * 4
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    if kind == "orb":
        inset = big * 0.22
        draw.ellipse((inset, inset, big - inset, big - inset), fill=255)
    elif kind == "disc":
        inset = big * 0.1
        draw.ellipse((inset, inset, big - inset, big - inset), fill=255)
    elif kind == "ring":
        inset = big * 0.1
        draw.ellipse((inset, inset, big - inset, big - inset), outline=255, width=max(1, round(big * 0.07)))
    elif kind == "square":
        inset = big * 0.16
        draw.rounded_rectangle((inset, inset, big - inset, big - inset), radius=big * 0.1, fill=255)
    else:
        radius, centre = big * 0.44, big / 2
        points = [
            (centre + radius * math.cos(a), centre + radius * math.sin(a))
            for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)
        ]
        draw.polygon(points, fill=255)
    reduced = mask.resize((diameter, diameter), Image.Resampling.LANCZOS)
    if kind == "orb":
        reduced = reduced.filter(ImageFilter.GaussianBlur(diameter * 0.1))
    return reduced


def _soft_dot(diameter: int) -> Image.Image:
    size = diameter * 3
    dot = Image.new("L", (size, size), 0)
    ImageDraw.Draw(dot).ellipse((diameter, diameter, 2 * diameter, 2 * diameter), fill=255)
    return dot.filter(ImageFilter.GaussianBlur(diameter * 0.45))


def _vignette(size: Size) -> Image.Image:
    """How much to darken each pixel: nothing in the middle, a little towards the corners."""
    width, height = size
    ramp = Image.radial_gradient("L").resize((width, height), Image.Resampling.BILINEAR)
    return ramp.point([round(min(1.0, max(0.0, (v - 150) / 130)) ** 1.5 * 120) for v in range(256)])


class _Still:
    """A picture under a camera: cropped to the frame's aspect; zoom ≥ 1 moves in, zoom < 1 shows it
    smaller over a backdrop. At zoom 1, centred, it is exactly ``base`` (the picture fitted to the frame)."""

    # Sources larger than this many times the frame are reduced once, so each frame resamples less.
    _MAX_SCALE = 1.5

    def __init__(self, picture: Image.Image, size: Size) -> None:
        self.size = size
        rgb = picture if picture.mode == "RGB" else picture.convert("RGB")
        self.base = ImageOps.fit(rgb, size, Image.Resampling.LANCZOS)
        width, height = size
        aspect = width / height
        crop_width = min(rgb.width, rgb.height * aspect)
        crop_height = crop_width / aspect
        left, top = (rgb.width - crop_width) / 2, (rgb.height - crop_height) / 2
        box = (round(left), round(top), round(left + crop_width), round(top + crop_height))
        source = rgb.crop(box)
        if source.width > width * self._MAX_SCALE:
            limit = (round(width * self._MAX_SCALE), round(height * self._MAX_SCALE))
            source = source.resize(limit, Image.Resampling.LANCZOS)
        self.source = source

    def view(
        self,
        zoom: float = 1.0,
        drift: tuple[float, float] = (0.0, 0.0),
        *,
        pan_fully: bool = False,
        backdrop: Callable[[], Image.Image] | None = None,
    ) -> Image.Image:
        """The frame at ``zoom``, the view's centre moved along ``drift`` by part (or, with ``pan_fully``,
        all) of the room the zoom leaves."""
        width, height = self.size
        if zoom < 1:
            canvas = backdrop() if backdrop is not None else Image.new("RGB", self.size)
            small = self.base.resize((max(1, round(width * zoom)), max(1, round(height * zoom))))
            canvas.paste(small, ((width - small.width) // 2, (height - small.height) // 2))
            return canvas
        if zoom == 1:
            return self.base.copy()
        source_width, source_height = self.source.size
        box_width, box_height = source_width / zoom, source_height / zoom
        reach = 1.0 if pan_fully else 0.8
        left = (source_width - box_width) / 2 * (1 + reach * drift[0])
        top = (source_height - box_height) / 2 * (1 + reach * drift[1])
        return self.source.resize(
            self.size, Image.Resampling.BILINEAR, box=(left, top, left + box_width, top + box_height)
        )


class _Caption:
    """The prompt, wrapped on a translucent band at the bottom, and a small "SANDBOX · seed" label."""

    def __init__(self, size: Size, prompt: str, seed: int) -> None:
        width, height = size
        self._size = size
        font_px = max(8, round(height * 0.05))
        font = ImageFont.load_default(size=font_px)
        lines = _wrap(" ".join(prompt.split()), font, width * 0.84, max_lines=3)
        self._band: tuple[tuple[int, int], _Fader] | None = None
        self._text: tuple[tuple[int, int], _Fader] | None = None
        if lines:
            spacing = round(font_px * 0.3)
            line_height = font_px + spacing
            text_width = math.ceil(max(font.getlength(line) for line in lines))
            pad = round(font_px * 0.6)
            box = (text_width + 2 * pad, line_height * len(lines) - spacing + 2 * pad)
            corner = ((width - box[0]) // 2, height - box[1] - round(height * 0.06))
            band = Image.new("L", box, 0)
            ImageDraw.Draw(band).rounded_rectangle((0, 0, box[0] - 1, box[1] - 1), radius=pad, fill=130)
            text = Image.new("L", box, 0)
            draw = ImageDraw.Draw(text)
            for row, line in enumerate(lines):
                x = (box[0] - font.getlength(line)) / 2
                draw.text((x, pad + row * line_height), line, fill=255, font=font)
            self._band, self._text = (corner, _Fader(band)), (corner, _Fader(text))
        small_px = max(7, round(height * 0.032))
        small = ImageFont.load_default(size=small_px)
        label = f"{_SANDBOX_LABEL} · seed {seed}"
        tag = Image.new("L", (math.ceil(small.getlength(label)) + 2, small_px + 6), 0)
        ImageDraw.Draw(tag).text((1, 1), label, fill=190, font=small)
        margin = max(4, round(height * 0.035))
        self._tag = ((margin, margin), _Fader(tag))

    def draw(self, picture: Image.Image, alpha: float) -> None:
        if alpha <= 0.004:
            return
        if self._band is not None and self._text is not None:
            picture.paste((0, 0, 0), self._band[0], self._band[1].at(alpha))
            picture.paste((255, 255, 255), self._text[0], self._text[1].at(alpha))
        picture.paste((255, 255, 255), self._tag[0], self._tag[1].at(alpha))


def _wrap(
    text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: float, max_lines: int
) -> list[str]:
    """``text`` broken into lines no wider than ``width``; an ellipsis ends it when it does not fit."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if font.getlength(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        while len(word) > 1 and font.getlength(word) > width:  # a word longer than a line
            cut = next((n for n in range(len(word) - 1, 0, -1) if font.getlength(word[:n]) <= width), 1)
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        return _ellipsize(lines[:max_lines], font, width)
    return lines


def _ellipsize(
    lines: list[str], font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: float
) -> list[str]:
    last = lines[-1]
    while last and font.getlength(last + "…") > width:
        last = last[:-1]
    return [*lines[:-1], last.rstrip() + "…"]
