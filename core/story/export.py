"""Exporting a story for a game runtime (one story.json with the media files beside it, named by their
sha256), importing such a bundle back into a library, and exporting the structure as Twine (Twee 3).

The runtime format is documented in docs/STORY_FORMAT.md and described by resources/story/story.schema.json.
It holds no database ids: videos are named by their content hash, branches, variants and clips by their
tags. So exporting the same story from two libraries gives the same bytes, and an import into another
library (matching videos by sha256) followed by an export gives back the same file.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import mimetypes
import os
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.enums import BranchType, MediaType
from core.db.models import LOCAL_USERNAME, Asset, AssetBranch, AssetBranchVariant, AssetClip, User
from core.importer import ImportService
from core.story.conditions import InvalidCondition, check_condition
from core.story.media import ExportCancelled, frame_index
from core.story.model import InvalidBundle, StoryError, StoryGraph, VideoStory
from core.story.schema import schema_errors
from core.story.validate import validate_story

FORMAT = "pixsim-story"
VERSION = 1
STORY_FILE = "story.json"
_CHUNK = 1 << 20
_EXTENSIONS = {
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "video/quicktime": ".mov",
    "video/x-matroska": ".mkv",
    "image/png": ".png",
    "image/jpeg": ".jpg",
}

EnsureLocal = Callable[[int], Awaitable[Path]]


class StoryNotExportable(StoryError):
    """The story has errors a game would trip on; ``problems`` lists them."""

    def __init__(self, message: str, problems: Sequence[str]) -> None:
        super().__init__(message)
        self.problems = list(problems)


@dataclass(frozen=True)
class ExportProgress:
    """Where a runtime export is: media files copied so far, by count and bytes."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    current: str | None  # the file being written


ProgressCallback = Callable[[ExportProgress], None]


# -- runtime export ------------------------------------------------------------------------------------


def story_order(graph: StoryGraph) -> list[int]:
    """The videos of ``graph`` reachable from its root, in the order a reader meets them: the root,
    then breadth first along branches (by time) and variants (by order). Independent of database ids."""
    order = [graph.root_id]
    seen = {graph.root_id}
    index = 0
    while index < len(order):
        story = graph.videos[order[index]]
        index += 1
        for branch in _branches(story):
            for variant in _variants(branch):
                target = variant.asset_id
                if target is not None and target in graph.videos and target not in seen:
                    seen.add(target)
                    order.append(target)
    return order


def runtime_document(graph: StoryGraph) -> dict[str, Any]:
    """The story.json document of ``graph`` (media not copied). ``StoryNotExportable`` if it has errors
    other than variants still being generated (those are left out)."""
    errors = [p.message for p in validate_story(graph) if p.severity == "error"]
    if errors:
        raise StoryNotExportable(
            f"The story has {len(errors)} problem(s) to fix before it can be exported: " + errors[0],
            errors,
        )
    order = story_order(graph)
    keys = _video_keys(graph, order)
    videos = []
    for video_id in order:
        story = graph.videos[video_id]
        asset = graph.assets[video_id]
        if asset.sha256 is None or asset.size_bytes is None:
            raise StoryNotExportable(
                f"'{story.video.name}' has no local copy yet (its hash is unknown); download it first.",
                [],
            )
        info = story.video
        videos.append(
            {
                "id": keys[video_id],
                "name": info.name,
                "file": asset.sha256 + _extension(asset.mime_type),
                "sha256": asset.sha256,
                "size_bytes": asset.size_bytes,
                "mime_type": asset.mime_type or "application/octet-stream",
                "duration_sec": info.duration_sec,
                "fps": info.fps,
                "frame_count": info.frame_count,
                "width": info.width,
                "height": info.height,
                "branches": [
                    {
                        "tag": branch.tag,
                        "name": branch.name,
                        "time_sec": branch.time_sec,
                        "frame": branch.frame,
                        "type": branch.branch_type.value,
                        "description": branch.description,
                        "game_metadata": branch.game_metadata,
                        "variants": [
                            {
                                "tag": variant.tag,
                                "name": variant.name,
                                "video": keys[variant.asset_id],
                                "weight": variant.weight,
                                "conditions": variant.conditions,
                                "default": variant.is_default,
                                "order": order_index,
                            }
                            for order_index, variant in enumerate(
                                v for v in _variants(branch) if v.asset_id is not None and v.asset_id in keys
                            )
                        ],
                    }
                    for branch in _branches(story)
                ],
                "clips": [
                    {
                        "tag": clip.tag,
                        "name": clip.name,
                        "start_sec": clip.start_sec,
                        "end_sec": clip.end_sec,
                        "start_frame": clip.start_frame,
                        "end_frame": clip.end_frame,
                        "description": clip.description,
                        "tags": list(clip.tags),
                    }
                    for clip in sorted(story.clips, key=lambda c: (c.start_sec, c.tag))
                ],
            }
        )
    return {
        "format": FORMAT,
        "version": VERSION,
        "title": graph.videos[graph.root_id].video.name,
        "start": keys[graph.root_id],
        "videos": videos,
    }


async def export_runtime(
    graph: StoryGraph,
    dest_dir: Path,
    ensure_local: EnsureLocal,
    progress: ProgressCallback | None = None,
    cancel: asyncio.Event | None = None,
) -> Path:
    """Write ``dest_dir/story.json`` and every video of the story beside it; returns story.json's path.

    Media files are copied (and checked against their sha256) first; story.json is written last and
    atomically, so a cancelled or failed export never leaves a story.json pointing at missing files.
    Files already there with the right content are kept (exporting again is quick)."""
    document = runtime_document(graph)
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoryError(f"Cannot create the export folder {dest_dir}: {exc.strerror or exc}.") from None
    ids = {graph.assets[vid].sha256: vid for vid in story_order(graph)}
    entries = document["videos"]
    total = sum(int(v["size_bytes"]) for v in entries)
    done = 0
    for index, entry in enumerate(entries):
        if cancel is not None and cancel.is_set():
            raise ExportCancelled("The export was cancelled; story.json was not written.")
        if progress is not None:
            progress(ExportProgress(index, len(entries), done, total, entry["file"]))
        source = await ensure_local(ids[entry["sha256"]])
        base = done

        def copied(n: int, base: int = base, name: str = entry["file"], index: int = index) -> None:
            if progress is not None:
                progress(ExportProgress(index, len(entries), base + n, total, name))

        await asyncio.to_thread(
            _copy_verified, source, dest_dir / entry["file"], entry["sha256"], copied, cancel
        )
        done += int(entry["size_bytes"])
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    out = dest_dir / STORY_FILE
    await asyncio.to_thread(_write_atomic, out, text.encode("utf-8"))
    if progress is not None:
        progress(ExportProgress(len(entries), len(entries), total, total, None))
    return out


def _copy_verified(
    source: Path, target: Path, sha256: str, copied: Callable[[int], None], cancel: asyncio.Event | None
) -> None:
    if target.exists() and _sha256(target) == sha256:
        copied(target.stat().st_size)
        return
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    partial = Path(name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(handle, "wb") as dst, source.open("rb") as src:
            while chunk := src.read(_CHUNK):
                if cancel is not None and cancel.is_set():
                    raise ExportCancelled("The export was cancelled; story.json was not written.")
                digest.update(chunk)
                dst.write(chunk)
                size += len(chunk)
                copied(size)
            dst.flush()
            os.fsync(dst.fileno())
        if digest.hexdigest() != sha256:
            raise StoryError(
                f"The library's copy of {target.name} does not match its recorded hash (damaged?). "
                "Run `pixsim cache` checks or download it again."
            )
        partial.replace(target)
    except OSError as exc:
        raise StoryError(f"Cannot write {target}: {exc.strerror or exc}.") from None
    finally:
        partial.unlink(missing_ok=True)


def _write_atomic(out: Path, data: bytes) -> None:
    handle, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")
    partial = Path(name)
    try:
        with os.fdopen(handle, "wb") as dst:
            dst.write(data)
            dst.flush()
            os.fsync(dst.fileno())
        partial.replace(out)
    except OSError as exc:
        raise StoryError(f"Cannot write {out}: {exc.strerror or exc}.") from None
    finally:
        partial.unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _video_keys(graph: StoryGraph, order: Sequence[int]) -> dict[int, str]:
    keys: dict[int, str] = {}
    used: set[str] = set()
    for video_id in order:
        sha = graph.assets[video_id].sha256 or "0" * 64
        key, n = f"v_{sha[:12]}", 1
        while key in used:  # two assets with the same bytes
            n += 1
            key = f"v_{sha[:12]}_{n}"
        used.add(key)
        keys[video_id] = key
    return keys


def _extension(mime_type: str | None) -> str:
    if mime_type in _EXTENSIONS:
        return _EXTENSIONS[mime_type]
    guessed = mimetypes.guess_extension(mime_type or "") or ".bin"
    return guessed if guessed[1:].isalnum() else ".bin"


def _branches(story: VideoStory) -> list[Any]:
    return sorted(story.branches, key=lambda b: (b.time_sec, b.tag))


def _variants(branch: Any) -> list[Any]:
    return sorted(branch.variants, key=lambda v: (v.display_order, v.tag))


# -- runtime import ------------------------------------------------------------------------------------


@dataclass
class RuntimeImport:
    """What an import did: the root video's asset id, and per video whether it was already there."""

    root_asset_id: int
    asset_ids: dict[str, int] = field(default_factory=dict)  # story video id → asset id
    imported: list[int] = field(default_factory=list)  # assets made from the bundle's files
    matched: list[int] = field(default_factory=list)  # assets already in the library (same sha256)
    branches: int = 0
    clips: int = 0


def read_bundle(path: Path) -> tuple[Path, dict[str, Any]]:
    """(bundle folder, checked document) of a story.json (or of the folder holding one)."""
    file = path / STORY_FILE if path.is_dir() else path
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidBundle(
            f"There is no {file.name} at {file.parent}: pick an exported story folder."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidBundle(f"Cannot read {file}: {exc}.") from None
    except json.JSONDecodeError as exc:
        raise InvalidBundle(f"{file} is not valid JSON (line {exc.lineno}: {exc.msg}).") from None
    errors = schema_errors(document)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidBundle(f"{file} is not a PixSim story: {errors[0]}{more}.")
    _check_references(document, file)
    return file.parent, document


def _check_references(document: dict[str, Any], file: Path) -> None:
    ids = [v["id"] for v in document["videos"]]
    if len(set(ids)) != len(ids):
        raise InvalidBundle(f"{file} lists a video id twice.")
    if document["start"] not in ids:
        raise InvalidBundle(f"{file}: the start video {document['start']} is not among its videos.")
    for video in document["videos"]:
        if not video["file"].startswith(video["sha256"]):
            raise InvalidBundle(f"{file}: video {video['id']}'s file is not named by its sha256.")
        tags = [b["tag"] for b in video["branches"]]
        if len(set(tags)) != len(tags):
            raise InvalidBundle(f"{file}: video {video['id']} has two branch points with one tag.")
        clip_tags = [c["tag"] for c in video["clips"]]
        if len(set(clip_tags)) != len(clip_tags):
            raise InvalidBundle(f"{file}: video {video['id']} has two clips with one tag.")
        for branch in video["branches"]:
            variant_tags = [v["tag"] for v in branch["variants"]]
            if len(set(variant_tags)) != len(variant_tags):
                raise InvalidBundle(f"{file}: branch '{branch['tag']}' has two variants with one tag.")
            if sum(1 for v in branch["variants"] if v["default"]) > 1:
                raise InvalidBundle(f"{file}: branch '{branch['tag']}' has more than one default variant.")
            for variant in branch["variants"]:
                if variant["video"] not in ids:
                    raise InvalidBundle(
                        f"{file}: variant '{variant['tag']}' plays video {variant['video']}, which is not listed."
                    )
                try:
                    check_condition(variant["conditions"], f"variant '{variant['tag']}' conditions")
                except InvalidCondition as exc:
                    raise InvalidBundle(f"{file}: {exc}") from None
        for clip in video["clips"]:
            if clip["end_sec"] <= clip["start_sec"]:
                raise InvalidBundle(f"{file}: clip '{clip['tag']}' ends before it starts.")


async def import_runtime(
    path: Path,
    sessions: async_sessionmaker[AsyncSession],
    importer: ImportService,
    cancel: asyncio.Event | None = None,
) -> RuntimeImport:
    """Bring an exported story into the library: each video is matched by sha256 or imported from the
    bundle's file (checked against its hash), then branches, variants and clips are written in one
    transaction. A branch point or clip with the same tag on the same video is replaced."""
    folder, document = await asyncio.to_thread(read_bundle, path)
    result = RuntimeImport(root_asset_id=0)
    async with sessions() as session:
        user_id = await session.scalar(select(User.id).where(User.username == LOCAL_USERNAME))
    new_titles: dict[int, str] = {}
    # First every video is matched or its file checked, so a damaged bundle imports nothing at all.
    missing: list[dict[str, Any]] = []
    for video in document["videos"]:
        async with sessions() as session:
            found = await session.scalar(
                select(Asset.id)
                .where(Asset.user_id == user_id, Asset.sha256 == video["sha256"])
                .order_by(Asset.id)
                .limit(1)
            )
        if found is not None:
            result.matched.append(found)
            result.asset_ids[video["id"]] = found
            continue
        file = folder / video["file"]
        if not file.is_file():
            raise InvalidBundle(
                f"The story's video '{video['name']}' ({video['file']}) is missing from {folder}."
            )
        if await asyncio.to_thread(_sha256, file) != video["sha256"]:
            raise InvalidBundle(f"{file} is damaged: its content does not match the sha256 in story.json.")
        missing.append(video)
    for video in missing:
        if cancel is not None and cancel.is_set():
            raise ExportCancelled("The import was cancelled before the story was written.")
        file = folder / video["file"]
        report = await importer.import_paths([file])
        if report.failed:
            raise InvalidBundle(f"Cannot import {file}: {report.failed[0][1]}")
        ((_, asset_id),) = report.imported or report.duplicates
        if report.imported:
            result.imported.append(asset_id)
            new_titles[asset_id] = video["name"]
        else:
            result.matched.append(asset_id)
        result.asset_ids[video["id"]] = asset_id
    async with sessions() as session, session.begin():
        for asset_id, title in new_titles.items():
            asset = await session.get(Asset, asset_id)
            if asset is not None:
                asset.title = title
        for video in document["videos"]:
            await _write_video_story(session, video, result)
    result.root_asset_id = result.asset_ids[document["start"]]
    return result


async def _write_video_story(session: AsyncSession, video: dict[str, Any], result: RuntimeImport) -> None:
    asset_id = result.asset_ids[video["id"]]
    asset = await session.get(Asset, asset_id)
    if asset is None or asset.media_type is not MediaType.VIDEO:
        raise InvalidBundle(f"The story's video '{video['name']}' is not a video in the library.")
    for branch in video["branches"]:
        await session.execute(
            delete(AssetBranch).where(
                AssetBranch.source_asset_id == asset_id, AssetBranch.branch_tag == branch["tag"]
            )
        )
        row = AssetBranch(
            source_asset_id=asset_id,
            branch_time_sec=float(branch["time_sec"]),
            branch_frame=branch["frame"]
            if branch["frame"] is not None
            else frame_index(branch["time_sec"], asset.fps),
            branch_name=branch["name"],
            branch_tag=branch["tag"],
            branch_type=BranchType(branch["type"]),
            description=branch["description"],
            game_metadata=branch["game_metadata"],
        )
        session.add(row)
        await session.flush()
        for variant in branch["variants"]:
            target = result.asset_ids[variant["video"]]
            if target == asset_id:
                raise InvalidBundle(f"Variant '{variant['tag']}' plays the video it branches from.")
            session.add(
                AssetBranchVariant(
                    branch_id=row.id,
                    variant_asset_id=target,
                    variant_name=variant["name"],
                    variant_tag=variant["tag"],
                    weight=float(variant["weight"]),
                    conditions=variant["conditions"],
                    display_order=variant["order"],
                    is_default=variant["default"],
                )
            )
        result.branches += 1
    for clip in video["clips"]:
        await session.execute(
            delete(AssetClip).where(AssetClip.asset_id == asset_id, AssetClip.clip_tag == clip["tag"])
        )
        session.add(
            AssetClip(
                asset_id=asset_id,
                clip_name=clip["name"],
                clip_tag=clip["tag"],
                start_sec=float(clip["start_sec"]),
                end_sec=float(clip["end_sec"]),
                start_frame=clip["start_frame"],
                end_frame=clip["end_frame"],
                description=clip["description"],
                tags=list(clip["tags"]),
            )
        )
        result.clips += 1
    await session.flush()


# -- Twine (Twee 3) ------------------------------------------------------------------------------------

_TWEE_FORMAT = ("Harlowe", "3.3.9")


def export_twee(graph: StoryGraph) -> str:
    """The story as Twee 3 source for Twine: one passage per stretch of video between branch points,
    linked to the next stretch ("Continue") or, at a branch point, to each variant's first stretch."""
    order = story_order(graph)
    names = _PassageNames()
    segments: dict[int, list[tuple[float, float, Any]]] = {}
    for video_id in order:
        story = graph.videos[video_id]
        cuts: list[tuple[float, float, Any]] = []
        start = 0.0
        for branch in _branches(story):
            cuts.append((start, branch.time_sec, branch))
            start = branch.time_sec
        cuts.append((start, story.video.duration_sec, None))
        segments[video_id] = cuts
        for index, (a, b, _) in enumerate(cuts):
            names.add((video_id, index), f"{story.video.name} {_seconds(a)}–{_seconds(b)} s")
    root = graph.videos[graph.root_id].video.name
    ifid = _ifid(graph)
    lines = [
        ":: StoryTitle",
        _text(root) or "Untitled story",
        "",
        ":: StoryData",
        json.dumps(
            {
                "ifid": ifid,
                "format": _TWEE_FORMAT[0],
                "format-version": _TWEE_FORMAT[1],
                "start": names[(graph.root_id, 0)],
                "zoom": 1,
            },
            indent=2,
        ),
        "",
    ]
    for column, video_id in enumerate(order):
        story = graph.videos[video_id]
        cuts = segments[video_id]
        for index, (a, b, branch) in enumerate(cuts):
            tags = ["video"] + ([f"branch-{branch.branch_type.value}"] if branch is not None else ["end"])
            position = json.dumps(
                {"position": f"{100 + column * 250},{100 + index * 150}", "size": "100,100"}
            )
            lines.append(f":: {_escape(names[(video_id, index)])} [{' '.join(tags)}] {position}")
            lines.append(f"Video: {_text(story.video.name)} ({_seconds(a)}–{_seconds(b)} s)")
            if branch is None:
                lines.append("")
                lines.append("The end.")
            else:
                lines.append("")
                lines.append(
                    f"Branch point: {_text(branch.name)} ({branch.branch_type.value}, tag {branch.tag})"
                )
                if branch.description:
                    lines.append(_text(branch.description))
                linked = False
                for variant in _variants(branch):
                    if variant.asset_id is None or variant.asset_id not in segments:
                        continue
                    extra = []
                    if branch.branch_type is BranchType.RANDOM:
                        extra.append(f"weight {variant.weight:g}")
                    if variant.conditions:
                        extra.append("if " + json.dumps(variant.conditions, separators=(",", ":")))
                    if variant.is_default:
                        extra.append("default")
                    note = f" ({'; '.join(extra)})" if extra else ""
                    lines.append(
                        f"[[{_link_text(variant.name)}->{names[(variant.asset_id, 0)]}]]{_text(note)}"
                    )
                    linked = True
                if not linked:
                    lines.append("(No variant yet.)")
                if index + 1 < len(cuts):
                    lines.append(f"[[Continue without branching->{names[(video_id, index + 1)]}]]")
            lines.append("")
    return "\n".join(lines)


class _PassageNames:
    """Unique passage names without the characters Twee reserves in links and headers."""

    def __init__(self) -> None:
        self._names: dict[tuple[int, int], str] = {}
        self._used: set[str] = set()

    def add(self, key: tuple[int, int], wanted: str) -> None:
        base = _link_text(wanted) or "Passage"
        name, n = base, 1
        while name in self._used:
            n += 1
            name = f"{base} ({n})"
        self._used.add(name)
        self._names[key] = name

    def __getitem__(self, key: tuple[int, int]) -> str:
        return self._names[key]


def _link_text(text: str) -> str:
    """Text safe inside ``[[text->target]]`` and as a passage name (no brackets, braces, arrows, pipes)."""
    cleaned = _text(text)
    for bad in ("[", "]", "{", "}", "|", "->", "<-"):
        cleaned = cleaned.replace(bad, " ")
    return " ".join(cleaned.split())


def _text(text: str) -> str:
    """One line of passage text: no line breaks (a line starting with '::' would open a passage)."""
    return " ".join(text.split()).lstrip(":")


def _escape(name: str) -> str:
    return name.replace("\\", "\\\\")


def _seconds(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "?"


def _ifid(graph: StoryGraph) -> str:
    """A stable IFID for the story (from its root video's hash), in the UUID v4 form Twine uses."""
    seed = (graph.assets[graph.root_id].sha256 or str(graph.root_id)).encode()
    return str(uuid.UUID(bytes=hashlib.sha256(b"pixsim-twee|" + seed).digest()[:16], version=4)).upper()
