"""The PyAV player lands on exact frames: seeking, stepping both ways across keyframes, and playing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from PIL import Image
from PySide6.QtGui import QImage
from pytestqt.qtbot import QtBot

from core.errors import MediaError
from ui.video_player import FrameDecoder, VideoPlayer, format_time

FPS = 24
FRAMES = 60


def numbered_video(path: Path, frames: int = FRAMES, fps: int = FPS, gop: int = 10) -> Path:
    """Frame i is a flat grey of level 4·i, so the shown frame's index can be read from a pixel."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = 64, 48
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(gop), "keyint_min": str(gop), "qp": "0"}
        for index in range(frames):
            image = Image.new("RGB", (64, 48), (4 * index,) * 3)
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def index_shown(image: QImage | None) -> int:
    assert image is not None and not image.isNull()
    return round(image.pixelColor(32, 24).red() / 4)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return numbered_video(tmp_path / "numbered.mp4")


@pytest.fixture
def player(qtbot: QtBot, video: Path) -> Iterator[VideoPlayer]:
    widget = VideoPlayer()
    qtbot.addWidget(widget)
    widget.resize(480, 360)
    widget.show()
    with qtbot.waitSignal(widget.position_changed, timeout=10_000):
        widget.open(video, at_sec=1.0)
    yield widget
    widget.shutdown()


def wait_for_frame(qtbot: QtBot, player: VideoPlayer, index: int) -> None:
    qtbot.waitUntil(lambda: player.current_frame == index and not player._busy, timeout=10_000)


def test_the_decoder_returns_the_exact_frame_in_any_order(video: Path) -> None:
    decoder = FrameDecoder(video)
    try:
        assert (decoder.meta.fps, decoder.meta.frame_count) == (FPS, FRAMES)
        for index in (0, 37, 38, 39, 12, 11, 59, 1):
            assert index_shown(decoder.frame(index)) == index
        assert index_shown(decoder.frame(40)) == 40
        seeks = decoder.seeks
        for index in range(41, 50):  # playing on decodes forward without seeking
            assert index_shown(decoder.frame(index)) == index
        assert decoder.seeks == seeks
        assert index_shown(decoder.frame(500)) == FRAMES - 1  # past the end: the last frame
    finally:
        decoder.close()


def test_opening_shows_the_frame_at_the_asked_time(player: VideoPlayer) -> None:
    assert player.meta is not None and player.meta.frame_count == FRAMES
    assert player.current_frame == FPS  # 1.0 s at 24 fps
    assert index_shown(player.current_image()) == FPS
    assert player.time_label.text() == f"{format_time(1.0)} / {format_time(FRAMES / FPS)}"
    assert "frame 24 / 59" in player.frame_label.text()


def test_stepping_lands_on_each_neighbouring_frame(qtbot: QtBot, player: VideoPlayer) -> None:
    player.forward_button.click()
    wait_for_frame(qtbot, player, 25)
    assert index_shown(player.current_image()) == 25
    player.seek_frame(20)  # a keyframe (every 10 frames)
    wait_for_frame(qtbot, player, 20)
    player.back_button.click()  # across the keyframe boundary: seeks back to frame 10 and decodes on
    wait_for_frame(qtbot, player, 19)
    assert index_shown(player.current_image()) == 19
    for _ in range(3):
        player.step(1)  # quicker than the decoder: requests accumulate, none is lost
    wait_for_frame(qtbot, player, 22)
    assert index_shown(player.current_image()) == 22
    player.seek(2.0)
    wait_for_frame(qtbot, player, 48)
    assert abs(player.current_sec - 2.0) < 1e-9


def test_stepping_stops_at_either_end(qtbot: QtBot, player: VideoPlayer) -> None:
    player.seek_frame(0)
    wait_for_frame(qtbot, player, 0)
    player.step(-1)
    qtbot.wait(100)
    assert player.current_frame == 0
    player.seek_frame(FRAMES + 10)
    wait_for_frame(qtbot, player, FRAMES - 1)
    assert index_shown(player.current_image()) == FRAMES - 1


def test_playing_runs_to_the_end_in_real_time_and_stops(qtbot: QtBot, player: VideoPlayer) -> None:
    player.seek_frame(36)
    wait_for_frame(qtbot, player, 36)
    shown: list[int] = []
    player.position_changed.connect(lambda index, _: shown.append(index))
    with qtbot.waitSignal(player.playing_changed, timeout=5_000, check_params_cb=lambda p: p is False):
        player.play_button.click()
    assert shown == sorted(shown) and shown[-1] == FRAMES - 1
    # 24 frames at 24 fps: every one shown, or the few dropped counted.
    assert len(set(shown)) + player.dropped_frames >= 23
    assert index_shown(player.current_image()) == FRAMES - 1
    assert not player.is_playing


def test_a_file_that_is_not_a_video_says_so(qtbot: QtBot, tmp_path: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(MediaError, match="Cannot play"):
        FrameDecoder(bad)
    widget = VideoPlayer()
    qtbot.addWidget(widget)
    with qtbot.waitSignal(widget.failed, timeout=10_000) as failed:
        widget.open(bad)
    assert "Cannot play" in failed.args[0] and widget.view.message == failed.args[0]
    assert not widget.play_button.isEnabled()
    widget.shutdown()
