"""Generation jobs: a persisted state machine claimed from the database by any app or worker process."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db.base import Base, TimestampMixin, enum_column, id_column
from core.db.enums import ACTIVE_JOB_STATUSES, JobStatus

_ACTIVE_SQL = ", ".join(f"'{s.value}'" for s in ACTIVE_JOB_STATUSES)


class Job(TimestampMixin, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress_fraction"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        Index("ix_jobs_user_id_created_at", "user_id", text("created_at DESC")),
        # The claim query ("next active job due, FOR UPDATE SKIP LOCKED") reads only this index.
        Index(
            "ix_jobs_due",
            "next_poll_at",
            postgresql_where=text(f"status IN ({_ACTIVE_SQL})"),
        ),
        Index(
            "uq_jobs_provider_id_provider_job_id",
            "provider_id",
            "provider_job_id",
            unique=True,
            postgresql_where=text("provider_job_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = id_column()
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    provider_id: Mapped[str] = mapped_column(String(64), index=True)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("provider_accounts.id", ondelete="SET NULL"), index=True
    )
    operation_type: Mapped[str] = mapped_column(String(64))
    # Inputs reference assets by id ({"video_asset_id": 123, "prompt": ...}), never by provider URL.
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    status: Mapped[JobStatus] = enum_column(
        JobStatus, "job_status", server_default=JobStatus.QUEUED.value, index=True
    )
    provider_job_id: Mapped[str | None] = mapped_column(String(255))
    progress: Mapped[float] = mapped_column(server_default=text("0"))
    error_code: Mapped[str | None] = mapped_column(String(120))
    error_message: Mapped[str | None]
    attempts: Mapped[int] = mapped_column(server_default=text("0"))
    priority: Mapped[int] = mapped_column(server_default=text("0"))
    next_poll_at: Mapped[datetime | None]
    # Which process holds the job, and until when; another process may take over an expired lease.
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None]
    submitted_at: Mapped[datetime | None]
    # Set just before the request that starts a paid generation, cleared with its answer: found set on a
    # queued job, the request's outcome is unknown and the job is not sent again (migration 0007).
    submit_started_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    results: Mapped[list[JobResultAsset]] = relationship(
        lazy="raise",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="JobResultAsset.output_index",
    )


class JobResultAsset(Base):
    """An asset a job produced (a job may produce several: variants, thumbnails, multi-output workflows)."""

    __tablename__ = "job_result_assets"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    asset_id: Mapped[int] = mapped_column(
        ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    output_index: Mapped[int] = mapped_column(server_default=text("0"))
