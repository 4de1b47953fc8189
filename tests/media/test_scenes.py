"""Scene detection on real H.264 videos with cuts, fades, flashes and noise at known times (PyAV)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from PIL import ImageStat

from core.errors import MediaError
from core.media.scenes import SAMPLE_FPS, AnalysisCancelled, Scene, detect_scenes
from tests.fakes.media import tiny_png
from tests.media.scene_videos import (
    Shot,
    dissolve,
    faded_in,
    flashed,
    moving,
    noisy,
    solid,
    write_video,
)

SIZE = (320, 180)
FPS = 24
# A cut is reported at the first analysed frame after it: never early, at most one sample late.
LATE = 1 / SAMPLE_FPS + 1 / FPS


def assert_cuts(scenes: list[Scene], truth: list[float], late: float = LATE) -> None:
    starts = [scene.start_sec for scene in scenes[1:]]
    assert len(starts) == len(truth), f"cuts at {starts}, expected near {truth}"
    for found, real in zip(starts, truth, strict=True):
        assert real - 1e-6 <= found <= real + late, f"cut at {found:.3f}s, the real one is at {real:.3f}s"


def assert_covering(scenes: list[Scene], duration: float) -> None:
    assert scenes[0].start_sec == 0
    assert scenes[-1].end_sec == pytest.approx(duration, abs=1 / FPS)
    for before, after in itertools.pairwise(scenes):
        assert before.end_sec == after.start_sec
    for scene in scenes:
        assert scene.start_sec <= scene.keyframe_sec < scene.end_sec
        assert scene.frame_number == round(scene.keyframe_sec * FPS)


def test_hard_cuts_between_moving_shots_are_found_where_they_are(tmp_path: Path) -> None:
    video = tmp_path / "cuts.mp4"
    truth = write_video(
        video, [Shot(2.0, moving(SIZE, 1)), Shot(1.5, moving(SIZE, 2)), Shot(2.5, moving(SIZE, 3))]
    )
    scenes = detect_scenes(video)
    assert_cuts(scenes, truth)
    assert_covering(scenes, 6.0)
    assert all(scene.keyframe.size == SIZE for scene in scenes)  # smaller than the box: not enlarged


def test_cuts_between_solid_colours(tmp_path: Path) -> None:
    video = tmp_path / "blocks.mp4"
    colours = [(200, 30, 30), (30, 30, 200), (30, 200, 30), (230, 230, 230)]
    truth = write_video(video, [Shot(1.0, solid(SIZE, colour)) for colour in colours])
    scenes = detect_scenes(video)
    assert_cuts(scenes, truth)
    for scene, colour in zip(scenes, colours, strict=True):
        mean = ImageStat.Stat(scene.keyframe).mean
        assert mean == pytest.approx(colour, abs=8), "each keyframe shows its own scene"


def test_a_dissolve_is_not_cut_but_a_cut_after_it_is(tmp_path: Path) -> None:
    video = tmp_path / "dissolve.mp4"
    first, second, third = moving(SIZE, 1), moving(SIZE, 2), moving(SIZE, 3)
    truth = write_video(
        video,
        [
            Shot(1.5, first),
            Shot(1.5, dissolve(first, second, 1.5)),
            Shot(1.5, second),
            Shot(1.5, third),
        ],
    )
    scenes = detect_scenes(video)
    assert_cuts(scenes, truth[2:])  # the dissolve's two ends are no cuts, the hard cut is
    assert_covering(scenes, 6.0)


def test_a_dip_to_black_between_shots_is_not_cut_mid_way(tmp_path: Path) -> None:
    video = tmp_path / "dip.mp4"
    first, second = moving(SIZE, 1), moving(SIZE, 2)
    write_video(
        video,
        [
            Shot(1.5, first),
            Shot(1.0, dissolve(first, solid(SIZE, (0, 0, 0)), 1.0)),
            Shot(1.0, faded_in(second, 1.0)),
            Shot(1.5, second),
        ],
    )
    (scene,) = detect_scenes(video)
    assert ImageStat.Stat(scene.keyframe.convert("L")).mean[0] > 40, "the keyframe is no black frame"


def test_a_fade_in_from_black_is_one_scene_whose_keyframe_is_not_black(tmp_path: Path) -> None:
    video = tmp_path / "fade_in.mp4"
    write_video(video, [Shot(3.0, faded_in(moving(SIZE, 5), 1.2))])
    (scene,) = detect_scenes(video)
    assert scene.keyframe_sec >= 1.0
    assert ImageStat.Stat(scene.keyframe.convert("L")).mean[0] > 40


def test_heavy_noise_is_no_cut_but_a_cut_under_noise_is(tmp_path: Path) -> None:
    video = tmp_path / "noise.mp4"
    truth = write_video(
        video, [Shot(2.5, noisy(moving(SIZE, 1), 70)), Shot(2.0, noisy(moving(SIZE, 4), 70, seed=8))]
    )
    scenes = detect_scenes(video)
    assert_cuts(scenes, truth)


def test_flashes_are_not_cuts(tmp_path: Path) -> None:
    video = tmp_path / "flash.mp4"
    shot = flashed(flashed(moving(SIZE, 1), 1.0, 2, FPS), 2.5, 1, FPS)
    write_video(video, [Shot(4.0, shot)])
    assert len(detect_scenes(video)) == 1


def test_a_video_without_cuts_is_one_scene_covering_it(tmp_path: Path) -> None:
    video = tmp_path / "still.mp4"
    write_video(video, [Shot(2.0, moving(SIZE, 9))])
    (scene,) = detect_scenes(video)
    assert scene.start_sec == 0.0
    assert scene.end_sec == pytest.approx(2.0, abs=1 / FPS)


def test_scenes_shorter_than_the_minimum_are_merged(tmp_path: Path) -> None:
    video = tmp_path / "quick.mp4"
    shots = [Shot(2.0, moving(SIZE, 1)), Shot(0.5, moving(SIZE, 2)), Shot(2.0, moving(SIZE, 3))]
    truth = write_video(video, shots)
    assert_cuts(detect_scenes(video, min_scene_sec=0.3), truth)
    # With a 1 s minimum the half-second shot cannot stand alone: its start is kept, the next cut is not.
    assert_cuts(detect_scenes(video, min_scene_sec=1.0), truth[:1])
    # A short last shot joins the scene before it.
    tail = tmp_path / "tail.mp4"
    write_video(tail, [Shot(2.0, moving(SIZE, 1)), Shot(0.4, moving(SIZE, 2))])
    (scene,) = detect_scenes(tail, min_scene_sec=0.6)
    assert scene.end_sec == pytest.approx(2.4, abs=1 / FPS)


def test_b_frames_at_30_fps_skip_decoding_yet_find_the_cuts(tmp_path: Path) -> None:
    video = tmp_path / "bframes.mp4"
    truth = write_video(
        video,
        [Shot(2.0, moving(SIZE, 1)), Shot(2.0, moving(SIZE, 2)), Shot(2.0, moving(SIZE, 3))],
        fps=30,
        bframes=True,
    )
    scenes = detect_scenes(video)
    # Only reference frames are decoded here: samples lie up to four frames apart.
    assert_cuts(scenes, truth, late=1 / SAMPLE_FPS + 4 / 30)
    assert [s.frame_number for s in scenes] == [round(s.keyframe_sec * 30) for s in scenes]


def test_progress_is_reported_up_to_the_duration(tmp_path: Path) -> None:
    video = tmp_path / "progress.mp4"
    write_video(video, [Shot(3.0, moving(SIZE, 1))])
    seen: list[tuple[float, float]] = []
    detect_scenes(video, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == pytest.approx((3.0, 3.0))
    dones = [done for done, _ in seen]
    assert dones == sorted(dones)


def test_cancel_stops_the_analysis(tmp_path: Path) -> None:
    video = tmp_path / "cancel.mp4"
    write_video(video, [Shot(3.0, moving(SIZE, 1))])
    calls = 0

    def cancel() -> bool:
        nonlocal calls
        calls += 1
        return calls > 10

    with pytest.raises(AnalysisCancelled, match="cancelled"):
        detect_scenes(video, cancel=cancel)
    assert calls == 11  # checked on every frame, stopped at once


def test_damaged_and_wrong_files_give_clear_errors(tmp_path: Path) -> None:
    video = tmp_path / "whole.mp4"
    write_video(video, [Shot(2.0, moving(SIZE, 1))])
    data = video.read_bytes()

    cut_short = tmp_path / "cut_short.mp4"
    cut_short.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="truncated"):
        detect_scenes(cut_short)

    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(MediaError, match=r"garbage\.mp4"):
        detect_scenes(garbage)

    picture = tmp_path / "picture.png"
    picture.write_bytes(tiny_png())
    with pytest.raises(MediaError, match="not a video"):
        detect_scenes(picture)

    with pytest.raises(MediaError, match="does not exist"):
        detect_scenes(tmp_path / "missing.mp4")


def test_a_video_whose_frames_are_damaged_says_so(tmp_path: Path) -> None:
    video = tmp_path / "scrambled.mp4"
    write_video(video, [Shot(2.0, moving(SIZE, 1))])
    data = bytearray(video.read_bytes())
    # Overwrite the coded pictures (the mdat box's payload), keeping the index intact.
    start = data.index(b"mdat") + 4
    data[start : start + len(data) // 2] = bytes(len(data[start : start + len(data) // 2]))
    video.write_bytes(bytes(data))
    with pytest.raises(MediaError, match=r"scrambled\.mp4"):
        detect_scenes(video)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="threshold"):
        detect_scenes(tmp_path / "x.mp4", threshold=0)
    with pytest.raises(ValueError, match="min_scene_sec"):
        detect_scenes(tmp_path / "x.mp4", min_scene_sec=-1)
