"""Plain data the story service hands out: frozen dataclasses, never ORM objects, so the UI can keep
them (for undo) after the session that loaded them is gone."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from core.db.enums import BranchType, JobStatus
from core.errors import PixSimError


class StoryError(PixSimError):
    """A story edit or export cannot be done; ``str(err)`` says why and what to do."""


class BranchTimeOutOfRange(StoryError):
    """A branch time is negative or beyond the video's duration."""


class VariantCycle(StoryError):
    """A variant is the branch's own video, or playing it can lead back to that video."""


class MissingAsset(StoryError):
    """An asset id does not exist, or is not a video where one is needed, or its file is gone."""


class DuplicateTag(StoryError):
    """A tag is already used on this video (branches, clips) or on this branch (variants)."""


class InvalidClipRange(StoryError):
    """A clip starts before 0, ends before it starts, or ends after the video."""


class NotFound(StoryError):
    """A branch, variant or clip id does not exist (deleted elsewhere?)."""


class InvalidBundle(StoryError):
    """A runtime export bundle cannot be imported (malformed story.json, missing or damaged media)."""


class _Unset:
    """The "not given" sentinel of ``update_*`` methods (``None`` is a real value for some fields)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = _Unset()


@dataclass(frozen=True)
class VideoInfo:
    asset_id: int
    name: str
    duration_sec: float
    fps: float | None
    frame_count: int | None
    width: int | None
    height: int | None


@dataclass(frozen=True)
class Variant:
    id: int
    branch_id: int
    asset_id: int | None  # None while the job generating it runs (or after it failed)
    job_id: int | None
    job_status: JobStatus | None
    name: str
    tag: str
    weight: float
    conditions: dict[str, Any]
    display_order: int
    is_default: bool
    asset_name: str | None

    @property
    def pending(self) -> bool:
        """No video yet: a job is generating it (or failed to: see ``job_status``)."""
        return self.asset_id is None


@dataclass(frozen=True)
class Branch:
    id: int
    video_id: int
    time_sec: float
    frame: int | None
    name: str
    tag: str
    branch_type: BranchType
    description: str | None
    game_metadata: dict[str, Any]
    variants: tuple[Variant, ...]

    @property
    def default_variant(self) -> Variant | None:
        return next((v for v in self.variants if v.is_default), None)


@dataclass(frozen=True)
class Clip:
    id: int
    video_id: int
    name: str
    tag: str
    start_sec: float
    end_sec: float
    start_frame: int | None
    end_frame: int | None
    description: str | None
    tags: tuple[str, ...]


@dataclass(frozen=True)
class VideoStory:
    video: VideoInfo
    branches: tuple[Branch, ...]  # by time
    clips: tuple[Clip, ...]  # by start


Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    severity: Severity
    message: str
    branch_id: int | None = None
    variant_id: int | None = None
    clip_id: int | None = None


@dataclass(frozen=True)
class StoryAsset:
    """A video of a story graph with what an export needs to find and describe its file."""

    info: VideoInfo
    sha256: str | None
    size_bytes: int | None
    mime_type: str | None
    media_type: str


@dataclass(frozen=True)
class StoryGraph:
    """Every video reachable from ``root_id`` through variants, with its branches and clips."""

    root_id: int
    videos: dict[int, VideoStory] = field(default_factory=dict)
    assets: dict[int, StoryAsset] = field(default_factory=dict)

    def story(self, video_id: int) -> VideoStory:
        return self.videos[video_id]
