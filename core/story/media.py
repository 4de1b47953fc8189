"""Frames and cuts of library videos for the story editor, with PyAV (blocking: run on a worker thread).

A cut is re-encoded (H.264 in MP4) rather than copied packet by packet, so it starts on the exact frame
asked for instead of the keyframe before it. Sound comes along (AAC): the source's first audio track,
trimmed to the sample at the cut's start and end and kept in sync with the picture (gaps in the
source's audio are filled with silence, overlaps dropped). Stereo stays stereo, more channels keep
their front pair.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from core.errors import MediaError
from core.media.probe import frame_at
from core.story.model import StoryError

# Frame times are compared with this slack: container timestamps are rounded to their time base.
_EPSILON = 1e-4
_X264_OPTIONS = {"preset": "veryfast", "crf": "18"}
_DEFAULT_FPS = Fraction(24)
_AAC_RATES = {7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000}
# Past the cut's end, read on this far for audio the container stores after the last video frame.
_AUDIO_LOOKAHEAD_SEC = 2.0


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
        sound = container.streams.audio[0] if container.streams.audio else None
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
                audio = (
                    _AudioCut(output, sound, float(origin * time_base), start_sec, end_sec)
                    if sound is not None and sound.codec_context.sample_rate
                    else None
                )
                previous = None
                picture_done = False
                heard = sound if audio is not None else None
                for packet in container.demux(*([stream] if heard is None else [stream, heard])):
                    if cancelled is not None and cancelled():
                        raise ExportCancelled("The clip export was cancelled; no file was kept.")
                    if packet.stream is not stream:
                        if audio is not None and heard is not None and not audio.done:
                            for sound_frame in heard.decode(packet):
                                audio.add(sound_frame)
                    elif not picture_done:
                        for frame in stream.decode(packet):
                            if frame.pts is None:
                                continue
                            t = float((frame.pts - origin) * time_base)
                            if t >= end_sec - _EPSILON:
                                picture_done = True
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
                    if picture_done and (
                        audio is None or audio.done or _past(packet, end_sec, origin, time_base)
                    ):
                        break
                if count == 0 and previous is not None:
                    count = _encode(output, encoder, previous, count, width, height, rate)
                output.mux(encoder.encode())
                if audio is not None:
                    audio.finish()
        except av.FFmpegError as exc:
            raise MediaError(f"Cannot cut {source.name}: {exc}.") from None
    if progress is not None:
        progress(1.0)
    return count


def _past(packet: av.packet.Packet[Any], end_sec: float, origin: int, video_time_base: Fraction) -> bool:
    """Whether the demuxer has moved well beyond the cut (no more of its audio will come)."""
    if packet.pts is None or packet.time_base is None:
        return False
    return float(packet.pts * packet.time_base - origin * video_time_base) > end_sec + _AUDIO_LOOKAHEAD_SEC


class _AudioCut:
    """The source's sound from ``start_sec`` to ``end_sec``, sample-exact, encoded as AAC into ``output``.

    Each decoded frame is placed where its timestamp says on the output timeline: a gap before it is
    filled with silence, an overlap trimmed, so the sound stays in sync with the picture (both start
    at the cut's start). Differences below 2 ms between frames are timestamp rounding and ignored.
    """

    def __init__(
        self,
        output: av.container.OutputContainer,
        source: av.audio.stream.AudioStream,
        origin_sec: float,
        start_sec: float,
        end_sec: float,
    ) -> None:
        context = source.codec_context
        self.rate = int(context.sample_rate)
        self.channels = 1 if len(context.layout.channels) == 1 else 2
        self.layout = "mono" if self.channels == 1 else "stereo"
        self.encoder = output.add_stream("aac", rate=self.rate if self.rate in _AAC_RATES else 48000)
        self.encoder.layout = self.layout
        self.output = output
        self.origin_sec = origin_sec
        self.start_sec = start_sec
        self.total = round((end_sec - start_sec) * self.rate)
        self.written = 0
        self.tolerance = self.rate // 500
        self.done = self.total <= 0

    def add(self, frame: av.AudioFrame) -> None:
        if self.done or frame.pts is None or frame.time_base is None or not frame.samples:
            return
        at = round((float(frame.pts * frame.time_base) - self.origin_sec - self.start_sec) * self.rate)
        if at + frame.samples <= self.written:
            return  # entirely before the cut, or already written
        if self.written and abs(at - self.written) <= self.tolerance:
            at = self.written
        samples = _planar_float(frame, self.channels)
        if at > self.written:
            self._write(np.zeros((self.channels, at - self.written), dtype=np.float32))
        elif at < self.written:
            samples = samples[:, self.written - at :]
        self._write(samples[:, : self.total - self.written])

    def _write(self, samples: np.ndarray) -> None:
        if not samples.shape[1] or self.done:
            return
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=self.layout)
        frame.sample_rate = self.rate
        frame.time_base = Fraction(1, self.rate)
        frame.pts = self.written
        self.output.mux(self.encoder.encode(frame))
        self.written += samples.shape[1]
        self.done = self.written >= self.total

    def finish(self) -> None:
        self.output.mux(self.encoder.encode(None))


def _planar_float(frame: av.AudioFrame, channels: int) -> np.ndarray:
    """The frame's samples as float32 in [-1, 1], shaped (channels, samples): the first ``channels``."""
    data = frame.to_ndarray()
    count = len(frame.layout.channels)
    if not frame.format.is_planar:
        data = data.reshape(-1, count).T
    kind = frame.format.name.rstrip("p")
    if kind in ("flt", "dbl"):
        data = data.astype(np.float32, copy=False)
    elif kind == "u8":
        data = (data.astype(np.float32) - 128.0) / 128.0
    else:  # s16, s32, s64
        data = data.astype(np.float32) / float(2 ** (8 * frame.format.bytes - 1))
    return data[:channels]


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
