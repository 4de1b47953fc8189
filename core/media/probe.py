"""What a media file is, read from its bytes (PyAV for video and audio, Pillow for images, the glTF header
for 3D models), and exact frames of a video. Every failure is a ``MediaError`` that names the file."""

from __future__ import annotations

import json
import math
import mimetypes
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.stream
from PIL import Image, ImageOps, UnidentifiedImageError

from core.db.enums import MediaType
from core.errors import MediaError

StrPath = str | os.PathLike[str]

# Still-image formats Pillow may claim. Others it knows (TGA, MPEG, ...) have weak signatures that match
# arbitrary or video bytes, so those go to PyAV or are refused.
_IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "AVIF", "BMP", "TIFF")
# What Pillow's decoders raise on damaged data (struct.error and EOFError from truncated headers too).
_IMAGE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    struct.error,
    Image.DecompressionBombError,
)
# Demuxers that accept files which are not media to PixSim: text shown as ANSI art, single images.
_REFUSED_DEMUXERS = {"tty", "image2", "ico"}
_SUPPORTED = (
    "MP4, MOV, WebM and MKV video; PNG, JPEG, WebP, GIF and AVIF images; WAV, MP3, AAC, "
    "FLAC and Ogg audio; glTF 3D models"
)
# Frame times are rationals; a requested time this close to a frame's start counts as that frame.
_TIME_EPSILON = 1e-6
_EXIF_ORIENTATION = 0x0112
_GLB_HEADER = struct.Struct("<4sII")
_GLB_CHUNK = struct.Struct("<I4s")


@dataclass(frozen=True)
class MediaFacts:
    """Facts about one media file. Sizes are as displayed (EXIF orientation applied to images)."""

    media_type: MediaType
    mime_type: str
    width: int | None = None
    height: int | None = None
    duration_sec: float | None = None
    fps: float | None = None
    frame_count: int | None = None
    video_codec: str | None = None
    audio_codec: str | None = None


def probe(path: StrPath) -> MediaFacts:
    """The facts of the file at ``path``; ``MediaError`` if it is missing, empty, damaged or not media.

    Reads headers and indexes, plus the packets of the last second or so to notice a file that was cut
    short; it never decodes a whole video.
    """
    file = Path(path)
    size = _file_size(file)
    try:
        with file.open("rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        raise MediaError(f"Cannot read {file}: {exc.strerror or exc}.") from None
    if head.startswith(b"glTF"):
        return _probe_glb(file, size)
    if file.suffix.lower() == ".gltf" or head.lstrip()[:1] == b"{":
        return _probe_gltf(file)
    image = _probe_image(file)
    if image is not None:
        return image
    return _probe_av(file, size)


def read_image(path: StrPath) -> Image.Image:
    """The image at ``path`` fully decoded, upright (EXIF orientation applied), in RGB."""
    file = Path(path)
    _file_size(file)
    try:
        with Image.open(file, formats=_IMAGE_FORMATS) as image:
            image.load()
            upright = ImageOps.exif_transpose(image)
            return _to_rgb(upright)
    except UnidentifiedImageError:
        raise _unsupported(file, "it is not an image") from None
    except _IMAGE_ERRORS as exc:
        raise _damaged(file, "image", exc) from None


def frame_at(path: StrPath, t_sec: float) -> Image.Image:
    """The frame shown at ``t_sec`` seconds from the start (RGB), decoded from the previous keyframe.

    A time at or past the end gives the last frame.
    """
    if not math.isfinite(t_sec) or t_sec < 0:
        raise ValueError(f"a frame time must be 0 or more seconds, got {t_sec}")
    file = Path(path)
    with _open_video(file) as (container, stream):
        return _decode_at(file, container, stream, t_sec)


def last_frame(path: StrPath) -> Image.Image:
    """The last frame of the video at ``path`` (RGB)."""
    file = Path(path)
    with _open_video(file) as (container, stream):
        duration = _stream_duration(container, stream)
        return _decode_at(file, container, stream, duration if duration is not None else math.inf)


# -- files and errors ------------------------------------------------------------------------------


def _file_size(file: Path) -> int:
    try:
        stat = file.stat()
    except FileNotFoundError:
        raise MediaError(f"Cannot read {file}: the file does not exist.") from None
    except OSError as exc:
        raise MediaError(f"Cannot read {file}: {exc.strerror or exc}.") from None
    if not file.is_file():
        raise MediaError(f"Cannot read {file}: it is not a file.")
    if stat.st_size == 0:
        raise MediaError(f"Cannot read {file}: the file is empty (0 bytes). Import or download it again.")
    return stat.st_size


def _truncated(file: Path, size: int) -> MediaError:
    return MediaError(
        f"Cannot read {file}: the file is truncated (it ends early, at {size:,} bytes). "
        "Download or copy it again."
    )


def _damaged(file: Path, kind: str, exc: BaseException) -> MediaError:
    detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return MediaError(f"Cannot read {file}: it is a damaged {kind} file ({detail}).")


def _unsupported(file: Path, why: str) -> MediaError:
    return MediaError(f"Cannot read {file}: {why}. PixSim reads {_SUPPORTED}.")


# -- 3D models ---------------------------------------------------------------------------------------


def _probe_glb(file: Path, size: int) -> MediaFacts:
    with file.open("rb") as handle:
        header = handle.read(_GLB_HEADER.size + _GLB_CHUNK.size)
        if len(header) < _GLB_HEADER.size + _GLB_CHUNK.size:
            raise _truncated(file, size)
        _, version, declared = _GLB_HEADER.unpack_from(header)
        if version != 2:
            raise _unsupported(file, f"it is a glTF binary of version {version} (PixSim reads version 2)")
        if declared > size:
            raise _truncated(file, size)
        chunk_length, chunk_type = _GLB_CHUNK.unpack_from(header, _GLB_HEADER.size)
        if chunk_type != b"JSON":
            raise MediaError(
                f"Cannot read {file}: it is a damaged glTF binary (its first chunk is not JSON)."
            )
        if _GLB_HEADER.size + _GLB_CHUNK.size + chunk_length > size:
            raise _truncated(file, size)
        document = handle.read(chunk_length)
    _check_gltf_json(file, document)
    return MediaFacts(MediaType.MODEL_3D, "model/gltf-binary")


def _probe_gltf(file: Path) -> MediaFacts:
    _check_gltf_json(file, file.read_bytes())
    return MediaFacts(MediaType.MODEL_3D, "model/gltf+json")


def _check_gltf_json(file: Path, document: bytes) -> None:
    try:
        gltf = json.loads(document)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(file, "glTF", exc) from None
    asset = gltf.get("asset") if isinstance(gltf, dict) else None
    if not isinstance(asset, dict) or "version" not in asset:
        raise _unsupported(file, "it is JSON but not a glTF model (no asset version)")


# -- images ------------------------------------------------------------------------------------------


def _probe_image(file: Path) -> MediaFacts | None:
    """Facts of a still (or animated) image, or None when Pillow does not recognise the file."""
    try:
        image = Image.open(file, formats=_IMAGE_FORMATS)
    except UnidentifiedImageError:
        return None
    except _IMAGE_ERRORS as exc:
        raise _damaged(file, "image", exc) from None
    with image:
        fmt = image.format or ""
        width, height = image.size
        try:
            # Reading the orientation or frame count may read on through a damaged file.
            if image.getexif().get(_EXIF_ORIENTATION) in (5, 6, 7, 8):
                width, height = height, width
            frames = int(getattr(image, "n_frames", 1))
            # Decoding is the only way to notice a cut-off image; JPEG can decode at 1/8 scale for it.
            if fmt == "JPEG":
                image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
            image.load()
        except _IMAGE_ERRORS as exc:
            raise _damaged(file, fmt or "image", exc) from None
    mime = Image.MIME.get(fmt) or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    return MediaFacts(MediaType.IMAGE, mime, width, height, frame_count=frames)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image.copy()
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


# -- video and audio ---------------------------------------------------------------------------------


def _open_container(file: Path) -> av.container.InputContainer:
    try:
        return av.open(str(file), metadata_errors="ignore")
    except av.FFmpegError as exc:
        if _bmff_cut_short(file):
            raise _truncated(file, file.stat().st_size) from None
        detail = getattr(exc, "strerror", None) or str(exc)
        raise _unsupported(file, f"it is damaged or not a media file (FFmpeg: {detail})") from None


def _bmff_cut_short(file: Path) -> bool:
    """Whether an MP4/MOV file's top-level boxes run past its end (a download cut short)."""
    size = file.stat().st_size
    with file.open("rb") as handle:
        if handle.read(8)[4:8] != b"ftyp":
            return False
        offset = 0
        while offset + 8 <= size:
            handle.seek(offset)
            header = handle.read(16)
            box_size = int.from_bytes(header[:4], "big")
            if box_size == 1 and len(header) == 16:
                box_size = int.from_bytes(header[8:16], "big")
            elif box_size == 0:
                return False  # the last box extends to the end of the file by definition
            if box_size < 8:
                return False
            offset += box_size
        return offset > size


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    for stream in container.streams.video:
        # Cover art in audio files is a one-picture "video" stream.
        if stream.disposition & av.stream.Disposition.attached_pic:
            continue
        if stream.codec_context.width > 0 and stream.codec_context.height > 0:
            return stream
    return None


def _audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream | None:
    for stream in container.streams.audio:
        if stream.codec_context.sample_rate > 0:
            return stream
    return None


def _probe_av(file: Path, size: int) -> MediaFacts:
    container = _open_container(file)
    with container:
        demuxer = container.format.name
        if demuxer in _REFUSED_DEMUXERS or demuxer.endswith("_pipe"):
            raise _unsupported(file, "it is not a media file (FFmpeg reads it as text or a lone picture)")
        video = _video_stream(container)
        audio = _audio_stream(container)
        primary: av.stream.Stream | None = video or audio
        if primary is None:
            raise _unsupported(file, "it has no video or audio stream")
        streams: list[av.stream.Stream] = [s for s in (video, audio) if s is not None]
        try:
            duration = _checked_duration(container, primary, streams)
        except av.FFmpegError as exc:
            raise _damaged(file, "media", exc) from None
        if duration is None:
            raise _truncated(file, size)
        fps = _fps(video) if video is not None else None
        frames = None
        if video is not None:
            frames = video.frames or (round(duration * fps) if fps else None)
        mime = _av_mime(file, demuxer, container.metadata, video, audio)
        return MediaFacts(
            media_type=MediaType.VIDEO if video is not None else MediaType.AUDIO,
            mime_type=mime,
            width=video.codec_context.width if video is not None else None,
            height=video.codec_context.height if video is not None else None,
            duration_sec=duration,
            fps=fps,
            frame_count=frames,
            video_codec=video.codec_context.name if video is not None else None,
            audio_codec=audio.codec_context.name if audio is not None else None,
        )


def _own_duration(stream: av.stream.Stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


def _stream_duration(container: av.container.InputContainer, stream: av.stream.Stream) -> float | None:
    own = _own_duration(stream)
    if own is not None:
        return own
    if container.duration:
        return container.duration / av.time_base
    return None


def _fps(stream: av.video.stream.VideoStream) -> float | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else None


@dataclass
class _End:
    seconds: float = 0.0
    longest_packet: float = 0.0


def _checked_duration(
    container: av.container.InputContainer, primary: av.stream.Stream, streams: list[av.stream.Stream]
) -> float | None:
    """The primary stream's duration in seconds, or None when the file ends before its header says.

    Containers with an index (MP4, MKV, WebM) declare a duration: then only the packets of the last second
    or so are read, to check they are really there. Without one the streams are demuxed (read, never
    decoded) to measure it.
    """
    own = _own_duration(primary)
    declared = container.duration / av.time_base if container.duration else None
    # MP4 gives each stream a duration; MKV/WebM only the file (the longest stream).
    expected = own if own is not None else declared
    since = max(0.0, expected - 1.0) if expected is not None else None
    ends = _packet_ends(container, streams, since)
    got = (
        ends.get(primary.index)
        if own is not None
        else max(ends.values(), key=lambda e: e.seconds, default=None)
    )
    if expected is not None and (got is None or got.seconds < expected - max(0.1, 2.5 * got.longest_packet)):
        return None
    if own is not None:
        return round(own, 6)
    if primary.index not in ends and since:
        # The primary stream ended well before the others: measure it from the start.
        ends = _packet_ends(container, [primary], None)
    end = ends.get(primary.index)
    return round(end.seconds, 6) if end is not None else None


def _packet_ends(
    container: av.container.InputContainer, streams: list[av.stream.Stream], since: float | None
) -> dict[int, _End]:
    """Per stream index, where its packets from ``since`` seconds (or the start) to the end of the file end."""
    if since:
        try:
            container.seek(int(((container.start_time or 0) / av.time_base + since) * av.time_base))
        except av.FFmpegError:
            container.seek(0)
    else:
        container.seek(0)
    ends: dict[int, _End] = {}
    for packet in container.demux(streams):
        stream = packet.stream
        if packet.pts is None or packet.size == 0 or stream.time_base is None:
            continue
        length = float((packet.duration or 0) * stream.time_base)
        packet_end = float((packet.pts - (stream.start_time or 0)) * stream.time_base) + length
        end = ends.setdefault(stream.index, _End())
        end.seconds = max(end.seconds, packet_end)
        end.longest_packet = max(end.longest_packet, length)
    return ends


_MIME_BY_DEMUXER = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "aac": "audio/aac",
    "avi": "video/x-msvideo",
    "mpeg": "video/mpeg",
    "mpegts": "video/mp2t",
    "flv": "video/x-flv",
}
_WEBM_CODECS = {"vp8", "vp9", "av1", "opus", "vorbis"}


def _av_mime(
    file: Path,
    demuxer: str,
    metadata: dict[str, str],
    video: av.stream.Stream | None,
    audio: av.stream.Stream | None,
) -> str:
    names = set(demuxer.split(","))
    kind = "video" if video is not None else "audio"
    suffix = file.suffix.lower()
    if "mov" in names:
        if metadata.get("major_brand", "").strip() == "qt" or suffix == ".mov":
            return "video/quicktime"
        return f"{kind}/mp4"
    if "matroska" in names:
        codecs = {s.codec_context.name for s in (video, audio) if s is not None}
        return f"{kind}/webm" if suffix == ".webm" or codecs <= _WEBM_CODECS else f"{kind}/x-matroska"
    if "ogg" in names:
        return f"{kind}/ogg"
    for name in names:
        if name in _MIME_BY_DEMUXER:
            return _MIME_BY_DEMUXER[name]
    guessed = mimetypes.guess_type(file.name)[0]
    if guessed and guessed.startswith(kind):
        return guessed
    return "application/octet-stream"


# -- frames ------------------------------------------------------------------------------------------


@contextmanager
def _open_video(
    file: Path,
) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    _file_size(file)
    container = _open_container(file)
    with container:
        stream = _video_stream(container)
        if stream is None:
            raise MediaError(f"Cannot read a frame of {file}: it has no video stream.")
        stream.thread_type = "AUTO"
        yield container, stream


def _decode_at(
    file: Path,
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    t_sec: float,
) -> Image.Image:
    time_base = stream.time_base or Fraction(1, av.time_base)
    start = stream.start_time or 0
    try:
        if t_sec > 0:
            target = start + (int(t_sec / time_base) if math.isfinite(t_sec) else 2**62)
            try:
                container.seek(target, stream=stream, backward=True)
            except av.FFmpegError:
                container.seek(0)
        chosen, first_time = _scan(container, stream, t_sec, start, time_base)
        if chosen is None or (first_time is not None and first_time > t_sec + _TIME_EPSILON and t_sec > 0):
            # The seek landed after the wanted frame (a sparse or missing index): decode from the start.
            container.seek(0)
            chosen, _ = _scan(container, stream, t_sec, start, time_base)
    except av.FFmpegError as exc:
        raise _damaged(file, "video", exc) from None
    if chosen is None:
        raise MediaError(f"Cannot read a frame of {file}: no frame could be decoded. It may be damaged.")
    image: Image.Image = chosen.to_image()  # type: ignore[no-untyped-call]  # untyped in PyAV's stubs
    return image


def _scan(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    t_sec: float,
    start: int,
    time_base: Fraction,
) -> tuple[av.VideoFrame | None, float | None]:
    """Decode forward; the last frame starting at or before ``t_sec``, and the first decoded frame's time."""
    chosen: av.VideoFrame | None = None
    first_time: float | None = None
    for frame in container.decode(stream):
        if frame.pts is None:
            continue
        time = float((frame.pts - start) * time_base)
        if first_time is None:
            first_time = time
        if time > t_sec + _TIME_EPSILON:
            if chosen is None:
                chosen = frame  # the wanted time lies before the first frame: show the first
            break
        chosen = frame
    return chosen, first_time
