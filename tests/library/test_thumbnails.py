"""Thumbnails of real files (video, image, audio, 3D), their disk cache, and the service the grid awaits:
renders are counted to show cache hits, failure markers, single flight and cheap cancellation."""

from __future__ import annotations

import array
import asyncio
import hashlib
import json
import math
import os
import struct
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from fractions import Fraction
from pathlib import Path

import av
import pytest
from av.audio.stream import AudioStream
from PIL import Image, ImageDraw, ImageStat

from core import thumbnails
from core.db.enums import MediaType
from core.errors import MediaError
from core.thumbnails import (
    FORMAT_VERSION,
    THUMB_KIND,
    ThumbnailService,
    ThumbnailStore,
    memory_estimate,
    render_scrub_strip,
    render_thumbnail,
    scrub_kind,
)
from tests.media import mean_difference, numbered_frame, numbered_video

BACKGROUND = (38, 40, 46)


def sha_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_video(path: Path, frames: list[Image.Image], fps: int = 12) -> Path:
    """An H.264 MP4 of ``frames``, a keyframe every 5."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "10", "g": "5", "threads": "1"}
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_image(image)
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_wav(path: Path, samples: list[float], rate: int = 8000) -> Path:
    """A mono 16-bit WAV of ``samples`` (-1..1)."""
    pcm = array.array("h", (round(32767 * s) for s in samples))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="mono")
        assert isinstance(stream, AudioStream)
        frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm))
        frame.planes[0].update(pcm.tobytes())
        frame.sample_rate = rate
        frame.pts = 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_glb(path: Path) -> Path:
    document = json.dumps({"asset": {"version": "2.0"}, "scenes": [{"nodes": []}]}).encode()
    document += b" " * (-len(document) % 4)
    total = 12 + 8 + len(document)
    path.write_bytes(
        struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<I4s", len(document), b"JSON") + document
    )
    return path


def is_blank(image: Image.Image) -> bool:
    stats = ImageStat.Stat(image.convert("L"))
    return stats.mean[0] < 24 and stats.stddev[0] < 6


class Renders:
    """Counts calls of the module's render functions (the service looks them up at call time); an optional
    gate holds every render until the test opens it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sources: list[Path] = []
        self.started = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()
        monkeypatch.setattr(thumbnails, "render_thumbnail", self._wrap(thumbnails.render_thumbnail))
        monkeypatch.setattr(thumbnails, "render_scrub_strip", self._wrap(thumbnails.render_scrub_strip))

    @property
    def count(self) -> int:
        return len(self.sources)

    def _wrap(self, render: Callable[..., Image.Image]) -> Callable[..., Image.Image]:
        def counted(source: Path, *args: object) -> Image.Image:
            with self._lock:
                self.sources.append(Path(source))
            self.started.set()
            assert self.gate.wait(10), "the test never opened the gate"
            return render(source, *args)

        return counted


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> Renders:
    return Renders(monkeypatch)


@pytest.fixture
def store(tmp_path: Path) -> ThumbnailStore:
    return ThumbnailStore(tmp_path / "thumbs")


@pytest.fixture
async def service(store: ThumbnailStore) -> AsyncIterator[ThumbnailService]:
    async with ThumbnailService(store) as svc:
        yield svc


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    image = Image.new("RGB", (60, 40), (200, 120, 40))
    ImageDraw.Draw(image).ellipse((10, 5, 50, 35), fill=(30, 90, 200))
    path = tmp_path / "photo.png"
    image.save(path)
    return path


# -- rendering -------------------------------------------------------------------------------------------


def test_video_poster_skips_a_black_opening_and_keeps_the_aspect_ratio(tmp_path: Path) -> None:
    # 2 s at 12 fps, black for the first 4 frames: 10% in (0.2 s) is still black.
    frames = [
        Image.new("RGB", (320, 180)) if index < 4 else numbered_frame(index, 24, (320, 180))
        for index in range(24)
    ]
    video = write_video(tmp_path / "leader.mp4", frames)

    poster = render_thumbnail(video, MediaType.VIDEO)

    assert poster.mode == "RGB"
    assert poster.size == (256, 144)
    assert not is_blank(poster)


def test_small_video_is_not_enlarged(tmp_path: Path) -> None:
    poster = render_thumbnail(numbered_video(tmp_path / "small.mp4"), MediaType.VIDEO)
    assert poster.size == (64, 48)
    assert not is_blank(poster)


def test_jpeg_with_exif_rotation_comes_out_upright(tmp_path: Path) -> None:
    # Stored landscape, left half red and right half blue; orientation 6 turns it a quarter clockwise to
    # show it, so the upright picture is portrait with red on top.
    stored = Image.new("RGB", (80, 40), (220, 30, 30))
    stored.paste((30, 30, 220), (40, 0, 80, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    stored.save(path, quality=95, exif=exif)

    thumb = render_thumbnail(path, MediaType.IMAGE)

    assert thumb.size == (40, 80)
    top, bottom = thumb.getpixel((20, 10)), thumb.getpixel((20, 70))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert top[0] > 150 and top[2] < 100  # red
    assert bottom[2] > 150 and bottom[0] < 100  # blue


def test_large_jpeg_is_thumbnailed_from_a_reduced_decode(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    big = Image.radial_gradient("L").resize((6000, 4000)).convert("RGB")
    path = tmp_path / "big.jpg"
    big.save(path, quality=90)

    started = time.perf_counter()
    thumb = render_thumbnail(path, MediaType.IMAGE)
    thumb_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with Image.open(path) as full:
        full.load()
    full_seconds = time.perf_counter() - started

    assert thumb.size == (256, 171)
    # Measured, not asserted (machines differ): the draft decode is several times faster than a full one.
    record_property("thumbnail_ms", round(thumb_seconds * 1000, 1))
    record_property("full_decode_ms", round(full_seconds * 1000, 1))


def test_transparent_png_sits_on_the_card_colour(tmp_path: Path) -> None:
    image = Image.new("RGBA", (50, 50), (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle((20, 20, 29, 29), fill=(255, 255, 255, 255))
    path = tmp_path / "alpha.png"
    image.save(path)

    thumb = render_thumbnail(path, MediaType.IMAGE)

    assert thumb.mode == "RGB"
    assert thumb.getpixel((2, 2)) == BACKGROUND
    assert thumb.getpixel((25, 25)) == (255, 255, 255)


def _band_pixels(image: Image.Image, skip_centre: bool) -> int:
    """Non-background pixels in the waveform band (the middle 60% of the height)."""
    middle = image.height // 2
    count = 0
    for y in range(round(image.height * 0.2), round(image.height * 0.8)):
        if skip_centre and y == middle:
            continue
        for x in range(image.width):
            if image.getpixel((x, y)) != BACKGROUND:
                count += 1
    return count


def test_wav_waveform_shows_the_signal_and_silence_is_flat(tmp_path: Path) -> None:
    rate = 8000
    tone = write_wav(
        tmp_path / "tone.wav", [0.5 * math.sin(2 * math.pi * 440 * i / rate) for i in range(rate)]
    )
    silence = write_wav(tmp_path / "silence.wav", [0.0] * rate)

    loud = render_thumbnail(tone, MediaType.AUDIO)
    quiet = render_thumbnail(silence, MediaType.AUDIO)

    assert loud.size == quiet.size == (256, 256)
    assert _band_pixels(loud, skip_centre=True) > 256 * 40  # a solid band well above and below the centre
    assert _band_pixels(quiet, skip_centre=True) == 0
    assert _band_pixels(quiet, skip_centre=False) > 200  # the flat line itself
    # The note icon is drawn on both, outside the band.
    assert any(quiet.getpixel((x, y)) != BACKGROUND for x in range(48) for y in range(48))


def test_compressed_stereo_audio_waveform_shows_the_signal(tmp_path: Path) -> None:
    # AAC decodes to planar float (one plane per channel), unlike the interleaved 16-bit WAV above.
    rate = 44100
    path = tmp_path / "tone.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate, layout="stereo")
        assert isinstance(stream, AudioStream)
        chunk = stream.codec_context.frame_size or 1024
        for start in range(0, rate, chunk):
            tone = array.array(
                "f", (0.5 * math.sin(2 * math.pi * 440 * (start + i) / rate) for i in range(chunk))
            )
            frame = av.AudioFrame(format="fltp", layout="stereo", samples=chunk)
            frame.planes[0].update(tone.tobytes())
            frame.planes[1].update(tone.tobytes())
            frame.sample_rate = rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))

    picture = render_thumbnail(path, MediaType.AUDIO)

    assert _band_pixels(picture, skip_centre=True) > 256 * 40


def test_glb_and_gltf_get_a_drawn_icon(tmp_path: Path) -> None:
    glb = render_thumbnail(write_glb(tmp_path / "model.glb"), MediaType.MODEL_3D)
    gltf_path = tmp_path / "model.gltf"
    gltf_path.write_text(json.dumps({"asset": {"version": "2.0"}}))
    gltf = render_thumbnail(gltf_path, MediaType.MODEL_3D)

    assert glb.size == gltf.size == (256, 256)
    assert ImageStat.Stat(glb.convert("L")).stddev[0] > 10  # something is drawn
    assert mean_difference(glb, gltf) > 0  # labelled with its format


@pytest.mark.parametrize(
    ("name", "data", "media_type"),
    [
        ("bad.mp4", b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 200, MediaType.VIDEO),
        ("bad.jpg", b"\xff\xd8\xff\xe0" + b"garbage" * 200, MediaType.IMAGE),
        ("bad.wav", b"RIFF\x00\x00\x00\x00WAVEjunk" * 20, MediaType.AUDIO),
        ("bad.glb", b"glTF\x02\x00\x00\x00", MediaType.MODEL_3D),
        ("empty.png", b"", MediaType.IMAGE),
    ],
)
def test_unreadable_files_raise_media_error(
    tmp_path: Path, name: str, data: bytes, media_type: MediaType
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(MediaError, match=name):
        render_thumbnail(path, media_type)


def test_scrub_strip_has_count_distinct_frames_in_order(tmp_path: Path) -> None:
    video = numbered_video(tmp_path / "numbered.mp4", count=24, fps=12)

    strip = render_scrub_strip(video, count=8)

    assert strip.size == (8 * 64, 48)
    cells = [strip.crop((i * 64, 0, (i + 1) * 64, 48)) for i in range(8)]
    for i in range(8):
        for j in range(i + 1, 8):
            assert mean_difference(cells[i], cells[j]) > 5, (i, j)
    # Cell i shows the first frame at or after (i + 0.5) / 8 of the 2 s.
    for i, cell in enumerate(cells):
        expected = math.ceil((i + 0.5) * 24 / 8)
        assert mean_difference(cell, numbered_frame(expected, 24)) < 8, i


def test_scrub_strip_of_a_longer_video_seeks_to_the_right_frames(tmp_path: Path) -> None:
    # 10 s with a keyframe every 5 frames: the targets are 15 frames apart, so the decoder seeks.
    video = numbered_video(tmp_path / "long.mp4", count=120, fps=12)

    strip = render_scrub_strip(video, count=8, size=32)

    assert strip.size == (8 * 32, 24)
    for i in range(8):
        expected = numbered_frame(math.ceil((i + 0.5) * 120 / 8), 120).resize((32, 24), Image.Resampling.BOX)
        assert mean_difference(strip.crop((i * 32, 0, (i + 1) * 32, 24)), expected) < 10, i


def test_memory_estimate_is_rgba_bytes() -> None:
    assert memory_estimate(256, 144) == 256 * 144 * 4
    with pytest.raises(ValueError):
        memory_estimate(-1, 10)


# -- the disk cache --------------------------------------------------------------------------------------


def test_store_layout_and_atomic_put(store: ThumbnailStore, photo: Path) -> None:
    sha = sha_of(photo)
    assert store.get(sha, THUMB_KIND, 256) is None

    path = store.put(sha, THUMB_KIND, 256, render_thumbnail(photo, MediaType.IMAGE))

    assert path == store.root / sha[:2] / f"{sha}-thumb-256-v{FORMAT_VERSION}.webp"
    assert store.get(sha, THUMB_KIND, 256) == path
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    with Image.open(path) as cached:
        assert cached.format == "WEBP" and cached.size == (60, 40)
    assert store.forget(sha) == 1
    assert store.get(sha, THUMB_KIND, 256) is None


def test_store_rejects_bad_keys(store: ThumbnailStore) -> None:
    with pytest.raises(Exception, match="sha256"):
        store.path_for("../../etc", THUMB_KIND, 256)
    with pytest.raises(ValueError):
        store.path_for("a" * 64, "../x", 256)


# -- the service -----------------------------------------------------------------------------------------


async def test_cache_hit_does_not_render_again(
    service: ThumbnailService, store: ThumbnailStore, photo: Path, renders: Renders
) -> None:
    sha = sha_of(photo)
    first = await service.thumbnail(photo, sha, MediaType.IMAGE)
    second = await service.thumbnail(photo, sha, MediaType.IMAGE)
    async with ThumbnailService(store) as restarted:  # the disk cache outlives the service
        third = await restarted.thumbnail(photo, sha, MediaType.IMAGE)

    assert first is not None and first == second == third
    assert renders.count == 1


async def test_corrupt_file_gives_none_and_a_marker_and_is_not_retried(
    service: ThumbnailService, store: ThumbnailStore, tmp_path: Path, renders: Renders
) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not really a video" * 50)
    sha = sha_of(bad)

    assert await service.thumbnail(bad, sha, MediaType.VIDEO) is None
    assert store.has_failed(sha, THUMB_KIND, 256)
    assert "Cannot make a thumbnail" in (store.failure(sha, THUMB_KIND, 256) or "")
    assert await service.thumbnail(bad, sha, MediaType.VIDEO) is None
    assert renders.count == 1

    # Forgetting the hash (e.g. after importing it again) clears the marker: the next request tries again.
    assert store.forget(sha) == 1
    assert await service.thumbnail(bad, sha, MediaType.VIDEO) is None
    assert renders.count == 2


async def test_missing_source_gives_none_without_a_marker(
    service: ThumbnailService, store: ThumbnailStore, tmp_path: Path, renders: Renders
) -> None:
    sha = "ab" * 32
    assert await service.thumbnail(tmp_path / "not-downloaded.png", sha, MediaType.IMAGE) is None
    assert not store.has_failed(sha, THUMB_KIND, 256)
    assert renders.count == 0


async def test_concurrent_requests_share_one_render(
    service: ThumbnailService, photo: Path, renders: Renders
) -> None:
    renders.gate.clear()
    sha = sha_of(photo)
    requests = [asyncio.create_task(service.thumbnail(photo, sha, MediaType.IMAGE)) for _ in range(10)]
    assert await asyncio.to_thread(renders.started.wait, 5)
    await asyncio.sleep(0.05)  # every request is now waiting
    renders.gate.set()

    paths = await asyncio.gather(*requests)

    assert renders.count == 1
    assert paths[0] is not None and set(paths) == {paths[0]}


async def test_cancelled_queued_requests_do_not_render(
    store: ThumbnailStore, tmp_path: Path, renders: Renders
) -> None:
    images = []
    for index in range(6):
        path = tmp_path / f"image{index}.png"
        Image.new("RGB", (32, 32), (index * 40, 80, 160)).save(path)
        images.append(path)
    renders.gate.clear()
    async with ThumbnailService(store, max_workers=1) as service:
        first = asyncio.create_task(service.thumbnail(images[0], sha_of(images[0]), MediaType.IMAGE))
        assert await asyncio.to_thread(renders.started.wait, 5)  # the only worker is busy with it
        queued = [
            asyncio.create_task(service.thumbnail(path, sha_of(path), MediaType.IMAGE)) for path in images[1:]
        ]
        await asyncio.sleep(0.01)
        for task in queued:
            task.cancel()
        for task in queued:
            with pytest.raises(asyncio.CancelledError):
                await task
        renders.gate.set()

        assert await first is not None
        assert renders.sources == [images[0]]
        for path in images[1:]:
            assert store.get(sha_of(path), THUMB_KIND, 256) is None
            assert not store.has_failed(sha_of(path), THUMB_KIND, 256)

        # A card scrolled back into view asks again and gets its thumbnail.
        assert await service.thumbnail(images[1], sha_of(images[1]), MediaType.IMAGE) is not None
        assert renders.count == 2


async def test_one_cancelled_waiter_does_not_cancel_the_render_for_the_others(
    store: ThumbnailStore, photo: Path, tmp_path: Path, renders: Renders
) -> None:
    blocker = tmp_path / "blocker.png"
    Image.new("RGB", (16, 16)).save(blocker)
    renders.gate.clear()
    sha = sha_of(photo)
    async with ThumbnailService(store, max_workers=1) as service:
        busy = asyncio.create_task(service.thumbnail(blocker, sha_of(blocker), MediaType.IMAGE))
        assert await asyncio.to_thread(renders.started.wait, 5)
        leaving = asyncio.create_task(service.thumbnail(photo, sha, MediaType.IMAGE))
        staying = asyncio.create_task(service.thumbnail(photo, sha, MediaType.IMAGE))
        await asyncio.sleep(0.01)
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        renders.gate.set()

        assert await busy is not None
        assert await staying == store.path_for(sha, THUMB_KIND, 256)
        assert renders.sources == [blocker, photo]


async def test_request_after_a_cancelled_one_renders(
    store: ThumbnailStore, photo: Path, tmp_path: Path, renders: Renders
) -> None:
    blocker = tmp_path / "blocker.png"
    Image.new("RGB", (16, 16)).save(blocker)
    renders.gate.clear()
    sha = sha_of(photo)
    async with ThumbnailService(store, max_workers=1) as service:
        busy = asyncio.create_task(service.thumbnail(blocker, sha_of(blocker), MediaType.IMAGE))
        assert await asyncio.to_thread(renders.started.wait, 5)
        gone = asyncio.create_task(service.thumbnail(photo, sha, MediaType.IMAGE))
        await asyncio.sleep(0.01)
        gone.cancel()
        # Asked again at once, in the same loop turn as the cancellation lands.
        again = asyncio.create_task(service.thumbnail(photo, sha, MediaType.IMAGE))
        with pytest.raises(asyncio.CancelledError):
            await gone
        renders.gate.set()

        assert await busy is not None
        assert await again is not None
        assert renders.sources == [blocker, photo]


async def test_scrub_strip_is_cached_under_its_own_kind(
    service: ThumbnailService, store: ThumbnailStore, tmp_path: Path, renders: Renders
) -> None:
    video = numbered_video(tmp_path / "clip.mp4", count=24, fps=12)
    sha = sha_of(video)

    strip = await service.scrub_strip(video, sha, count=6, size=128)
    poster = await service.thumbnail(video, sha, MediaType.VIDEO, size=128)
    again = await service.scrub_strip(video, sha, count=6, size=128)

    assert strip is not None and strip == again == store.path_for(sha, scrub_kind(6), 128)
    assert poster is not None and poster != strip
    with Image.open(strip) as image:
        assert image.size == (6 * 64, 48)
    assert renders.count == 2


async def test_scrub_strip_of_a_still_image_gives_none(
    service: ThumbnailService, store: ThumbnailStore, photo: Path
) -> None:
    sha = sha_of(photo)
    assert await service.scrub_strip(photo, sha) is None
    assert store.has_failed(sha, scrub_kind(8), 256)


async def test_closed_service_refuses_new_work_but_serves_the_cache(
    store: ThumbnailStore, photo: Path
) -> None:
    sha = sha_of(photo)
    service = ThumbnailService(store)
    cached = await service.thumbnail(photo, sha, MediaType.IMAGE)
    await service.aclose()

    assert await service.thumbnail(photo, sha, MediaType.IMAGE) == cached
    with pytest.raises(RuntimeError, match="closed"):
        await service.thumbnail(photo, sha, MediaType.IMAGE, size=64)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are a Linux feature")
async def test_render_threads_yield_the_cpu_to_the_ui(tmp_path: Path) -> None:
    service = ThumbnailService(ThumbnailStore(tmp_path / "thumbs"))
    try:
        loop = asyncio.get_running_loop()
        niceness = await loop.run_in_executor(
            service._executor, lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        )
        assert niceness >= 10
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < 10  # the caller is untouched
    finally:
        await service.aclose()
