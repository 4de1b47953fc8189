"""Lineage (typed parent→child edges) and game-narrative structure: branches, variants, clips."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db.base import Base, TimestampMixin, enum_column, id_column
from core.db.enums import BranchType


class AssetLineage(Base):
    """An edge of the lineage DAG: ``parent`` took part, in ``parent_role``, in making ``child``."""

    __tablename__ = "asset_lineage"
    __table_args__ = (
        CheckConstraint("parent_asset_id <> child_asset_id", name="no_self_edge"),
        CheckConstraint("parent_start_sec IS NULL OR parent_start_sec >= 0", name="start_non_negative"),
        CheckConstraint(
            "parent_end_sec IS NULL OR parent_start_sec IS NULL OR parent_end_sec >= parent_start_sec",
            name="end_after_start",
        ),
        CheckConstraint("parent_frame IS NULL OR parent_frame >= 0", name="frame_non_negative"),
        UniqueConstraint("child_asset_id", "parent_asset_id", "parent_role", "sequence_order"),
    )

    id: Mapped[int] = id_column()
    parent_asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    child_asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    # The operation that made the child (core.db.enums.OperationType values, or a plugin's own).
    operation: Mapped[str] = mapped_column(String(64), index=True)
    # core.db.enums.ParentRole values, or a plugin's own.
    parent_role: Mapped[str] = mapped_column(String(64))
    provider_id: Mapped[str | None] = mapped_column(String(64), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), index=True)
    parent_start_sec: Mapped[float | None]
    parent_end_sec: Mapped[float | None]
    parent_frame: Mapped[int | None]
    sequence_order: Mapped[int] = mapped_column(server_default=text("0"))
    transformation: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class AssetBranch(TimestampMixin, Base):
    """A branch point inside a video, at a time (and frame), where the story can continue differently."""

    __tablename__ = "asset_branches"
    __table_args__ = (
        CheckConstraint("branch_time_sec >= 0", name="time_non_negative"),
        CheckConstraint("branch_frame IS NULL OR branch_frame >= 0", name="frame_non_negative"),
        UniqueConstraint("source_asset_id", "branch_tag"),
        Index("ix_asset_branches_source_asset_id_branch_time_sec", "source_asset_id", "branch_time_sec"),
    )

    id: Mapped[int] = id_column()
    source_asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
    branch_time_sec: Mapped[float]
    branch_frame: Mapped[int | None]
    branch_name: Mapped[str] = mapped_column(String(200))
    branch_tag: Mapped[str] = mapped_column(String(120))
    branch_type: Mapped[BranchType] = enum_column(
        BranchType, "branch_type", server_default=BranchType.MANUAL.value
    )
    description: Mapped[str | None]
    # Free-form data for the game runtime (passed through by the export untouched).
    game_metadata: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))

    variants: Mapped[list[AssetBranchVariant]] = relationship(
        back_populates="branch",
        lazy="raise",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="AssetBranchVariant.display_order",
    )


class AssetBranchVariant(TimestampMixin, Base):
    """One continuation offered at a branch point: a variant video, its weight and its conditions."""

    __tablename__ = "asset_branch_variants"
    __table_args__ = (
        CheckConstraint("weight >= 0", name="weight_non_negative"),
        # A variant being generated names its job; the runner fills in the asset (migration 0005).
        CheckConstraint("variant_asset_id IS NOT NULL OR job_id IS NOT NULL", name="asset_or_job"),
        UniqueConstraint("branch_id", "variant_tag"),
        # At most one default variant per branch: what plays when no condition holds.
        Index(
            "uq_asset_branch_variants_default", "branch_id", unique=True, postgresql_where=text("is_default")
        ),
    )

    id: Mapped[int] = id_column()
    branch_id: Mapped[int] = mapped_column(ForeignKey("asset_branches.id", ondelete="CASCADE"), index=True)
    variant_asset_id: Mapped[int | None] = mapped_column(
        ForeignKey("assets.id", ondelete="CASCADE"), index=True
    )
    variant_name: Mapped[str] = mapped_column(String(200))
    variant_tag: Mapped[str] = mapped_column(String(120))
    weight: Mapped[float] = mapped_column(server_default=text("1.0"))
    # Game-state predicates for conditional branches, e.g. {"all": [{"var": "has_key", "eq": true}]}.
    conditions: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    display_order: Mapped[int] = mapped_column(server_default=text("0"))
    is_default: Mapped[bool] = mapped_column(server_default=text("false"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), index=True)

    branch: Mapped[AssetBranch] = relationship(back_populates="variants", lazy="raise")


class AssetClip(TimestampMixin, Base):
    """A named range of a video a game can refer to ("boss intro is 10–15 s of the cutscene")."""

    __tablename__ = "asset_clips"
    __table_args__ = (
        CheckConstraint("start_sec >= 0", name="start_non_negative"),
        CheckConstraint("end_sec > start_sec", name="end_after_start"),
        CheckConstraint(
            "start_frame IS NULL OR end_frame IS NULL OR end_frame >= start_frame", name="frames_ordered"
        ),
        UniqueConstraint("asset_id", "clip_tag"),
    )

    id: Mapped[int] = id_column()
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    clip_name: Mapped[str] = mapped_column(String(200))
    clip_tag: Mapped[str] = mapped_column(String(120))
    start_sec: Mapped[float]
    end_sec: Mapped[float]
    start_frame: Mapped[int | None]
    end_frame: Mapped[int | None]
    description: Mapped[str | None]
    tags: Mapped[list[str]] = mapped_column(ARRAY(String), server_default=text("'{}'"))
