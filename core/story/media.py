"""Frames and cuts of library videos for the story editor, with PyAV (blocking: run on a worker thread).

A cut is re-encoded (H.264 in MP4) rather than copied packet by packet, so it starts on the exact frame
asked for instead of the keyframe before it. Cuts carry the picture only: PixSim's generated videos
have no sound, and a clip exported for a game is a visual segment.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av

from core.errors import MediaError
from core.media.probe import frame_at
from core.story.model import StoryError

# Frame times are compared with this slack: container timestamps are rounded to their time base.
_EPSILON = 1e-4
_X264_OPTIONS = {"preset": "veryfast", "crf": "18"}
_DEFAULT_FPS = Fraction(24)


class ExportCancelled(StoryError):
    """The user cancelled an export; nothing partial was kept."""


Progress = Callable[[float], None]
Cancelled = Callable[[], bool]


def frame_index(time_sec: float, fps: float | None) -> int | None:
    """The index of the frame shown at ``time_sec`` (the last one starting at or before it)."""
    if fps is None or fps <= 0:
        return None
    return max(0, math.floor(time_sec * fps + _EPSILON))


def save_frame_png(source: Path, time_sec: float, out: Path) -> Path:
    """The frame of ``source`` shown at ``time_sec``, as a PNG at ``out``."""
    image = frame_at(source, time_sec)
    try:
        image.save(out, format="PNG")
    except OSError as exc:
        raise MediaError(f"Cannot write the frame to {out}: {exc.strerror or exc}.") from None
    return out


def cut_video(
    source: Path,
    start_sec: float,
    end_sec: float,
    out: Path,
    *,
    progress: Progress | None = None,
    cancelled: Cancelled | None = None,
) -> Path:
    """Write the frames of ``source`` shown from ``start_sec`` up to ``end_sec`` to ``out`` (MP4).

    ``out`` appears complete or not at all. ``ExportCancelled`` when ``cancelled()`` turns true.
    """
    if not (0 <= start_sec < end_sec):
        raise ValueError(f"bad cut range {start_sec}–{end_sec}")
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")
    os.close(handle)
    partial = Path(name)
    try:
        written = _cut(source, start_sec, end_sec, partial, progress, cancelled)
        if written == 0:
            raise MediaError(
                f"Cannot cut {start_sec:.2f}–{end_sec:.2f} s from {source.name}: no frame lies in that range."
            )
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return out


def _cut(
    source: Path,
    start_sec: float,
    end_sec: float,
    out: Path,
    progress: Progress | None,
    cancelled: Cancelled | None,
) -> int:
    try:
        container = av.open(str(source))
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(f"Cannot read {source.name} to cut it: {exc}.") from None
    with container:
        if not container.streams.video:
            raise MediaError(f"Cannot cut {source.name}: it has no video stream.")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = Fraction(stream.average_rate) if stream.average_rate else _DEFAULT_FPS
        time_base = stream.time_base or Fraction(1, av.time_base)
        origin = stream.start_time or 0
        width, height = stream.codec_context.width, stream.codec_context.height
        width, height = max(16, width - width % 2), max(16, height - height % 2)
        if start_sec > 0:
            try:
                container.seek(origin + int(start_sec / time_base), stream=stream, backward=True)
            except av.FFmpegError:
                container.seek(0)
        count = 0
        try:
            with av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"}) as output:
                encoder = output.add_stream("libx264", rate=rate)
                encoder.width, encoder.height = width, height
                encoder.pix_fmt = "yuv420p"
                encoder.options = {**_X264_OPTIONS, "g": str(max(1, round(2 * rate)))}
                previous = None
                for frame in container.decode(stream):
                    if cancelled is not None and cancelled():
                        raise ExportCancelled("The clip export was cancelled; no file was kept.")
                    if frame.pts is None:
                        continue
                    t = float((frame.pts - origin) * time_base)
                    if t >= end_sec - _EPSILON:
                        break
                    if t < start_sec - _EPSILON:
                        # Before the range; it still counts if the range starts between two frames.
                        previous = frame
                        continue
                    if count == 0 and previous is not None and t > start_sec + _EPSILON:
                        count = _encode(output, encoder, previous, count, width, height, rate)
                    count = _encode(output, encoder, frame, count, width, height, rate)
                    if progress is not None:
                        progress(min(1.0, (t - start_sec) / (end_sec - start_sec)))
                if count == 0 and previous is not None:
                    count = _encode(output, encoder, previous, count, width, height, rate)
                output.mux(encoder.encode())
        except av.FFmpegError as exc:
            raise MediaError(f"Cannot cut {source.name}: {exc}.") from None
    if progress is not None:
        progress(1.0)
    return count


def _encode(
    output: av.container.OutputContainer,
    encoder: av.video.stream.VideoStream,
    frame: av.VideoFrame,
    index: int,
    width: int,
    height: int,
    rate: Fraction,
) -> int:
    picture = frame.reformat(width=width, height=height, format="yuv420p")
    picture.pts = index
    picture.time_base = 1 / rate
    output.mux(encoder.encode(picture))
    return index + 1
