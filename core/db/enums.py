"""Enumerations stored in the database (as checked strings, by value)."""

from __future__ import annotations

import enum


class MediaType(enum.StrEnum):
    VIDEO = "video"
    IMAGE = "image"
    AUDIO = "audio"
    MODEL_3D = "model_3d"


class SyncStatus(enum.StrEnum):
    """Where the asset's bytes are: only at the provider, on their way, or in the local store."""

    REMOTE = "remote"
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"


class ContentDomain(enum.StrEnum):
    GENERAL = "general"
    ADULT = "adult"
    SPORTS = "sports"
    FASHION = "fashion"
    GAMING = "gaming"
    NATURE = "nature"
    ARCHITECTURE = "architecture"
    FOOD = "food"
    MUSIC = "music"
    EDUCATION = "education"
    OTHER = "other"


class ContentRating(enum.StrEnum):
    GENERAL = "general"
    MATURE = "mature"
    ADULT = "adult"
    EXPLICIT = "explicit"


class UploadMethod(enum.StrEnum):
    """How the asset entered the library (provenance)."""

    GENERATED = "generated"
    LOCAL_IMPORT = "local_import"
    URL_IMPORT = "url_import"
    EXTENSION = "extension"
    API = "api"
    WEB = "web"
    MOBILE = "mobile"


class ProviderRefKind(enum.StrEnum):
    """What kind of handle a provider gave us for an asset."""

    IMAGE_ID = "image_id"
    MEDIA_ID = "media_id"
    VIDEO_ID = "video_id"
    FILE_ID = "file_id"
    FILE_NAME = "file_name"
    URL = "url"


class BranchType(enum.StrEnum):
    MANUAL = "manual"
    CONDITIONAL = "conditional"
    RANDOM = "random"


class SegmentType(enum.StrEnum):
    SCENE = "scene"
    SHOT = "shot"
    KEYFRAME = "keyframe"
    LOOP = "loop"


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    SUBMITTED = "submitted"
    RUNNING = "running"
    DOWNLOADING = "downloading"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


ACTIVE_JOB_STATUSES = tuple(s for s in JobStatus if not s.is_terminal)


class OperationType(enum.StrEnum):
    """Well-known generation operations. Stored as text: provider plugins may declare others."""

    TEXT_TO_VIDEO = "text_to_video"
    IMAGE_TO_VIDEO = "image_to_video"
    VIDEO_EXTEND = "video_extend"
    TRANSITION = "transition"
    REMIX = "remix"
    EDIT = "edit"
    TEXT_TO_IMAGE = "text_to_image"
    IMAGE_EDIT = "image_edit"
    TEXT_TO_AUDIO = "text_to_audio"
    TEXT_TO_3D = "text_to_3d"
    IMPORT = "import"
    # Made by PixSim itself from library assets (core.story): a cut of a video, a still of one frame.
    CLIP_EXPORT = "clip_export"
    FRAME_EXTRACT = "frame_extract"


class ParentRole(enum.StrEnum):
    """The part a parent asset played in making its child. Stored as text, like OperationType."""

    SOURCE = "source"
    KEYFRAME = "keyframe"
    FIRST_FRAME = "first_frame"
    LAST_FRAME = "last_frame"
    REFERENCE = "reference"
    STYLE = "style"
    AUDIO = "audio"
    MASK = "mask"
    # The video a still was taken from (parent_frame / parent_start_sec say which frame).
    FRAME = "frame"
