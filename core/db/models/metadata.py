"""Per-media-type and per-content-domain metadata tables, and temporal segments of videos."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, TimestampMixin, enum_column, id_column
from core.db.enums import SegmentType


class Asset3DMetadata(Base):
    __tablename__ = "asset_3d_metadata"
    __table_args__ = (
        CheckConstraint("polygon_count IS NULL OR polygon_count >= 0", name="polygon_count_non_negative"),
        CheckConstraint("vertex_count IS NULL OR vertex_count >= 0", name="vertex_count_non_negative"),
    )

    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    polygon_count: Mapped[int | None] = mapped_column(BigInteger)
    vertex_count: Mapped[int | None] = mapped_column(BigInteger)
    file_format: Mapped[str | None] = mapped_column(String(32), index=True)
    has_textures: Mapped[bool] = mapped_column(server_default=text("false"))
    has_animations: Mapped[bool] = mapped_column(server_default=text("false"))
    has_rigging: Mapped[bool] = mapped_column(server_default=text("false"))
    has_materials: Mapped[bool] = mapped_column(server_default=text("false"))


class AssetAudioMetadata(Base):
    __tablename__ = "asset_audio_metadata"
    __table_args__ = (CheckConstraint("channels IS NULL OR channels > 0", name="channels_positive"),)

    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    sample_rate: Mapped[int | None]
    channels: Mapped[int | None]
    bitrate: Mapped[int | None]
    codec: Mapped[str | None] = mapped_column(String(64))
    bpm: Mapped[float | None] = mapped_column(index=True)
    musical_key: Mapped[str | None] = mapped_column(String(16), index=True)
    has_lyrics: Mapped[bool | None]
    is_speech: Mapped[bool | None]
    language: Mapped[str | None] = mapped_column(String(35), index=True)


class AssetAdultMetadata(Base):
    """Structured fields of the adult content domain (the seed's Example 2 queries these)."""

    __tablename__ = "asset_adult_metadata"
    __table_args__ = (Index("ix_asset_adult_metadata_intensity_level_mood", "intensity_level", "mood"),)

    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    intensity_level: Mapped[str | None] = mapped_column(String(32))
    tempo: Mapped[str | None] = mapped_column(String(32), index=True)
    scene_type: Mapped[str | None] = mapped_column(String(64), index=True)
    mood: Mapped[str | None] = mapped_column(String(64), index=True)
    lighting: Mapped[str | None] = mapped_column(String(64), index=True)


class AssetTemporalSegment(TimestampMixin, Base):
    """A scene, shot or keyframe inside a video. Its embeddings live in ``embeddings`` (segment_id)."""

    __tablename__ = "asset_temporal_segments"
    __table_args__ = (
        CheckConstraint("start_sec >= 0", name="start_non_negative"),
        CheckConstraint("end_sec IS NULL OR end_sec >= start_sec", name="end_after_start"),
        Index("ix_asset_temporal_segments_asset_id_start_sec", "asset_id", "start_sec"),
    )

    id: Mapped[int] = id_column()
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
    segment_type: Mapped[SegmentType] = enum_column(SegmentType, "segment_type")
    start_sec: Mapped[float]
    end_sec: Mapped[float | None]
    # The representative instant (keyframe) inside the segment.
    timestamp_sec: Mapped[float]
    frame_number: Mapped[int | None]
    thumbnail_sha256: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None]
    objects: Mapped[list[str]] = mapped_column(ARRAY(String), server_default=text("'{}'"))
    actions: Mapped[list[str]] = mapped_column(ARRAY(String), server_default=text("'{}'"))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
