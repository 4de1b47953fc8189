"""A frame-accurate video player: PyAV decodes exact frames on a worker thread, the GUI paints them.

QtMultimedia cannot seek to an exact frame and is missing on some Linux installs (no libpulse), so
the PyAV renderer is the player: seeking goes to the keyframe before the wanted frame and decodes
forward to it; playing decodes onward from the last frame. Requests are coalesced (only the newest
wanted frame is decoded next), so slow decoding drops frames instead of falling behind. A small
cache keeps recent frames for stepping back and forth. Where QtMultimedia imports, it may play
(``VideoPlayer.use_multimedia``); stepping and seeking always use PyAV.
"""

from __future__ import annotations

import concurrent.futures
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.container
from PySide6.QtCore import QElapsedTimer, QObject, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QKeySequence, QPainter, QPaintEvent, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.errors import MediaError

CACHE_FRAMES = 48
# A wanted frame this many frames or fewer ahead of the decoder is reached by decoding on, not seeking.
READ_AHEAD_FRAMES = 12


@dataclass(frozen=True)
class VideoMeta:
    path: Path
    fps: float
    frame_count: int
    duration_sec: float
    width: int
    height: int

    def frame_at(self, sec: float) -> int:
        """The index of the frame shown at ``sec`` (the last one starting at or before it)."""
        index = math.floor(max(0.0, sec) * self.fps + 1e-6)
        return min(max(0, index), max(0, self.frame_count - 1))

    def time_of(self, index: int) -> float:
        return index / self.fps


def format_time(sec: float) -> str:
    minutes, rest = divmod(max(0.0, sec), 60)
    return f"{int(minutes):02d}:{rest:06.3f}"


class FrameDecoder:
    """One open video and exact frames by index. Not thread-safe: one worker thread uses it."""

    def __init__(self, path: Path, cache_frames: int = CACHE_FRAMES) -> None:
        self.path = path
        try:
            self._container: av.container.InputContainer = av.open(str(path), metadata_errors="ignore")
        except (av.FFmpegError, OSError) as exc:
            raise MediaError(f"Cannot play {path}: {getattr(exc, 'strerror', None) or exc}.") from None
        streams = [s for s in self._container.streams.video if s.codec_context.width > 0]
        if not streams:
            self._container.close()
            raise MediaError(f"Cannot play {path}: it has no video stream.")
        self._stream = streams[0]
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate
        fps = float(rate) if rate else 25.0
        self._time_base: Fraction = self._stream.time_base or Fraction(1, av.time_base)
        self._start = self._stream.start_time or 0
        if self._stream.duration:
            duration = float(self._stream.duration * self._time_base)
        elif self._container.duration:
            duration = self._container.duration / av.time_base
        else:
            duration = 0.0
        frames = self._stream.frames or max(1, round(duration * fps))
        self.meta = VideoMeta(
            path,
            fps,
            frames,
            duration or frames / fps,
            self._stream.codec_context.width,
            self._stream.codec_context.height,
        )
        self._cache: OrderedDict[int, QImage] = OrderedDict()
        self._cache_frames = cache_frames
        self._frames: Any = None  # the decode generator, positioned after ``_last``
        self._last = -1
        self.seeks = 0  # how often decoding had to seek (for tests and tuning)

    def close(self) -> None:
        self._frames = None
        self._container.close()

    def frame(self, index: int) -> QImage:
        index = min(max(0, index), self.meta.frame_count - 1)
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return cached
        image = self._decode(index)
        self._cache[index] = image
        while len(self._cache) > self._cache_frames:
            self._cache.popitem(last=False)
        return image

    def _index_of(self, frame: av.VideoFrame) -> int:
        return round(float(((frame.pts or 0) - self._start) * self._time_base) * self.meta.fps)

    def _decode(self, index: int) -> QImage:
        if self._frames is None or not self._last < index <= self._last + READ_AHEAD_FRAMES:
            self._seek(index)
        found = self._forward(index)
        if found is None:
            # The seek landed after the frame (a sparse index) or the stream ended early: from the start.
            self._restart()
            found = self._forward(index)
        if found is None:
            raise MediaError(f"Cannot decode frame {index} of {self.path}: the video may be damaged.")
        return found

    def _seek(self, index: int) -> None:
        self.seeks += 1
        target = self._start + int(index / self.meta.fps / self._time_base)
        try:
            self._container.seek(target, stream=self._stream, backward=True)
        except av.FFmpegError:
            self._container.seek(0)
        self._frames = self._container.decode(self._stream)
        self._last = -1

    def _restart(self) -> None:
        self.seeks += 1
        self._container.seek(0)
        self._frames = self._container.decode(self._stream)
        self._last = -1

    def _forward(self, index: int) -> QImage | None:
        """Decode on to frame ``index``; the last frame before the end if the stream ends first."""
        previous: av.VideoFrame | None = None
        first = True
        try:
            for frame in self._frames:
                if frame.pts is None:
                    continue
                at = self._index_of(frame)
                if first and at > index:
                    return None  # seeked past it
                first = False
                self._last = at
                if at >= index:
                    return _to_qimage(frame if at == index or previous is None else previous)
                previous = frame
        except av.FFmpegError as exc:
            raise MediaError(f"Cannot decode {self.path}: {exc}") from None
        self._frames = None
        if previous is not None:
            return _to_qimage(previous)  # asked past the last frame: show the last
        return None


def _to_qimage(frame: av.VideoFrame) -> QImage:
    rgb = frame.to_ndarray(format="rgb24")
    height, width = rgb.shape[:2]
    image = QImage(rgb.data, width, height, rgb.strides[0], QImage.Format.Format_RGB888)
    return image.copy()  # own the pixels: the array is freed with the frame


class _Delivery(QObject):
    """Worker-thread results, queued to the GUI thread."""

    opened = Signal(int, object)  # generation, VideoMeta
    frame = Signal(int, int, object)  # generation, index, QImage
    failed = Signal(int, str)  # generation, message


class FrameView(QWidget):
    """Paints the current frame, scaled to fit with its aspect ratio, on black."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("frameView")
        self.image: QImage | None = None
        self.message = ""
        self.setMinimumSize(320, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def show_image(self, image: QImage | None) -> None:
        self.image = image
        self.message = ""
        self.update()

    def show_message(self, text: str) -> None:
        self.image = None
        self.message = text
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(640, 360)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#111"))
        if self.image is not None and not self.image.isNull():
            size = self.image.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
            target = QRect(0, 0, size.width(), size.height())
            target.moveCenter(self.rect().center())
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawImage(target, self.image)
        elif self.message:
            painter.setPen(QColor("#bbb"))
            painter.drawText(
                self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.message
            )
        painter.end()


def multimedia_available() -> bool:
    """Whether QtMultimedia loads here (it needs libpulse on Linux)."""
    try:
        from PySide6 import QtMultimedia  # noqa: F401
    except ImportError:
        return False
    return True


class _MultimediaPlayback:
    """Playing through QtMultimedia (hardware decoding, sound) where it loads; frames go to the same view.

    Only playing: when it pauses, the PyAV decoder shows the exact frame at the position reached.
    """

    def __init__(self, player: VideoPlayer, path: Path) -> None:
        from PySide6.QtCore import QUrl
        from PySide6.QtMultimedia import QAudioOutput, QMediaPlayer, QVideoSink

        self._media = QMediaPlayer(player)
        self._sink = QVideoSink(player)
        self._audio = QAudioOutput(player)
        self._media.setVideoSink(self._sink)
        self._media.setAudioOutput(self._audio)
        self._media.setSource(QUrl.fromLocalFile(str(path)))
        self._sink.videoFrameChanged.connect(lambda frame: player.view.show_image(frame.toImage()))
        self._media.positionChanged.connect(lambda ms: player._multimedia_position(ms / 1000))

    def play(self, sec: float) -> None:
        self._media.setPosition(round(sec * 1000))
        self._media.play()

    def pause(self) -> float:
        self._media.pause()
        return float(self._media.position()) / 1000

    def close(self) -> None:
        self._media.stop()
        self._media.deleteLater()


class VideoPlayer(QWidget):
    """Frame view plus transport controls. Positions are frame indexes; times are derived from them."""

    opened = Signal(object)  # VideoMeta
    position_changed = Signal(int, float)  # frame index, seconds (of the frame shown)
    playing_changed = Signal(bool)
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("videoPlayer")
        self.meta: VideoMeta | None = None
        self.current_frame = 0
        self.dropped_frames = 0
        self._decoder: FrameDecoder | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pixsim-frames")
        self._lock = threading.Lock()
        self._closed = False
        self._generation = 0
        self._wanted: int | None = None  # the newest frame asked for while one is decoding
        self._busy = False
        self._requested = -1
        self._delivery = _Delivery(self)
        self._delivery.opened.connect(self._on_opened)
        self._delivery.frame.connect(self._on_frame)
        self._delivery.failed.connect(self._on_failed)
        self._clock = QElapsedTimer()
        self._play_from = 0
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        # Set before ``open`` to play through QtMultimedia when it loads (stepping stays on PyAV).
        self.use_multimedia = False
        self._multimedia: _MultimediaPlayback | None = None

        self.view = FrameView()
        self.play_button = self._tool(
            "playButton", QStyle.StandardPixmap.SP_MediaPlay, "Play / pause (Space)"
        )
        self.back_button = self._tool(
            "stepBackButton", QStyle.StandardPixmap.SP_MediaSeekBackward, "Previous frame (Left, ,)"
        )
        self.forward_button = self._tool(
            "stepForwardButton", QStyle.StandardPixmap.SP_MediaSeekForward, "Next frame (Right, .)"
        )
        self.play_button.clicked.connect(self.toggle)
        self.back_button.clicked.connect(lambda: self.step(-1))
        self.forward_button.clicked.connect(lambda: self.step(1))
        self.time_label = QLabel("--:--.--- / --:--.---")
        self.time_label.setObjectName("timeLabel")
        self.frame_label = QLabel("")
        self.frame_label.setObjectName("frameLabel")
        self.frame_label.setStyleSheet("color: palette(placeholder-text);")

        controls = QHBoxLayout()
        controls.setContentsMargins(0, 0, 0, 0)
        for button in (self.back_button, self.play_button, self.forward_button):
            controls.addWidget(button)
        controls.addSpacing(8)
        controls.addWidget(self.time_label)
        controls.addStretch(1)
        controls.addWidget(self.frame_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.view, 1)
        layout.addLayout(controls)
        self._set_enabled(False)
        for keys, slot in (
            ("Space", self.toggle),
            ("Left", lambda: self.step(-1)),
            ("Right", lambda: self.step(1)),
            (",", lambda: self.step(-1)),
            (".", lambda: self.step(1)),
        ):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)

    def _tool(self, name: str, icon: QStyle.StandardPixmap, tip: str) -> QToolButton:
        button = QToolButton()
        button.setObjectName(name)
        button.setIcon(self.style().standardIcon(icon))
        button.setToolTip(tip)
        button.setAutoRaise(True)
        return button

    def _set_enabled(self, enabled: bool) -> None:
        for button in (self.play_button, self.back_button, self.forward_button):
            button.setEnabled(enabled)

    # -- public -----------------------------------------------------------------------------------

    @property
    def is_playing(self) -> bool:
        return self._timer.isActive() or self._multimedia_playing

    _multimedia_playing = False

    @property
    def current_sec(self) -> float:
        return self.meta.time_of(self.current_frame) if self.meta else 0.0

    @property
    def seeks(self) -> int:
        return self._decoder.seeks if self._decoder else 0

    def open(self, path: Path, at_sec: float = 0.0) -> None:
        """Open ``path`` (on the worker thread) and show the frame at ``at_sec``."""
        self.pause()
        self._generation += 1
        generation = self._generation
        self.meta = None
        self._set_enabled(False)
        self.view.show_message("Opening…")
        self._drop_multimedia()
        if self.use_multimedia and multimedia_available():
            self._multimedia = _MultimediaPlayback(self, path)
        self._submit(self._open_job, generation, path, at_sec)

    def _drop_multimedia(self) -> None:
        if self._multimedia is not None:
            self._multimedia_playing = False
            self._multimedia.close()
            self._multimedia = None

    def close_video(self) -> None:
        self.pause()
        self._drop_multimedia()
        self._generation += 1
        self.meta = None
        self._set_enabled(False)
        self.view.show_message("")
        self._submit(self._close_decoder)

    def seek(self, sec: float) -> None:
        if self.meta is not None:
            self.seek_frame(self.meta.frame_at(sec))

    def seek_frame(self, index: int) -> None:
        if self.meta is None:
            return
        index = min(max(0, index), self.meta.frame_count - 1)
        if self.is_playing:
            self._play_from = index
            self._clock.restart()
        self._request(index)

    def step(self, delta: int) -> None:
        self.pause()
        base = self._requested if self._requested >= 0 else self.current_frame
        self.seek_frame(base + delta)

    def play(self) -> None:
        if self.meta is None or self.is_playing:
            return
        if self.current_frame >= self.meta.frame_count - 1:
            self.seek_frame(0)
        if self._multimedia is not None:
            self._multimedia_playing = True
            self._multimedia.play(self.current_sec)
            self._playing_icon(True)
            return
        self._play_from = self.current_frame
        self._clock.start()
        self._timer.start(max(1, round(1000 / self.meta.fps)))
        self._playing_icon(True)

    def pause(self) -> None:
        if not self.is_playing:
            return
        self._timer.stop()
        if self._multimedia is not None and self._multimedia_playing:
            self._multimedia_playing = False
            self.seek(self._multimedia.pause())  # the exact frame, from PyAV
        self._playing_icon(False)

    def _playing_icon(self, playing: bool) -> None:
        icon = QStyle.StandardPixmap.SP_MediaPause if playing else QStyle.StandardPixmap.SP_MediaPlay
        self.play_button.setIcon(self.style().standardIcon(icon))
        self.playing_changed.emit(playing)

    def _multimedia_position(self, sec: float) -> None:
        if self.meta is not None and self._multimedia_playing:
            self.current_frame = self._requested = self.meta.frame_at(sec)
            self._update_labels()
            self.position_changed.emit(self.current_frame, self.current_sec)

    def toggle(self) -> None:
        self.pause() if self.is_playing else self.play()

    def current_image(self) -> QImage | None:
        return self.view.image

    def shutdown(self) -> None:
        """Stop playing and release the decoder (waits for the worker). Later requests do nothing."""
        if self._closed:
            return
        self.pause()
        self._drop_multimedia()
        self._generation += 1
        self._submit(self._close_decoder)
        self._closed = True
        self._executor.shutdown(wait=True)

    def _submit(self, job: Callable[..., None], *args: Any) -> None:
        if not self._closed:
            self._executor.submit(job, *args)

    # -- playing ----------------------------------------------------------------------------------

    def _tick(self) -> None:
        meta = self.meta
        if meta is None:
            return
        due = self._play_from + int(self._clock.elapsed() / 1000 * meta.fps)
        if due >= meta.frame_count:
            self._request(meta.frame_count - 1)
            self.pause()
            return
        if due > self._requested:
            self.dropped_frames += max(0, due - max(self._requested, self.current_frame) - 1)
            self._request(due)

    # -- the worker --------------------------------------------------------------------------------

    def _request(self, index: int) -> None:
        if index == self._requested and (self._busy or index == self.current_frame):
            return
        self._requested = index
        if self._busy:
            if self._wanted is not None and self.is_playing:
                self.dropped_frames += 1
            self._wanted = index
            return
        self._busy = True
        self._submit(self._frame_job, self._generation, index)

    def _open_job(self, generation: int, path: Path, at_sec: float) -> None:
        self._close_decoder()
        try:
            decoder = FrameDecoder(path)
        except MediaError as exc:
            self._delivery.failed.emit(generation, str(exc))
            return
        with self._lock:
            self._decoder = decoder
        meta = decoder.meta
        self._delivery.opened.emit(generation, meta)
        self._frame_job(generation, meta.frame_at(at_sec))

    def _frame_job(self, generation: int, index: int) -> None:
        decoder = self._decoder
        if decoder is None or generation != self._generation:
            self._delivery.frame.emit(generation, index, None)
            return
        try:
            image = decoder.frame(index)
        except MediaError as exc:
            self._delivery.failed.emit(generation, str(exc))
            return
        self._delivery.frame.emit(generation, index, image)

    def _close_decoder(self) -> None:
        with self._lock:
            decoder, self._decoder = self._decoder, None
        if decoder is not None:
            decoder.close()

    def _on_opened(self, generation: int, meta: VideoMeta) -> None:
        if generation != self._generation:
            return
        self.meta = meta
        self._busy = True  # the worker decodes the first frame next
        self._requested = -1
        self._wanted = None
        self._set_enabled(True)
        self.opened.emit(meta)

    def _on_frame(self, generation: int, index: int, image: QImage | None) -> None:
        if generation != self._generation:
            return
        self._busy = False
        if image is not None:
            self.current_frame = index
            if self._requested < 0:
                self._requested = index
            self.view.show_image(image)
            self._update_labels()
            self.position_changed.emit(index, self.current_sec)
        wanted, self._wanted = self._wanted, None
        if wanted is not None and wanted != index:
            self._request(wanted)

    def _on_failed(self, generation: int, message: str) -> None:
        if generation != self._generation:
            return
        self._busy = False
        self.pause()
        self.view.show_message(message)
        self.failed.emit(message)

    def _update_labels(self) -> None:
        meta = self.meta
        if meta is None:
            return
        self.time_label.setText(f"{format_time(self.current_sec)} / {format_time(meta.duration_sec)}")
        self.frame_label.setText(f"frame {self.current_frame} / {meta.frame_count - 1} · {meta.fps:g} fps")
