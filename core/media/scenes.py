"""Scene detection: where a video cuts from one shot to another, and a representative picture of each shot.

Pure and synchronous (call it from a worker thread); nothing here knows the database.

How it works. Frames are decoded in one pass (non-reference frames are not even decoded when the video
has many more frames than are analysed); at most ``SAMPLE_FPS`` of them a second are shrunk by FFmpeg to
128×72 RGB and compared with the previous sample in two ways: soft colour histograms (a change of palette)
and the mean absolute difference of 64×36 grey pictures (a change of layout). A sample starts a new scene
when its difference is

- at least ``threshold`` in itself,
- ``_RATIO`` times the median difference of the samples around it, before *and* after: steady motion,
  camera noise and fades change every sample a little, so their neighbours' median is high and none of
  them stands out; a cut is one isolated jump,
- and not undone within two samples (a flash, a strobe, one corrupt frame: the picture returns to what it
  was before the jump),

and the scene before it is at least ``min_scene_sec`` long. Gradual transitions (fades, dissolves) are
therefore never cut, neither mid-way nor at their ends.

Each scene's keyframe is its sharpest sample (variance of the Laplacian, which also disfavours faded and
blank frames), not counting the first quarter second after the cut unless the scene has nothing else.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import av
import av.container
import av.stream
import numpy as np
import numpy.typing as npt
from PIL import Image

from core.db.enums import MediaType
from core.errors import MediaError, PixSimError
from core.media.probe import StrPath, probe

# Samples analysed per second of video, at most.
SAMPLE_FPS = 8.0
DEFAULT_THRESHOLD = 0.2
DEFAULT_MIN_SCENE_SEC = 0.6
# Keyframe pictures fit inside this square (a 16:9 video gives 384×216): enough for a grid thumbnail and
# for an embedder's 224 px input.
KEYFRAME_SIZE = 384

Cancelled = Callable[[], bool]
# Seconds of video analysed so far, and the video's duration; called from the analysing thread.
Progress = Callable[[float, float], None]

_ANALYSIS_SIZE = (128, 72)
_HIST_BINS = 16
# Samples on each side whose median difference a cut must exceed _RATIO times.
_WINDOW = 5
_RATIO = 3.0
# A jump that comes back to within this fraction of itself within two samples is a flash, not a cut.
_FLASH = 0.5
# How much more the grey difference weighs than its raw value (cuts differ by 0.1-0.3 on average).
_MAD_GAIN = 3.0
# A keyframe is not taken from the first moments after a cut (codec recovery, the tail of a fade-in).
_KEYFRAME_GUARD_SEC = 0.25
# Skip non-reference frames when the video has this many times more frames than are sampled.
_SKIP_NONREF_FACTOR = 2.5
_PROGRESS_EVERY_SEC = 0.1
# Frame times are rationals; a sample due at t is taken from a frame within this of t.
_TIME_EPSILON = 1e-3


class AnalysisCancelled(PixSimError):
    """Scene detection was cancelled by the user (or shutdown); nothing was produced."""


@dataclass(frozen=True)
class Scene:
    """One continuous shot: from ``start_sec`` (inclusive) to ``end_sec`` (where the next begins)."""

    start_sec: float
    end_sec: float
    # The representative instant: the keyframe shown at ``keyframe_sec`` is frame ``frame_number``.
    keyframe_sec: float
    frame_number: int
    # The keyframe, RGB, as displayed (pixel aspect and rotation applied), inside KEYFRAME_SIZE².
    keyframe: Image.Image

    @property
    def duration_sec(self) -> float:
        return self.end_sec - self.start_sec


def detect_scenes(
    path: StrPath,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    min_scene_sec: float = DEFAULT_MIN_SCENE_SEC,
    cancel: Cancelled | None = None,
    progress: Progress | None = None,
    keyframe_size: int = KEYFRAME_SIZE,
) -> list[Scene]:
    """The scenes of the video at ``path``, in order, covering it from 0 to its duration without gaps.

    A video without cuts is one scene. ``threshold`` (0-1) is the least difference between two samples
    that may be a cut; lower finds subtler cuts and more false ones. ``MediaError`` when the file is
    missing, damaged or not a video; ``AnalysisCancelled`` as soon as ``cancel()`` returns true.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if min_scene_sec < 0 or not math.isfinite(min_scene_sec):
        raise ValueError(f"min_scene_sec must be 0 or more, got {min_scene_sec}")
    if keyframe_size < 16:
        raise ValueError(f"keyframe_size must be at least 16 px, got {keyframe_size}")
    file = Path(path)
    facts = probe(file)  # clear errors for missing, empty, truncated and non-media files
    if facts.media_type is not MediaType.VIDEO:
        raise MediaError(f"Cannot find the scenes of {file}: it is not a video ({facts.mime_type}).")
    duration = facts.duration_sec or 0.0
    fps = facts.fps or 0.0
    skip_nonref = fps > _SKIP_NONREF_FACTOR * SAMPLE_FPS
    settings = _Settings(threshold, min_scene_sec, keyframe_size, duration, fps)
    try:
        scenes = _analyse(file, settings, skip_nonref, cancel, progress)
        if scenes is None and skip_nonref:
            # Some decoders mark every frame non-reference (intra-only codecs): decode them all instead.
            scenes = _analyse(file, settings, False, cancel, progress)
    except av.FFmpegError as exc:
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise MediaError(f"Cannot find the scenes of {file}: it is a damaged video ({detail}).") from None
    if scenes is None:
        raise MediaError(f"Cannot find the scenes of {file}: no frame could be decoded. It may be damaged.")
    return scenes


@dataclass(frozen=True)
class _Settings:
    threshold: float
    min_scene_sec: float
    keyframe_size: int
    duration: float
    fps: float


def _analyse(
    file: Path,
    settings: _Settings,
    skip_nonref: bool,
    cancel: Cancelled | None,
    progress: Progress | None,
) -> list[Scene] | None:
    """The scenes, from every sample of the video; None when no frame could be decoded.

    Keyframe pictures are made while the decoder is open: frames must not outlive their container.
    """
    interval = 1.0 / SAMPLE_FPS
    due = 0.0
    reported = time.monotonic()
    decoded = False
    duration = settings.duration
    with _open_video(file) as (container, stream):
        if skip_nonref:
            stream.codec_context.skip_frame = "NONREF"
        sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
        detector = _Detector(settings, float(sar) if sar and sar > 0 else 1.0)
        for frame, t in _timed_frames(container, stream):
            decoded = True
            if cancel is not None and cancel():
                raise AnalysisCancelled(f"Scene detection of {file} was cancelled.")
            if t + _TIME_EPSILON < due:
                continue
            due = t + interval
            detector.feed(frame, t)
            if progress is not None and time.monotonic() - reported >= _PROGRESS_EVERY_SEC:
                reported = time.monotonic()
                progress(min(t, duration), duration)
        if not decoded:
            return None
        scenes = detector.finish()
    if progress is not None:
        progress(duration, duration)
    return scenes


@contextmanager
def _open_video(file: Path) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """The container and its main video stream (not cover art), decoding on every core; closed on exit."""
    with av.open(str(file), metadata_errors="ignore") as container:
        for stream in container.streams.video:
            if stream.disposition & av.stream.Disposition.attached_pic:
                continue
            if stream.codec_context.width > 0 and stream.codec_context.height > 0:
                stream.thread_type = "AUTO"
                yield container, stream
                return
        raise MediaError(f"Cannot find the scenes of {file}: it has no video stream.")


def _timed_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> Iterator[tuple[av.VideoFrame, float]]:
    """Each decoded frame with its time in seconds from the stream's start (as ``frame_at`` counts)."""
    time_base = stream.time_base
    start = stream.start_time or 0
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    step = 1.0 / float(rate) if rate else 1.0 / 25
    previous = -step
    for frame in container.decode(stream):
        if frame.pts is not None and time_base is not None:
            t = max(0.0, float((frame.pts - start) * time_base))
        else:
            t = previous + step  # no timestamps (raw streams): count frames
        previous = t
        yield frame, t


# -- features -----------------------------------------------------------------------------------------

_Floats = npt.NDArray[np.float32]


@dataclass(frozen=True)
class _Features:
    histogram: _Floats  # 3 × _HIST_BINS, each channel sums to 1
    grey: _Floats  # 36 × 64, 0-1

    def distance(self, other: _Features) -> float:
        """0 (identical) to 1 (nothing in common): half histogram distance, half grey difference."""
        hist = float(np.abs(self.histogram - other.histogram).sum()) / 6.0  # L1/2 per channel, averaged
        mad = float(np.abs(self.grey - other.grey).mean())
        return 0.5 * hist + 0.5 * min(1.0, _MAD_GAIN * mad)


def _features(frame: av.VideoFrame) -> tuple[_Features, float]:
    """The frame's comparison features, and its sharpness."""
    width, height = _ANALYSIS_SIZE
    rgb = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()
    pixels = rgb.reshape(-1, 3).astype(np.float32)
    # Soft binning: each value is shared between its two nearest bins, so a slow fade moves mass gradually
    # instead of jumping from bin to bin (which would look like a cut every few samples).
    position = pixels * (_HIST_BINS / 256.0) - 0.5
    low = np.floor(position)
    upper_weight = position - low
    offsets = np.arange(3, dtype=np.float32) * _HIST_BINS
    low_bin = np.clip(low, 0, _HIST_BINS - 1) + offsets
    high_bin = np.clip(low + 1, 0, _HIST_BINS - 1) + offsets
    counts = np.bincount(
        low_bin.ravel().astype(np.intp), (1.0 - upper_weight).ravel(), minlength=3 * _HIST_BINS
    ) + np.bincount(high_bin.ravel().astype(np.intp), upper_weight.ravel(), minlength=3 * _HIST_BINS)
    histogram: _Floats = (counts / len(pixels)).astype(np.float32)
    luma = (rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)) / 255.0
    laplacian = 4 * luma[1:-1, 1:-1] - luma[:-2, 1:-1] - luma[2:, 1:-1] - luma[1:-1, :-2] - luma[1:-1, 2:]
    sharpness = float(laplacian.var())
    grey = luma.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3)).astype(np.float32)
    return _Features(histogram, grey), sharpness


# -- decisions ----------------------------------------------------------------------------------------


@dataclass
class _Sample:
    time: float
    diff: float  # to the previous sample; 0 for the first
    back2: float  # from the sample two before to this one (inf when there is none)
    back3: float  # from the sample three before
    sharpness: float
    frame: av.VideoFrame | None  # held until the sample's scene is decided


@dataclass
class _Candidate:
    time: float
    sharpness: float
    frame: av.VideoFrame


@dataclass
class _OpenScene:
    start: float
    first: _Candidate | None = None
    best: _Candidate | None = None

    def consider(self, sample: _Sample) -> None:
        assert sample.frame is not None
        candidate = _Candidate(sample.time, sample.sharpness, sample.frame)
        if self.first is None:
            self.first = candidate
        if sample.time < self.start + _KEYFRAME_GUARD_SEC:
            return
        # Clearly sharper only: among equals (a still shot) the earliest stays.
        if self.best is None or sample.sharpness > self.best.sharpness * 1.05 + 1e-6:
            self.best = candidate


@dataclass(frozen=True)
class _Keyframe:
    time: float
    picture: Image.Image


class _Detector:
    """Cuts decided ``_WINDOW`` samples behind the decoder, holding only the frames not yet placed and each
    open scene's keyframe candidates; a closed scene's keyframe is turned into a picture at once."""

    def __init__(self, settings: _Settings, pixel_aspect: float) -> None:
        self._settings = settings
        self._threshold = settings.threshold
        self._pixel_aspect = pixel_aspect
        self._samples: list[_Sample] = []
        self._recent: deque[_Features] = deque(maxlen=4)
        self._decided = 0
        self._open = _OpenScene(0.0)
        self._closed: list[tuple[float, float, _Keyframe]] = []  # start, end, keyframe
        self._last_time = 0.0

    def feed(self, frame: av.VideoFrame, t: float) -> None:
        features, sharpness = _features(frame)
        recent = self._recent
        diff = features.distance(recent[-1]) if recent else 0.0
        back2 = features.distance(recent[-2]) if len(recent) >= 2 else math.inf
        back3 = features.distance(recent[-3]) if len(recent) >= 3 else math.inf
        recent.append(features)
        self._samples.append(_Sample(t, diff, back2, back3, sharpness, frame))
        self._last_time = max(self._last_time, t)
        while self._decided + _WINDOW < len(self._samples):
            self._place(self._decided)

    def finish(self) -> list[Scene]:
        """Every scene; call while the decoder is still open."""
        while self._decided < len(self._samples):
            self._place(self._decided)
        end = max(self._settings.duration, self._last_time)
        scenes = [*self._closed]
        if self._open.first is not None:
            scenes.append((self._open.start, end, self._keyframe(self._open)))
        # A last scene shorter than the minimum joins the one before it.
        if len(scenes) >= 2 and scenes[-1][1] - scenes[-1][0] < self._settings.min_scene_sec:
            scenes.pop()
            start, _, keyframe = scenes[-1]
            scenes[-1] = (start, end, keyframe)
        fps = self._settings.fps
        return [
            Scene(
                start_sec=round(start, 6),
                end_sec=round(max(stop, start), 6),
                keyframe_sec=round(key.time, 6),
                frame_number=round(key.time * fps) if fps else 0,
                keyframe=key.picture,
            )
            for start, stop, key in scenes
        ]

    def _place(self, index: int) -> None:
        sample = self._samples[index]
        if self._is_cut(index) and sample.time - self._open.start >= self._settings.min_scene_sec:
            self._closed.append((self._open.start, sample.time, self._keyframe(self._open)))
            self._open = _OpenScene(sample.time)
        self._open.consider(sample)
        sample.frame = None  # the open scene holds the frames it may still use
        self._decided = index + 1

    def _keyframe(self, scene: _OpenScene) -> _Keyframe:
        chosen = scene.best or scene.first
        assert chosen is not None, "a scene is only closed after a sample was placed in it"
        picture = _picture(chosen.frame, self._pixel_aspect, self._settings.keyframe_size)
        return _Keyframe(chosen.time, picture)

    def _is_cut(self, index: int) -> bool:
        if index == 0:
            return False
        samples = self._samples
        diff = samples[index].diff
        if diff < self._threshold:
            return False
        around = [
            samples[j].diff
            for j in range(max(1, index - _WINDOW), min(len(samples), index + _WINDOW + 1))
            if j != index
        ]
        if around and diff < _RATIO * statistics.median(around):
            return False
        # Does the picture return to what it was before the jump (a flash), or is this the return itself?
        if samples[index].back2 < _FLASH * diff:
            return False
        returns = []
        if index + 1 < len(samples):
            returns.append(samples[index + 1].back2)
        if index + 2 < len(samples):
            returns.append(samples[index + 2].back3)
        return not (returns and min(returns) < _FLASH * diff)


# -- pictures -----------------------------------------------------------------------------------------


def _picture(frame: av.VideoFrame, pixel_aspect: float, box: int) -> Image.Image:
    """The frame as displayed (pixel aspect, quarter turns) in RGB, fitted inside ``box`` × ``box``."""
    shown_width = frame.width * pixel_aspect
    turn = _rotation(frame)
    width, height = (float(frame.height), shown_width) if turn in (90, 270) else (shown_width, frame.height)
    scale = min(box / width, box / height, 1.0)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if turn in (90, 270):
        size = (size[1], size[0])
    image: Image.Image = frame.to_image(  # type: ignore[no-untyped-call]  # untyped in PyAV's stubs
        width=size[0], height=size[1], interpolation="AREA"
    )
    if turn == 90:
        image = image.transpose(Image.Transpose.ROTATE_90)
    elif turn == 180:
        image = image.transpose(Image.Transpose.ROTATE_180)
    elif turn == 270:
        image = image.transpose(Image.Transpose.ROTATE_270)
    return image


def _rotation(frame: av.VideoFrame) -> int:
    """Counter-clockwise degrees (0, 90, 180, 270) the frame is turned when shown (phone videos)."""
    try:
        degrees = frame.rotation
    except (AttributeError, av.FFmpegError):
        return 0
    return round(degrees / 90) * 90 % 360
