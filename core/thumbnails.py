"""Thumbnails for the library grid: small pictures of videos, images, audio and 3D models rendered off the
GUI thread, cached on disk by content hash, one render per key however many cards ask for it at once.

``render_thumbnail`` and ``render_scrub_strip`` are pure and synchronous (worker threads call them);
``ThumbnailStore`` is the disk cache; ``ThumbnailService`` is what the UI awaits. The UI keeps its own
byte-bounded memory cache of decoded images (``memory_estimate`` sizes an entry).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import math
import os
import re
import struct
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import av
import av.container
import av.stream
from PIL import Image, ImageDraw, ImageFont, ImageStat, UnidentifiedImageError

from core.cache.store import check_sha256
from core.db.enums import MediaType
from core.errors import CacheError, MediaError
from core.media.probe import probe

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 256
SCRUB_FRAMES = 8
# Part of every cache key: raise it when renders change, and old files are simply never asked for again.
FORMAT_VERSION = 1
# The kind of a poster thumbnail in the cache key; a scrub strip's kind is ``scrub_kind(count)``.
THUMB_KIND = "thumb"

# Cached files are WebP (quality 80), not JPEG (quality 85). Measured on 256 px thumbnails of photos, renders
# and video frames (bench/thumbnails.py; 2 busy cores): WebP files are 45-55% the size of the JPEGs (about
# 2-3 KB against 4-6 KB, so 100,000 thumbnails take ~250 MB instead of ~500 MB) and Qt, which the grid
# decodes with, reads them as fast or a little faster (0.29-0.49 ms against 0.34-0.53 ms). Pillow decodes
# JPEG faster (0.3 against 0.6 ms) and encodes it in 0.3 ms against 3-5 ms, but a render costs 100 ms
# or more, and decoding happens far more often than encoding. Thumbnails are opaque (transparency is
# composited onto the card colour).
_SUFFIX = ".webp"
_SAVE_FORMAT = "WEBP"
_SAVE_OPTIONS: dict[str, object] = {"quality": 80, "method": 4}
_FAILED_SUFFIX = ".failed"
_KIND = re.compile(r"^[a-z][a-z0-9]{0,31}$")

# A neutral card colour: letterboxing, transparency and the drawn audio/3D pictures sit on it.
_BACKGROUND = (38, 40, 46)
_INK = (120, 190, 255)
_MUTED = (140, 146, 158)

# Pillow formats read as images (the rest have weak signatures that match other files).
_IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "AVIF", "BMP", "TIFF")
_EXIF_ORIENTATION = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# What decoders raise on damaged or unreadable data (PyAV's errors are Exceptions, some also OSErrors).
_RENDER_ERRORS: tuple[type[BaseException], ...] = (
    av.FFmpegError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    struct.error,
    Image.DecompressionBombError,
    UnidentifiedImageError,
)

# Poster candidates, as fractions of the duration: the first that is not a blank (black) frame wins.
_POSTER_AT = (0.1, 0.25, 0.5, 0.75)
_POSTER_UNKNOWN_DURATION_SEC = 1.0
# A frame this uniform and this dark is a fade or black leader, not a picture of the video.
_BLANK_MEAN = 24.0
_BLANK_STDDEV = 6.0
# Without an index to say where keyframes are, a target further ahead than this is sought, not decoded to.
_SEEK_GAP_SEC = 2.0
_TIME_EPSILON = 1e-3

# Audio waveforms: at most the first few minutes are decoded, and quiet recordings are drawn up to
# 1 / _AUDIO_MIN_PEAK times louder (silence stays flat).
_AUDIO_MAX_SEC = 180.0
_AUDIO_MIN_PEAK = 0.25


def scrub_kind(count: int) -> str:
    """The cache-key kind of a scrub strip of ``count`` frames."""
    return f"scrub{count}"


def memory_estimate(width: int, height: int) -> int:
    """Bytes a decoded ``width`` × ``height`` image takes in memory as 32-bit RGBA (what the UI caches)."""
    if width < 0 or height < 0:
        raise ValueError(f"an image size cannot be negative, got {width}×{height}")
    return width * height * 4


# -- rendering (pure, synchronous) ----------------------------------------------------------------------


def render_thumbnail(source: Path, media_type: MediaType, size: int = THUMBNAIL_SIZE) -> Image.Image:
    """An RGB picture of the file that fits inside ``size`` × ``size``, keeping its aspect ratio.

    Videos give a poster frame (10% in, skipping black frames), images a downscale (upright per EXIF),
    audio a waveform of its first minutes, 3D models a drawn icon with the format's name. Sources smaller
    than ``size`` are not enlarged. ``MediaError`` if the file cannot be read.
    """
    _check_size(size)
    source = Path(source)
    kind = MediaType(media_type)
    _check_file(source)
    render = {
        MediaType.VIDEO: _video_poster,
        MediaType.IMAGE: _image_thumbnail,
        MediaType.AUDIO: _audio_waveform,
        MediaType.MODEL_3D: _model_icon,
    }[kind]
    try:
        return render(source, size)
    except MediaError:
        raise
    except _RENDER_ERRORS as exc:
        raise _damaged(source, exc) from None


def render_scrub_strip(source: Path, count: int = SCRUB_FRAMES, size: int = THUMBNAIL_SIZE) -> Image.Image:
    """``count`` frames evenly spaced through a video, each fitted inside ``size`` × ``size``, side by side.

    Every cell has the same size: cell ``i`` is the box ``(i * w, 0, (i + 1) * w, h)`` with
    ``w = strip.width // count``. Frame ``i`` is the one shown ``(i + 0.5) / count`` of the way in.
    """
    _check_size(size)
    if count < 1:
        raise ValueError(f"a scrub strip needs at least one frame, got {count}")
    source = Path(source)
    _check_file(source)
    try:
        with _open_video(source) as (container, stream):
            duration = _duration(source, container, stream)
            times = [(index + 0.5) * duration / count for index in range(count)]
            strip: Image.Image | None = None
            cell = (0, 0)
            for index, frame in enumerate(_frames_at(container, stream, times)):
                if strip is None:  # every cell takes the first frame's shape
                    cell = _fit(_display_size(stream, frame), size)
                    strip = Image.new("RGB", (cell[0] * count, cell[1]), _BACKGROUND)
                strip.paste(_frame_image(stream, frame, cell), (index * cell[0], 0))
            if strip is None:
                raise MediaError(f"Cannot make a thumbnail of {source}: no frame could be decoded.")
            return strip
    except MediaError:
        raise
    except _RENDER_ERRORS as exc:
        raise _damaged(source, exc) from None


def render_frame(source: Path, t_sec: float, size: int = THUMBNAIL_SIZE) -> Image.Image:
    """The video's frame shown at ``t_sec`` seconds (the first starting at or after it; the last frame past
    the end), as displayed (pixel aspect, rotation), fitted inside ``size`` × ``size``. Segment keyframes
    are re-made with it when their stored picture is gone."""
    _check_size(size)
    if not math.isfinite(t_sec) or t_sec < 0:
        raise ValueError(f"a frame time must be 0 or more seconds, got {t_sec}")
    source = Path(source)
    _check_file(source)
    try:
        with _open_video(source) as (container, stream):
            for frame in _frames_at(container, stream, [t_sec]):
                return _frame_image(stream, frame, _fit(_display_size(stream, frame), size))
    except MediaError:
        raise
    except _RENDER_ERRORS as exc:
        raise _damaged(source, exc) from None
    raise MediaError(f"Cannot make a thumbnail of {source}: no frame could be decoded.")


def _check_size(size: int) -> None:
    if size < 16:
        raise ValueError(f"a thumbnail is at least 16 px, got {size}")


def _check_file(source: Path) -> None:
    try:
        if source.stat().st_size == 0:
            raise MediaError(f"Cannot make a thumbnail of {source}: the file is empty (0 bytes).")
    except FileNotFoundError:
        raise MediaError(f"Cannot make a thumbnail of {source}: the file does not exist.") from None
    except OSError as exc:
        raise MediaError(f"Cannot make a thumbnail of {source}: {exc.strerror or exc}.") from None


def _damaged(source: Path, exc: BaseException) -> MediaError:
    detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return MediaError(f"Cannot make a thumbnail of {source}: it is damaged or not readable ({detail}).")


def _fit(display: tuple[float, float], size: int) -> tuple[int, int]:
    """Pixel size of a picture of ``display`` proportions inside ``size`` × ``size``, never enlarged."""
    width, height = display
    scale = min(size / width, size / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _opaque(image: Image.Image) -> Image.Image:
    """``image`` in RGB; transparent parts show the card colour."""
    if image.mode == "RGB":
        return image
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        card = Image.new("RGBA", rgba.size, (*_BACKGROUND, 255))
        return Image.alpha_composite(card, rgba).convert("RGB")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # 16-bit and float greyscale: scale to 8 bits instead of clipping everything above 255 to white.
        grey = image.convert("F")
        low, high = _extrema(grey)
        scale = 255.0 / ((high - low) or 1.0)
        return grey.point(lambda v: v * scale - low * scale).convert("L").convert("RGB")
    return image.convert("RGB")


def _extrema(image: Image.Image) -> tuple[float, float]:
    """Lowest and highest value of a single-band image."""
    low, high = image.getextrema()
    assert isinstance(low, int | float) and isinstance(high, int | float)
    return float(low), float(high)


# -- images ---------------------------------------------------------------------------------------------


def _image_thumbnail(source: Path, size: int) -> Image.Image:
    with Image.open(source, formats=_IMAGE_FORMATS) as image:
        orientation = image.getexif().get(_EXIF_ORIENTATION)
        # JPEG can decode at 1/2, 1/4 or 1/8 scale directly (DCT scaling): a 24-megapixel photo then
        # decodes as ~0.4 megapixels. Keep twice the target so the final resample still has detail to
        # average (what Image.thumbnail's reducing_gap=2 does too).
        if image.format == "JPEG":
            image.draft(None, (2 * size, 2 * size))
        image.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0)
        picture = _opaque(image)
        if picture is image:
            picture = image.copy()  # closing the file closes the image too
    transpose = _TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
    if transpose is not None:
        picture = picture.transpose(transpose)
    return picture


# -- videos ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _open_video(source: Path) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """The container and its main video stream (not cover art), closed on exit."""
    try:
        container = av.open(str(source), metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise _damaged(source, exc) from None
    with container:
        for stream in container.streams.video:
            if stream.disposition & av.stream.Disposition.attached_pic:
                continue
            if stream.codec_context.width > 0 and stream.codec_context.height > 0:
                yield container, stream
                return
        raise MediaError(f"Cannot make a thumbnail of {source}: it has no video stream.")


def _duration(
    source: Path, container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    # No declared duration (some WebM, raw streams): probe measures it from the packets.
    measured = probe(source).duration_sec
    if not measured:
        raise MediaError(f"Cannot make a thumbnail of {source}: its duration cannot be read.")
    return measured


def _video_poster(source: Path, size: int) -> Image.Image:
    with _open_video(source) as (container, stream):
        try:
            duration = _duration(source, container, stream)
            times = [fraction * duration for fraction in _POSTER_AT]
        except MediaError:
            times = [_POSTER_UNKNOWN_DURATION_SEC]
        best: Image.Image | None = None
        best_mean = -1.0
        for frame in _frames_at(container, stream, times):
            picture = _frame_image(stream, frame, _fit(_display_size(stream, frame), size))
            stats = ImageStat.Stat(picture.convert("L"))
            mean, stddev = stats.mean[0], stats.stddev[0]
            if not (mean < _BLANK_MEAN and stddev < _BLANK_STDDEV):
                return picture
            if mean > best_mean:  # all blank: the brightest of them
                best, best_mean = picture, mean
        if best is None:
            raise MediaError(f"Cannot make a thumbnail of {source}: no frame could be decoded.")
        return best


def _rotation(frame: av.VideoFrame) -> int:
    """Counter-clockwise degrees (0, 90, 180, 270) the frame is turned when shown (phone videos)."""
    try:
        degrees = frame.rotation
    except (AttributeError, av.FFmpegError):
        return 0
    return round(degrees / 90) * 90 % 360


def _display_size(stream: av.video.stream.VideoStream, frame: av.VideoFrame) -> tuple[float, float]:
    """The frame's shape as shown: non-square pixels stretched, quarter turns applied."""
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    width = frame.width * float(sar) if sar and sar > 0 else float(frame.width)
    height = float(frame.height)
    return (height, width) if _rotation(frame) in (90, 270) else (width, height)


def _frame_image(
    stream: av.video.stream.VideoStream, frame: av.VideoFrame, size: tuple[int, int]
) -> Image.Image:
    """The frame scaled (by FFmpeg, converting to RGB in the same pass) and turned to ``size``."""
    turn = _rotation(frame)
    width, height = (size[1], size[0]) if turn in (90, 270) else size
    image: Image.Image = frame.to_image(  # type: ignore[no-untyped-call]  # untyped in PyAV's stubs
        width=width, height=height, interpolation="AREA"
    )
    if turn == 90:
        image = image.transpose(Image.Transpose.ROTATE_90)
    elif turn == 180:
        image = image.transpose(Image.Transpose.ROTATE_180)
    elif turn == 270:
        image = image.transpose(Image.Transpose.ROTATE_270)
    return image


def _frames_at(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, times: Sequence[float]
) -> Iterator[av.VideoFrame]:
    """For each of ``times`` (ascending, seconds from the start), the first frame shown at or after it, or the
    last frame when it lies past the end.

    One decoder runs forward through the targets; it seeks only when the next target's keyframe lies ahead
    of where decoding is (per the container's index), or, without an index, when the target is far ahead.
    So a short clip with one keyframe is decoded once, not once per target.
    """
    time_base = stream.time_base or Fraction(1, av.time_base)
    start = stream.start_time or 0
    decoded: Iterator[av.VideoFrame] | None = None
    current: av.VideoFrame | None = None
    current_time = -math.inf
    exhausted = False
    for target in times:
        if current is None or (not exhausted and current_time + _TIME_EPSILON < target):
            if decoded is None or _worth_seeking(stream, target, current_time, time_base, start):
                if target > 0:
                    try:
                        container.seek(start + int(target / time_base), stream=stream, backward=True)
                    except av.FFmpegError:
                        container.seek(0)
                decoded = container.decode(stream)
                exhausted = False
            for frame in decoded:
                if frame.pts is None:
                    continue
                current, current_time = frame, float((frame.pts - start) * time_base)
                if current_time + _TIME_EPSILON >= target:
                    break
            else:
                exhausted = True
        if current is None:
            raise MediaError("no frame could be decoded")
        yield current


def _worth_seeking(
    stream: av.video.stream.VideoStream, target: float, current_time: float, time_base: Fraction, start: int
) -> bool:
    try:
        index = stream.index_entries
        position = index.search_timestamp(start + int(target / time_base), backward=True)
        if len(index) > 1 and position >= 0:
            keyframe = float((index[position].timestamp - start) * time_base)
            return keyframe > current_time + _TIME_EPSILON
    except (AttributeError, IndexError, ValueError, av.FFmpegError):
        pass  # PyAV before 15 has no index_entries; a target before the first entry
    return target - current_time > _SEEK_GAP_SEC


# -- audio ----------------------------------------------------------------------------------------------


def _audio_waveform(source: Path, size: int) -> Image.Image:
    columns = max(1, size - 2 * round(size * 0.06))
    peaks = _audio_peaks(source, columns)
    picture = Image.new("RGB", (size, size), _BACKGROUND)
    draw = ImageDraw.Draw(picture)
    _draw_note(draw, size)
    loudest = max((max(-low, high) for low, high in peaks), default=0.0)
    gain = 1.0 / max(loudest, _AUDIO_MIN_PEAK)
    middle = size // 2
    reach = size * 0.3  # the waveform fills the middle 60% of the height at full scale
    left = (size - columns) // 2
    for column in range(columns):
        low, high = peaks[column * len(peaks) // columns]  # stretched when the sound is shorter than said
        top = middle - round(min(1.0, high * gain) * reach)
        bottom = middle - round(max(-1.0, low * gain) * reach)
        draw.line((left + column, min(top, middle), left + column, max(bottom, middle)), fill=_INK)
    return picture


def _audio_peaks(source: Path, columns: int) -> list[tuple[float, float]]:
    """(lowest, highest) sample, in -1..1, of each of about ``columns`` equal slices of the first
    ``_AUDIO_MAX_SEC`` seconds.

    Samples are measured as decoded (no resampling, which costs more than decoding): all channels of
    interleaved formats, the first channel of planar ones.
    """
    with av.open(str(source), metadata_errors="ignore") as container:
        stream = next((s for s in container.streams.audio if s.codec_context.sample_rate > 0), None)
        if stream is None:
            raise MediaError(f"Cannot make a thumbnail of {source}: it has no audio stream.")
        rate = stream.codec_context.sample_rate
        seconds = min(_audio_seconds(container, stream), _AUDIO_MAX_SEC)
        meter = _PeakMeter(per_peak=max(1, math.ceil(seconds * rate / columns)), most=4 * columns)
        limit = round(_AUDIO_MAX_SEC * rate)
        converter: av.AudioResampler | None = None
        seen = 0
        for frame in container.decode(stream):
            if frame.format.packed.name in _SAMPLE_FORMATS:
                meter.add(frame)
            else:  # 64-bit integers and other rarities: converted to float first
                converter = converter or av.AudioResampler(format="flt")
                for converted in converter.resample(frame):
                    meter.add(converted)
            seen += frame.samples
            if seen >= limit or meter.full:
                break
    peaks = meter.finish()
    if not peaks:
        raise MediaError(f"Cannot make a thumbnail of {source}: no sound could be decoded.")
    return peaks


def _audio_seconds(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> float:
    """The declared duration, or else the end of the last packet within ``_AUDIO_MAX_SEC`` (read, not
    decoded)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    end = 0.0
    for packet in container.demux(stream):
        if packet.pts is None or packet.time_base is None:
            continue
        end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
        if end > _AUDIO_MAX_SEC:
            break
    container.seek(0)
    return end


# Pillow reads raw samples of these formats straight into a float image: (raw mode, offset, scale to -1..1).
_SAMPLE_FORMATS = {
    "u8": ("F;8", -128.0, 1 / 128),
    "s16": ("F;16S", 0.0, 1 / 32768),
    "s32": ("F;32S", 0.0, 1 / 2**31),
    "flt": ("F;32F", 0.0, 1.0),
    "dbl": ("F;64F", 0.0, 1.0),
}


class _PeakMeter:
    """Lowest and highest sample of each run of ``per_peak`` samples, fed decoded frames.

    Whole runs are laid out as the rows of a float image, so Pillow finds each row's extremes in C.
    """

    def __init__(self, per_peak: int, most: int) -> None:
        self.per_peak = per_peak
        self.most = most
        self.peaks: list[tuple[float, float]] = []
        self._pending = bytearray()
        self._key: tuple[str, str] | None = None  # (sample format, channel layout) of the pending bytes
        self._values = 1  # values per sample: the channel count when interleaved, else 1 (first plane)
        self._sample_bytes = 1
        self._raw: tuple[str, float, float] = _SAMPLE_FORMATS["u8"]

    @property
    def full(self) -> bool:
        return len(self.peaks) >= self.most

    def add(self, frame: av.AudioFrame) -> None:
        fmt = frame.format
        key = (fmt.name, frame.layout.name)
        if key != self._key:
            self.finish()
            self._key = key
            self._values = 1 if fmt.is_planar else len(frame.layout.channels)
            self._sample_bytes = fmt.bytes
            self._raw = _SAMPLE_FORMATS[fmt.packed.name]
        self._pending += memoryview(frame.planes[0])[: frame.samples * self._values * self._sample_bytes]
        if len(self._pending) >= self.per_peak * self._values * self._sample_bytes:
            self._measure(whole_only=True)

    def finish(self) -> list[tuple[float, float]]:
        self._measure(whole_only=False)
        return self.peaks

    def _measure(self, *, whole_only: bool) -> None:
        if not self._pending:
            return
        raw_mode, offset, scale = self._raw
        width = self.per_peak * self._values
        row_bytes = width * self._sample_bytes
        rows = len(self._pending) // row_bytes
        if rows:
            grid = Image.frombytes(
                "F", (width, rows), bytes(self._pending[: rows * row_bytes]), "raw", raw_mode
            )
            for row in range(rows):
                low, high = _extrema(grid.crop((0, row, width, row + 1)))
                self.peaks.append(((low + offset) * scale, (high + offset) * scale))
            del self._pending[: rows * row_bytes]
        tail = len(self._pending) // self._sample_bytes
        if not whole_only and tail:
            grid = Image.frombytes(
                "F", (tail, 1), bytes(self._pending[: tail * self._sample_bytes]), "raw", raw_mode
            )
            low, high = _extrema(grid)
            self.peaks.append(((low + offset) * scale, (high + offset) * scale))
        if not whole_only:
            self._pending.clear()


def _draw_note(draw: ImageDraw.ImageDraw, size: int) -> None:
    """A small eighth note in the top-left corner, clear of the waveform band."""
    unit = max(2, size // 40)
    x, y = round(size * 0.06), round(size * 0.05)
    head = (x, y + 4 * unit, x + 2 * unit, y + 5 * unit + unit // 2)
    draw.ellipse(head, fill=_MUTED)
    stem_x = x + 2 * unit - 1
    draw.line((stem_x, y, stem_x, y + 5 * unit), fill=_MUTED, width=max(1, unit // 2))
    draw.line((stem_x, y, stem_x + 2 * unit, y + 2 * unit), fill=_MUTED, width=max(1, unit // 2))


# -- 3D models ------------------------------------------------------------------------------------------


def _model_icon(source: Path, size: int) -> Image.Image:
    facts = probe(source)  # reads the glTF header and JSON: a damaged model fails here
    if facts.media_type is not MediaType.MODEL_3D:
        raise MediaError(f"Cannot make a thumbnail of {source}: it is not a 3D model.")
    label = "GLB" if facts.mime_type == "model/gltf-binary" else "glTF"
    return _drawn_model_icon(label, size).copy()


@functools.lru_cache(maxsize=8)
def _drawn_model_icon(label: str, size: int) -> Image.Image:
    picture = Image.new("RGB", (size, size), _BACKGROUND)
    draw = ImageDraw.Draw(picture)
    # An isometric cube: three visible faces, the top one lighter.
    cx, cy, r = size / 2, size * 0.42, size * 0.22
    dx, dy = r * math.cos(math.radians(30)), r * math.sin(math.radians(30))
    top, left, right = (cx, cy - r), (cx - dx, cy - dy), (cx + dx, cy - dy)
    centre, low_left, low_right, bottom = (cx, cy), (cx - dx, cy + dy), (cx + dx, cy + dy), (cx, cy + r)
    width = max(1, size // 64)
    draw.polygon([top, right, centre, left], fill=(92, 132, 170), outline=_INK, width=width)
    draw.polygon([left, centre, bottom, low_left], fill=(62, 90, 120), outline=_INK, width=width)
    draw.polygon([centre, right, low_right, bottom], fill=(48, 70, 96), outline=_INK, width=width)
    font = ImageFont.load_default(size=max(8, round(size * 0.12)))
    text_width = draw.textlength(label, font=font)
    draw.text(((size - text_width) / 2, size * 0.72), label, fill=(220, 224, 232), font=font)
    return picture


# -- disk cache -----------------------------------------------------------------------------------------


class ThumbnailStore:
    """Rendered thumbnails on disk, one file per (sha256, kind, size, ``FORMAT_VERSION``) under
    ``root/<first two hex digits>/``, and a small ``.failed`` marker where a render failed, so a file that
    cannot be thumbnailed is not tried again on every scroll.

    Files appear atomically (a temporary file renamed over the name), so a reader never sees half a
    thumbnail. They are not fsynced: this is a cache, and after a crash an empty file counts as missing.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, sha256: str, kind: str, size: int) -> Path:
        """Where the thumbnail of this key is (or will be)."""
        return self._base(sha256, kind, size).with_suffix(_SUFFIX)

    def marker_for(self, sha256: str, kind: str, size: int) -> Path:
        """Where the failure marker of this key is (or would be)."""
        return self._base(sha256, kind, size).with_suffix(_FAILED_SUFFIX)

    def get(self, sha256: str, kind: str, size: int) -> Path | None:
        """The cached thumbnail's path, or None when there is none (yet)."""
        path = self.path_for(sha256, kind, size)
        try:
            return path if path.stat().st_size > 0 else None
        except OSError:
            return None

    def has_failed(self, sha256: str, kind: str, size: int) -> bool:
        """Whether rendering this key failed before (and was not forgotten since)."""
        return self.marker_for(sha256, kind, size).exists()

    def failure(self, sha256: str, kind: str, size: int) -> str | None:
        """Why rendering this key failed, or None when it did not."""
        try:
            return self.marker_for(sha256, kind, size).read_text(encoding="utf-8")
        except OSError:
            return None

    def put(self, sha256: str, kind: str, size: int, image: Image.Image) -> Path:
        """Store ``image`` as this key's thumbnail; its path. ``CacheError`` if it cannot be written."""
        path = self.path_for(sha256, kind, size)
        self._write(path, lambda handle: _opaque(image).save(handle, _SAVE_FORMAT, **_SAVE_OPTIONS))
        return path

    def mark_failed(self, sha256: str, kind: str, size: int, reason: str) -> Path:
        """Remember that this key cannot be rendered, and why."""
        path = self.marker_for(sha256, kind, size)
        self._write(path, lambda handle: handle.write(reason.encode("utf-8")))
        return path

    def forget(self, sha256: str) -> int:
        """Remove every thumbnail and failure marker of ``sha256`` (e.g. after it was imported again); how
        many files went."""
        check_sha256(sha256)
        removed = 0
        directory = self.root / sha256[:2]
        try:
            names = [entry.name for entry in os.scandir(directory)]
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise CacheError(f"Cannot clear the thumbnails in {directory}: {exc.strerror or exc}.") from None
        for name in names:
            if name.startswith(f"{sha256}-"):
                try:
                    (directory / name).unlink()
                    removed += 1
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise CacheError(
                        f"Cannot remove the thumbnail {directory / name}: {exc.strerror or exc}."
                    ) from None
        return removed

    def _base(self, sha256: str, kind: str, size: int) -> Path:
        check_sha256(sha256)
        if not _KIND.match(kind):
            raise ValueError(f"a thumbnail kind is a short lowercase word, got {kind!r}")
        if size < 1:
            raise ValueError(f"a thumbnail size is positive, got {size}")
        return self.root / sha256[:2] / f"{sha256}-{kind}-{size}-v{FORMAT_VERSION}"

    @staticmethod
    def _write(path: Path, write: Callable[[BinaryIO], object]) -> None:
        """``write`` into a temporary file beside ``path``, then rename it to ``path`` (atomic)."""
        partial: Path | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
            partial = Path(name)
            with os.fdopen(descriptor, "wb") as handle:
                write(handle)
            partial.replace(path)  # atomic (os.replace)
        except BaseException as exc:
            if partial is not None:
                partial.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise CacheError(f"Cannot write the thumbnail {path}: {exc.strerror or exc}.") from None
            raise


# -- the service the UI awaits --------------------------------------------------------------------------

_Key = tuple[str, str, int]


class _Flight:
    """One render in progress, shared by every request for its key."""

    __slots__ = ("job", "result", "waiters")

    def __init__(
        self, job: concurrent.futures.Future[Path | None], result: asyncio.Future[Path | None]
    ) -> None:
        self.job = job
        self.result = result
        self.waiters = 0


def _background_priority() -> None:
    """Renders are background work: on Linux each render thread yields the CPU to the UI (nice +10)."""
    if sys.platform.startswith("linux") and hasattr(os, "setpriority"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


class ThumbnailService:
    """Thumbnails on demand: a cache hit costs a ``stat``; a miss renders in the service's own bounded thread
    pool, once per key however many requests wait for it, and a request cancelled before its render
    started (a card scrolled away) takes that render off the queue when no one else waits for it.
    """

    def __init__(self, store: ThumbnailStore, *, max_workers: int = 2) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.store = store
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers, thread_name_prefix="thumbnail", initializer=_background_priority
        )
        self._flights: dict[_Key, _Flight] = {}
        self._closed = False

    async def thumbnail(
        self, source: Path, sha256: str, media_type: MediaType, size: int = THUMBNAIL_SIZE
    ) -> Path | None:
        """The cached thumbnail of the file (rendered first if needed), or None when it cannot be
        thumbnailed (the UI shows a type icon). A missing source gives None and is tried again next time."""
        key = (sha256, THUMB_KIND, size)
        return await self._request(key, source, lambda: render_thumbnail(source, media_type, size))

    async def scrub_strip(
        self, source: Path, sha256: str, count: int = SCRUB_FRAMES, size: int = THUMBNAIL_SIZE
    ) -> Path | None:
        """The cached scrub strip of a video (see ``render_scrub_strip``), or None when there can be none."""
        key = (sha256, scrub_kind(count), size)
        return await self._request(key, source, lambda: render_scrub_strip(source, count, size))

    async def aclose(self) -> None:
        """Drop queued renders, wait for running ones, and stop the threads. Requests waiting on a dropped
        render are cancelled."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)

    async def __aenter__(self) -> ThumbnailService:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _request(self, key: _Key, source: Path, render: Callable[[], Image.Image]) -> Path | None:
        # Two stats on the event loop: microseconds, far cheaper than a hop to a thread that may be busy.
        cached = self.store.get(*key)
        if cached is not None:
            return cached
        if self.store.has_failed(*key):
            return None
        flight = self._flights.get(key)
        if flight is None:
            if self._closed:
                raise RuntimeError("the thumbnail service is closed")
            flight = self._launch(key, Path(source), render)
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.result)
        except asyncio.CancelledError:
            # Job.cancel() only succeeds while the render is still queued; a running render finishes and
            # is cached for the next request.
            if flight.waiters == 1 and flight.job.cancel() and self._flights.get(key) is flight:
                # Unregister now, not when _land runs: a request arriving before then must start a new
                # render rather than join this cancelled one.
                del self._flights[key]
            raise
        finally:
            flight.waiters -= 1

    def _launch(self, key: _Key, source: Path, render: Callable[[], Image.Image]) -> _Flight:
        loop = asyncio.get_running_loop()
        job = self._executor.submit(self._produce, key, source, render)
        flight = _Flight(job, loop.create_future())
        self._flights[key] = flight

        def landed(_: concurrent.futures.Future[Path | None]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed first: nobody waits any more
                loop.call_soon_threadsafe(self._land, key, flight)

        job.add_done_callback(landed)
        return flight

    def _land(self, key: _Key, flight: _Flight) -> None:
        # The flight stays registered until its job is done, even when every waiter left: a request
        # arriving meanwhile joins it rather than starting a second render of the same key.
        if self._flights.get(key) is flight:
            del self._flights[key]
        if flight.result.done():
            return
        if flight.job.cancelled():
            flight.result.cancel()
        elif (error := flight.job.exception()) is not None:
            flight.result.set_exception(error)
        else:
            flight.result.set_result(flight.job.result())

    def _produce(self, key: _Key, source: Path, render: Callable[[], Image.Image]) -> Path | None:
        """In a worker thread: render, then cache the picture, or a failure marker."""
        if not source.is_file():
            return None  # not downloaded yet, or moved: no marker, so it is tried again later
        try:
            image = render()
        except MediaError as exc:
            log.info("no thumbnail for %s: %s", key[0], exc)
            self.store.mark_failed(*key, str(exc))
            return None
        return self.store.put(*key, image)
