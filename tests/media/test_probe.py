"""probe, frame_at and last_frame on real files: what they report, and how they refuse bad files."""

from __future__ import annotations

import array
import io
import json
import math
import random
import struct
from fractions import Fraction
from pathlib import Path

import av
import pytest
from av.audio.stream import AudioStream
from PIL import Image

from core.db.enums import MediaType
from core.errors import MediaError
from core.media import MediaFacts, frame_at, last_frame, probe, read_image, render
from tests.fakes.media import tiny_mp4, tiny_png

from . import mean_difference, numbered_frame, numbered_video


def _sine(path: Path, codec: str, seconds: float = 1.0, rate: int = 8000) -> Path:
    """A mono 440 Hz tone, encoded with ``codec`` into the container ``path``'s suffix names."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        assert isinstance(stream, AudioStream)
        sample_format = stream.codec_context.format.name  # s16 for PCM, fltp for AAC
        chunk = stream.codec_context.frame_size or 1024
        total = round(seconds * rate)
        for start in range(0, total, chunk):
            count = min(chunk, total - start)
            if stream.codec_context.frame_size and count < chunk:
                count = chunk  # fixed-size codecs: pad the tail with a little more tone
            tone = [0.4 * math.sin(2 * math.pi * 440 * (start + i) / rate) for i in range(count)]
            if sample_format == "s16":
                samples = array.array("h", (round(v * 32767) for v in tone)).tobytes()
            else:
                samples = array.array("f", tone).tobytes()
            frame = av.AudioFrame(format=sample_format, layout="mono", samples=count)
            frame.planes[0].update(samples)
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def _glb(document: dict[str, object]) -> bytes:
    body = json.dumps(document).encode()
    body += b" " * (-len(body) % 4)
    chunk = struct.pack("<I4s", len(body), b"JSON") + body
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunk)) + chunk


def test_an_image_is_measured_with_pillow(tmp_path: Path) -> None:
    path = tmp_path / "still.png"
    path.write_bytes(tiny_png(3, size=(64, 48)))

    assert probe(path) == MediaFacts(MediaType.IMAGE, "image/png", 64, 48, frame_count=1)


def test_a_rotated_photo_reports_the_size_it_is_shown_at(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    buffer = io.BytesIO()
    Image.new("RGB", (80, 40), "red").save(buffer, format="JPEG", exif=exif)
    path = tmp_path / "phone.jpg"
    path.write_bytes(buffer.getvalue())

    facts = probe(path)

    assert (facts.mime_type, facts.width, facts.height) == ("image/jpeg", 40, 80)
    assert read_image(path).size == (40, 80)


def test_a_video_reports_duration_size_rate_frames_and_codec(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(tiny_mp4(1, seconds=2.0, size=(64, 48), fps=12))

    assert probe(path) == MediaFacts(
        MediaType.VIDEO,
        "video/mp4",
        width=64,
        height=48,
        duration_sec=2.0,
        fps=12.0,
        frame_count=24,
        video_codec="h264",
    )


@pytest.mark.parametrize(
    ("name", "codec", "mime"), [("tone.wav", "pcm_s16le", "audio/wav"), ("tone.m4a", "aac", "audio/mp4")]
)
def test_audio_reports_its_duration_and_codec(tmp_path: Path, name: str, codec: str, mime: str) -> None:
    facts = probe(_sine(tmp_path / name, codec, seconds=1.0))

    assert (facts.media_type, facts.mime_type, facts.audio_codec) == (MediaType.AUDIO, mime, codec)
    assert (facts.width, facts.height, facts.video_codec) == (None, None, None)
    assert facts.duration_sec == pytest.approx(1.0, abs=0.15)


def test_gltf_binary_and_json_are_3d_models(tmp_path: Path) -> None:
    glb = tmp_path / "chair.glb"
    glb.write_bytes(_glb({"asset": {"version": "2.0"}}))
    gltf = tmp_path / "chair.gltf"
    gltf.write_text(json.dumps({"asset": {"version": "2.0"}, "scenes": []}))

    assert probe(glb) == MediaFacts(MediaType.MODEL_3D, "model/gltf-binary")
    assert probe(gltf) == MediaFacts(MediaType.MODEL_3D, "model/gltf+json")


def _cut(data: bytes, fraction: float) -> bytes:
    return data[: int(len(data) * fraction)]


@pytest.mark.parametrize(
    ("name", "data", "phrase"),
    [
        ("empty.mp4", b"", "the file is empty (0 bytes)"),
        ("cut.mp4", _cut(tiny_mp4(2, seconds=2.0), 0.6), "the file is truncated"),
        ("noise.mp4", random.Random(7).randbytes(20_000), "damaged or not a media file"),
        ("cut.png", _cut(tiny_png(4, size=(200, 100)), 0.7), "damaged PNG file"),
        ("cut.glb", _cut(_glb({"asset": {"version": "2.0"}}), 0.7), "the file is truncated"),
        ("settings.json", b'{"volume": 3}', "not a glTF model"),
        ("notes.txt", b"just some words\n" * 40, "not a media file"),
    ],
)
def test_bad_files_are_refused_with_a_message_naming_them(
    tmp_path: Path, name: str, data: bytes, phrase: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)

    with pytest.raises(MediaError) as caught:
        probe(path)

    message = str(caught.value)
    assert str(path) in message and phrase in message


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="does not exist"):
        probe(tmp_path / "gone.mp4")


def test_a_video_cut_short_after_its_index_is_noticed(tmp_path: Path) -> None:
    # The index (moov) is at the front, so the header still promises every frame.
    whole = render.text_to_video(tmp_path / "whole.mp4", "cut me", 1, duration_sec=2, size=(64, 48), fps=12)
    data = whole.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(_cut(data, 0.75))

    with pytest.raises(MediaError, match="the file is truncated"):
        probe(cut)
    assert probe(whole).duration_sec == 2.0


# -- frames ----------------------------------------------------------------------------------------

COUNT, FPS = 24, 12


@pytest.fixture(scope="module")
def numbered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return numbered_video(tmp_path_factory.mktemp("frames") / "numbered.mp4", COUNT, FPS)


def _which(image: Image.Image) -> int:
    """The index of the numbered frame ``image`` looks most like."""
    return min(range(COUNT), key=lambda i: mean_difference(image, numbered_frame(i, COUNT)))


@pytest.mark.parametrize(
    ("t", "index"),
    [(0.0, 0), (0.05, 0), (0.5, 6), (7 / 12, 7), (0.999, 11), (1.0, 12), (1.95, 23), (2.0, 23), (60.0, 23)],
)
def test_frame_at_is_the_frame_shown_at_that_time(numbered: Path, t: float, index: int) -> None:
    frame = frame_at(numbered, t)

    assert _which(frame) == index
    assert mean_difference(frame, numbered_frame(index, COUNT)) < 3


def test_last_frame_is_the_final_frame(numbered: Path) -> None:
    assert _which(last_frame(numbered)) == COUNT - 1


def test_frame_at_refuses_a_negative_time(numbered: Path) -> None:
    with pytest.raises(ValueError, match="0 or more seconds"):
        frame_at(numbered, -1)


def test_a_frame_of_a_file_without_video_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="has no video stream"):
        last_frame(_sine(tmp_path / "tone.wav", "pcm_s16le"))
