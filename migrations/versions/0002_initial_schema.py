"""The whole schema of the seeds: assets, provider references, metadata, lineage, branches, jobs, embeddings.

Revision ID: 0002_initial_schema
Revises: 0001_vector_extension
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_initial_schema"
down_revision: str | None = "0001_vector_extension"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "embedding_models",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("dimensions", sa.Integer(), nullable=False),
        sa.Column("distance", sa.String(length=16), server_default=sa.text("'cosine'"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "distance IN ('cosine', 'l2', 'inner_product')", name=op.f("ck_embedding_models_distance_known")
        ),
        sa.CheckConstraint(
            "dimensions > 0 AND dimensions <= 4000", name=op.f("ck_embedding_models_dimensions_range")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embedding_models")),
        sa.UniqueConstraint("name", name=op.f("uq_embedding_models_name")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("username", sa.String(length=120), nullable=False),
        sa.Column("display_name", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "assets",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "media_type",
            sa.Enum(
                "video",
                "image",
                "audio",
                "model_3d",
                name="media_type",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("provider_asset_id", sa.String(length=255), nullable=True),
        sa.Column("remote_url", sa.String(), nullable=True),
        sa.Column("remote_url_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("file_size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("mime_type", sa.String(length=127), nullable=True),
        sa.Column(
            "sync_status",
            sa.Enum(
                "remote",
                "downloading",
                "downloaded",
                name="sync_status",
                native_enum=False,
                create_constraint=True,
            ),
            server_default="remote",
            nullable=False,
        ),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("duration_sec", sa.Double(), nullable=True),
        sa.Column("fps", sa.Double(), nullable=True),
        sa.Column("title", sa.String(), nullable=True),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("prompt", sa.String(), nullable=True),
        sa.Column("tags", postgresql.ARRAY(sa.String()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column(
            "style_tags", postgresql.ARRAY(sa.String()), server_default=sa.text("'{}'"), nullable=False
        ),
        sa.Column(
            "content_domain",
            sa.Enum(
                "general",
                "adult",
                "sports",
                "fashion",
                "gaming",
                "nature",
                "architecture",
                "food",
                "music",
                "education",
                "other",
                name="content_domain",
                native_enum=False,
                create_constraint=True,
            ),
            server_default="general",
            nullable=False,
        ),
        sa.Column("content_category", sa.String(length=120), nullable=True),
        sa.Column(
            "content_rating",
            sa.Enum(
                "general",
                "mature",
                "adult",
                "explicit",
                name="content_rating",
                native_enum=False,
                create_constraint=True,
            ),
            server_default="general",
            nullable=False,
        ),
        sa.Column("age_restricted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("searchable", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("original_source_url", sa.String(), nullable=True),
        sa.Column(
            "upload_method",
            sa.Enum(
                "generated",
                "local_import",
                "url_import",
                "extension",
                "api",
                "web",
                "mobile",
                name="upload_method",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("last_accessed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name=op.f("ck_assets_sha256_hex")),
        sa.CheckConstraint(
            "duration_sec IS NULL OR duration_sec >= 0", name=op.f("ck_assets_duration_non_negative")
        ),
        sa.CheckConstraint(
            "file_size_bytes IS NULL OR file_size_bytes >= 0", name=op.f("ck_assets_size_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_assets_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
    )
    op.create_index(op.f("ix_assets_content_category"), "assets", ["content_category"], unique=False)
    op.create_index(op.f("ix_assets_content_domain"), "assets", ["content_domain"], unique=False)
    op.create_index(op.f("ix_assets_content_rating"), "assets", ["content_rating"], unique=False)
    op.create_index(op.f("ix_assets_media_type"), "assets", ["media_type"], unique=False)
    op.create_index(op.f("ix_assets_provider_id"), "assets", ["provider_id"], unique=False)
    op.create_index(op.f("ix_assets_sha256"), "assets", ["sha256"], unique=False)
    op.create_index("ix_assets_style_tags", "assets", ["style_tags"], unique=False, postgresql_using="gin")
    op.create_index("ix_assets_tags", "assets", ["tags"], unique=False, postgresql_using="gin")
    op.create_index(
        "ix_assets_user_id_created_at",
        "assets",
        ["user_id", sa.literal_column("created_at DESC")],
        unique=False,
    )
    op.create_index(
        "uq_assets_user_id_provider_id_provider_asset_id",
        "assets",
        ["user_id", "provider_id", "provider_asset_id"],
        unique=True,
        postgresql_where=sa.text("provider_asset_id IS NOT NULL"),
    )
    op.create_table(
        "provider_accounts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=120), nullable=False),
        sa.Column("keyring_ref", sa.String(length=255), nullable=True),
        sa.Column("base_url", sa.String(), nullable=True),
        sa.Column(
            "settings",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_check_ok", sa.Boolean(), nullable=True),
        sa.Column("last_check_message", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_provider_accounts_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_accounts")),
        sa.UniqueConstraint(
            "user_id", "provider_id", "label", name=op.f("uq_provider_accounts_user_id_provider_id_label")
        ),
    )
    op.create_index(
        op.f("ix_provider_accounts_provider_id"), "provider_accounts", ["provider_id"], unique=False
    )
    op.create_index(op.f("ix_provider_accounts_user_id"), "provider_accounts", ["user_id"], unique=False)
    op.create_table(
        "asset_3d_metadata",
        sa.Column("asset_id", sa.BigInteger(), nullable=False),
        sa.Column("polygon_count", sa.BigInteger(), nullable=True),
        sa.Column("vertex_count", sa.BigInteger(), nullable=True),
        sa.Column("file_format", sa.String(length=32), nullable=True),
        sa.Column("has_textures", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("has_animations", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("has_rigging", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("has_materials", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.CheckConstraint(
            "polygon_count IS NULL OR polygon_count >= 0",
            name=op.f("ck_asset_3d_metadata_polygon_count_non_negative"),
        ),
        sa.CheckConstraint(
            "vertex_count IS NULL OR vertex_count >= 0",
            name=op.f("ck_asset_3d_metadata_vertex_count_non_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["assets.id"], name=op.f("fk_asset_3d_metadata_asset_id_assets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("asset_id", name=op.f("pk_asset_3d_metadata")),
    )
    op.create_index(
        op.f("ix_asset_3d_metadata_file_format"), "asset_3d_metadata", ["file_format"], unique=False
    )
    op.create_table(
        "asset_adult_metadata",
        sa.Column("asset_id", sa.BigInteger(), nullable=False),
        sa.Column("intensity_level", sa.String(length=32), nullable=True),
        sa.Column("tempo", sa.String(length=32), nullable=True),
        sa.Column("scene_type", sa.String(length=64), nullable=True),
        sa.Column("mood", sa.String(length=64), nullable=True),
        sa.Column("lighting", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["assets.id"],
            name=op.f("fk_asset_adult_metadata_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("asset_id", name=op.f("pk_asset_adult_metadata")),
    )
    op.create_index(
        "ix_asset_adult_metadata_intensity_level_mood",
        "asset_adult_metadata",
        ["intensity_level", "mood"],
        unique=False,
    )
    op.create_index(
        op.f("ix_asset_adult_metadata_lighting"), "asset_adult_metadata", ["lighting"], unique=False
    )
    op.create_index(op.f("ix_asset_adult_metadata_mood"), "asset_adult_metadata", ["mood"], unique=False)
    op.create_index(
        op.f("ix_asset_adult_metadata_scene_type"), "asset_adult_metadata", ["scene_type"], unique=False
    )
    op.create_index(op.f("ix_asset_adult_metadata_tempo"), "asset_adult_metadata", ["tempo"], unique=False)
    op.create_table(
        "asset_audio_metadata",
        sa.Column("asset_id", sa.BigInteger(), nullable=False),
        sa.Column("sample_rate", sa.Integer(), nullable=True),
        sa.Column("channels", sa.Integer(), nullable=True),
        sa.Column("bitrate", sa.Integer(), nullable=True),
        sa.Column("codec", sa.String(length=64), nullable=True),
        sa.Column("bpm", sa.Double(), nullable=True),
        sa.Column("musical_key", sa.String(length=16), nullable=True),
        sa.Column("has_lyrics", sa.Boolean(), nullable=True),
        sa.Column("is_speech", sa.Boolean(), nullable=True),
        sa.Column("language", sa.String(length=35), nullable=True),
        sa.CheckConstraint(
            "channels IS NULL OR channels > 0", name=op.f("ck_asset_audio_metadata_channels_positive")
        ),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["assets.id"],
            name=op.f("fk_asset_audio_metadata_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("asset_id", name=op.f("pk_asset_audio_metadata")),
    )
    op.create_index(op.f("ix_asset_audio_metadata_bpm"), "asset_audio_metadata", ["bpm"], unique=False)
    op.create_index(
        op.f("ix_asset_audio_metadata_language"), "asset_audio_metadata", ["language"], unique=False
    )
    op.create_index(
        op.f("ix_asset_audio_metadata_musical_key"), "asset_audio_metadata", ["musical_key"], unique=False
    )
    op.create_table(
        "asset_branches",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source_asset_id", sa.BigInteger(), nullable=False),
        sa.Column("branch_time_sec", sa.Double(), nullable=False),
        sa.Column("branch_frame", sa.Integer(), nullable=True),
        sa.Column("branch_name", sa.String(length=200), nullable=False),
        sa.Column("branch_tag", sa.String(length=120), nullable=False),
        sa.Column(
            "branch_type",
            sa.Enum(
                "manual",
                "conditional",
                "random",
                name="branch_type",
                native_enum=False,
                create_constraint=True,
            ),
            server_default="manual",
            nullable=False,
        ),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "branch_frame IS NULL OR branch_frame >= 0", name=op.f("ck_asset_branches_frame_non_negative")
        ),
        sa.CheckConstraint("branch_time_sec >= 0", name=op.f("ck_asset_branches_time_non_negative")),
        sa.ForeignKeyConstraint(
            ["source_asset_id"],
            ["assets.id"],
            name=op.f("fk_asset_branches_source_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_branches")),
        sa.UniqueConstraint(
            "source_asset_id", "branch_tag", name=op.f("uq_asset_branches_source_asset_id_branch_tag")
        ),
    )
    op.create_index(
        "ix_asset_branches_source_asset_id_branch_time_sec",
        "asset_branches",
        ["source_asset_id", "branch_time_sec"],
        unique=False,
    )
    op.create_table(
        "asset_clips",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("asset_id", sa.BigInteger(), nullable=False),
        sa.Column("clip_name", sa.String(length=200), nullable=False),
        sa.Column("clip_tag", sa.String(length=120), nullable=False),
        sa.Column("start_sec", sa.Double(), nullable=False),
        sa.Column("end_sec", sa.Double(), nullable=False),
        sa.Column("start_frame", sa.Integer(), nullable=True),
        sa.Column("end_frame", sa.Integer(), nullable=True),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("tags", postgresql.ARRAY(sa.String()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("end_sec > start_sec", name=op.f("ck_asset_clips_end_after_start")),
        sa.CheckConstraint(
            "start_frame IS NULL OR end_frame IS NULL OR end_frame >= start_frame",
            name=op.f("ck_asset_clips_frames_ordered"),
        ),
        sa.CheckConstraint("start_sec >= 0", name=op.f("ck_asset_clips_start_non_negative")),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["assets.id"], name=op.f("fk_asset_clips_asset_id_assets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_clips")),
        sa.UniqueConstraint("asset_id", "clip_tag", name=op.f("uq_asset_clips_asset_id_clip_tag")),
    )
    op.create_index(op.f("ix_asset_clips_asset_id"), "asset_clips", ["asset_id"], unique=False)
    op.create_table(
        "asset_provider_refs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("asset_id", sa.BigInteger(), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "ref_kind",
            sa.Enum(
                "image_id",
                "media_id",
                "video_id",
                "file_id",
                "file_name",
                "url",
                name="ref_kind",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("provider_ref", sa.String(length=1024), nullable=False),
        sa.Column("url", sa.String(), nullable=True),
        sa.Column("is_origin", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["provider_accounts.id"],
            name=op.f("fk_asset_provider_refs_account_id_provider_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["assets.id"],
            name=op.f("fk_asset_provider_refs_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_provider_refs")),
    )
    op.create_index(
        op.f("ix_asset_provider_refs_account_id"), "asset_provider_refs", ["account_id"], unique=False
    )
    op.create_index(
        "ix_asset_provider_refs_expires_at",
        "asset_provider_refs",
        ["expires_at"],
        unique=False,
        postgresql_where=sa.text("expires_at IS NOT NULL"),
    )
    op.create_index(
        "ix_asset_provider_refs_provider_id_provider_ref",
        "asset_provider_refs",
        ["provider_id", "provider_ref"],
        unique=False,
    )
    op.create_index(
        "uq_asset_provider_refs_asset_id_provider_id_account_id",
        "asset_provider_refs",
        ["asset_id", "provider_id", "account_id"],
        unique=True,
        postgresql_nulls_not_distinct=True,
    )
    op.create_table(
        "asset_temporal_segments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("asset_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "segment_type",
            sa.Enum(
                "scene",
                "shot",
                "keyframe",
                "loop",
                name="segment_type",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("start_sec", sa.Double(), nullable=False),
        sa.Column("end_sec", sa.Double(), nullable=True),
        sa.Column("timestamp_sec", sa.Double(), nullable=False),
        sa.Column("frame_number", sa.Integer(), nullable=True),
        sa.Column("thumbnail_sha256", sa.String(length=64), nullable=True),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("objects", postgresql.ARRAY(sa.String()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("actions", postgresql.ARRAY(sa.String()), server_default=sa.text("'{}'"), nullable=False),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "end_sec IS NULL OR end_sec >= start_sec", name=op.f("ck_asset_temporal_segments_end_after_start")
        ),
        sa.CheckConstraint("start_sec >= 0", name=op.f("ck_asset_temporal_segments_start_non_negative")),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["assets.id"],
            name=op.f("fk_asset_temporal_segments_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_temporal_segments")),
    )
    op.create_index(
        "ix_asset_temporal_segments_asset_id_start_sec",
        "asset_temporal_segments",
        ["asset_id", "start_sec"],
        unique=False,
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=True),
        sa.Column("operation_type", sa.String(length=64), nullable=False),
        sa.Column(
            "params",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "submitted",
                "running",
                "downloading",
                "succeeded",
                "failed",
                "cancelled",
                name="job_status",
                native_enum=False,
                create_constraint=True,
            ),
            server_default="queued",
            nullable=False,
        ),
        sa.Column("provider_job_id", sa.String(length=255), nullable=True),
        sa.Column("progress", sa.Double(), server_default=sa.text("0"), nullable=False),
        sa.Column("error_code", sa.String(length=120), nullable=True),
        sa.Column("error_message", sa.String(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("priority", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=255), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_jobs_attempts_non_negative")),
        sa.CheckConstraint("progress >= 0 AND progress <= 1", name=op.f("ck_jobs_progress_fraction")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["provider_accounts.id"],
            name=op.f("fk_jobs_account_id_provider_accounts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_jobs_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(op.f("ix_jobs_account_id"), "jobs", ["account_id"], unique=False)
    op.create_index(
        "ix_jobs_due",
        "jobs",
        ["next_poll_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('queued', 'submitted', 'running', 'downloading')"),
    )
    op.create_index(op.f("ix_jobs_provider_id"), "jobs", ["provider_id"], unique=False)
    op.create_index(op.f("ix_jobs_status"), "jobs", ["status"], unique=False)
    op.create_index(
        "ix_jobs_user_id_created_at", "jobs", ["user_id", sa.literal_column("created_at DESC")], unique=False
    )
    op.create_index(
        "uq_jobs_provider_id_provider_job_id",
        "jobs",
        ["provider_id", "provider_job_id"],
        unique=True,
        postgresql_where=sa.text("provider_job_id IS NOT NULL"),
    )
    op.create_table(
        "asset_branch_variants",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("branch_id", sa.BigInteger(), nullable=False),
        sa.Column("variant_asset_id", sa.BigInteger(), nullable=False),
        sa.Column("variant_name", sa.String(length=200), nullable=False),
        sa.Column("variant_tag", sa.String(length=120), nullable=False),
        sa.Column("weight", sa.Double(), server_default=sa.text("1.0"), nullable=False),
        sa.Column(
            "conditions",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("display_order", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("weight >= 0", name=op.f("ck_asset_branch_variants_weight_non_negative")),
        sa.ForeignKeyConstraint(
            ["branch_id"],
            ["asset_branches.id"],
            name=op.f("fk_asset_branch_variants_branch_id_asset_branches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_asset_branch_variants_job_id_jobs"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["variant_asset_id"],
            ["assets.id"],
            name=op.f("fk_asset_branch_variants_variant_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_branch_variants")),
        sa.UniqueConstraint(
            "branch_id", "variant_tag", name=op.f("uq_asset_branch_variants_branch_id_variant_tag")
        ),
    )
    op.create_index(
        op.f("ix_asset_branch_variants_branch_id"), "asset_branch_variants", ["branch_id"], unique=False
    )
    op.create_index(
        op.f("ix_asset_branch_variants_job_id"), "asset_branch_variants", ["job_id"], unique=False
    )
    op.create_index(
        op.f("ix_asset_branch_variants_variant_asset_id"),
        "asset_branch_variants",
        ["variant_asset_id"],
        unique=False,
    )
    op.create_table(
        "asset_lineage",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("parent_asset_id", sa.BigInteger(), nullable=False),
        sa.Column("child_asset_id", sa.BigInteger(), nullable=False),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("parent_role", sa.String(length=64), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=True),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("parent_start_sec", sa.Double(), nullable=True),
        sa.Column("parent_end_sec", sa.Double(), nullable=True),
        sa.Column("parent_frame", sa.Integer(), nullable=True),
        sa.Column("sequence_order", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "transformation",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("parent_asset_id <> child_asset_id", name=op.f("ck_asset_lineage_no_self_edge")),
        sa.CheckConstraint(
            "parent_end_sec IS NULL OR parent_start_sec IS NULL OR parent_end_sec >= parent_start_sec",
            name=op.f("ck_asset_lineage_end_after_start"),
        ),
        sa.CheckConstraint(
            "parent_frame IS NULL OR parent_frame >= 0", name=op.f("ck_asset_lineage_frame_non_negative")
        ),
        sa.CheckConstraint(
            "parent_start_sec IS NULL OR parent_start_sec >= 0",
            name=op.f("ck_asset_lineage_start_non_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["child_asset_id"],
            ["assets.id"],
            name=op.f("fk_asset_lineage_child_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_asset_lineage_job_id_jobs"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["parent_asset_id"],
            ["assets.id"],
            name=op.f("fk_asset_lineage_parent_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_lineage")),
        sa.UniqueConstraint(
            "child_asset_id",
            "parent_asset_id",
            "parent_role",
            "sequence_order",
            name=op.f("uq_asset_lineage_child_asset_id_parent_asset_id_parent_role_sequence_order"),
        ),
    )
    op.create_index(
        op.f("ix_asset_lineage_child_asset_id"), "asset_lineage", ["child_asset_id"], unique=False
    )
    op.create_index(op.f("ix_asset_lineage_job_id"), "asset_lineage", ["job_id"], unique=False)
    op.create_index(op.f("ix_asset_lineage_operation"), "asset_lineage", ["operation"], unique=False)
    op.create_index(
        op.f("ix_asset_lineage_parent_asset_id"), "asset_lineage", ["parent_asset_id"], unique=False
    )
    op.create_index(op.f("ix_asset_lineage_provider_id"), "asset_lineage", ["provider_id"], unique=False)
    op.create_table(
        "embeddings",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("model_id", sa.BigInteger(), nullable=False),
        sa.Column("asset_id", sa.BigInteger(), nullable=True),
        sa.Column("segment_id", sa.BigInteger(), nullable=True),
        sa.Column("embedding", pgvector.sqlalchemy.halfvec.HALFVEC(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("num_nonnulls(asset_id, segment_id) = 1", name=op.f("ck_embeddings_one_subject")),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["assets.id"], name=op.f("fk_embeddings_asset_id_assets"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["embedding_models.id"],
            name=op.f("fk_embeddings_model_id_embedding_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["asset_temporal_segments.id"],
            name=op.f("fk_embeddings_segment_id_asset_temporal_segments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embeddings")),
    )
    op.create_index(
        "uq_embeddings_asset_id_model_id",
        "embeddings",
        ["asset_id", "model_id"],
        unique=True,
        postgresql_where=sa.text("asset_id IS NOT NULL"),
    )
    op.create_index(
        "uq_embeddings_segment_id_model_id",
        "embeddings",
        ["segment_id", "model_id"],
        unique=True,
        postgresql_where=sa.text("segment_id IS NOT NULL"),
    )
    op.create_table(
        "job_result_assets",
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("asset_id", sa.BigInteger(), nullable=False),
        sa.Column("output_index", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["assets.id"], name=op.f("fk_job_result_assets_asset_id_assets"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_result_assets_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "asset_id", name=op.f("pk_job_result_assets")),
    )
    op.create_index(op.f("ix_job_result_assets_asset_id"), "job_result_assets", ["asset_id"], unique=False)

    # PixSim runs as a single local user by default; a shared server may add more.
    op.execute("INSERT INTO users (username, display_name) VALUES ('local', 'Local user')")


def downgrade() -> None:
    op.drop_index(op.f("ix_job_result_assets_asset_id"), table_name="job_result_assets")
    op.drop_table("job_result_assets")
    op.drop_index(
        "uq_embeddings_segment_id_model_id",
        table_name="embeddings",
        postgresql_where=sa.text("segment_id IS NOT NULL"),
    )
    op.drop_index(
        "uq_embeddings_asset_id_model_id",
        table_name="embeddings",
        postgresql_where=sa.text("asset_id IS NOT NULL"),
    )
    op.drop_table("embeddings")
    op.drop_index(op.f("ix_asset_lineage_provider_id"), table_name="asset_lineage")
    op.drop_index(op.f("ix_asset_lineage_parent_asset_id"), table_name="asset_lineage")
    op.drop_index(op.f("ix_asset_lineage_operation"), table_name="asset_lineage")
    op.drop_index(op.f("ix_asset_lineage_job_id"), table_name="asset_lineage")
    op.drop_index(op.f("ix_asset_lineage_child_asset_id"), table_name="asset_lineage")
    op.drop_table("asset_lineage")
    op.drop_index(op.f("ix_asset_branch_variants_variant_asset_id"), table_name="asset_branch_variants")
    op.drop_index(op.f("ix_asset_branch_variants_job_id"), table_name="asset_branch_variants")
    op.drop_index(op.f("ix_asset_branch_variants_branch_id"), table_name="asset_branch_variants")
    op.drop_table("asset_branch_variants")
    op.drop_index(
        "uq_jobs_provider_id_provider_job_id",
        table_name="jobs",
        postgresql_where=sa.text("provider_job_id IS NOT NULL"),
    )
    op.drop_index("ix_jobs_user_id_created_at", table_name="jobs")
    op.drop_index(op.f("ix_jobs_status"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_provider_id"), table_name="jobs")
    op.drop_index(
        "ix_jobs_due",
        table_name="jobs",
        postgresql_where=sa.text("status IN ('queued', 'submitted', 'running', 'downloading')"),
    )
    op.drop_index(op.f("ix_jobs_account_id"), table_name="jobs")
    op.drop_table("jobs")
    op.drop_index("ix_asset_temporal_segments_asset_id_start_sec", table_name="asset_temporal_segments")
    op.drop_table("asset_temporal_segments")
    op.drop_index(
        "uq_asset_provider_refs_asset_id_provider_id_account_id",
        table_name="asset_provider_refs",
        postgresql_nulls_not_distinct=True,
    )
    op.drop_index("ix_asset_provider_refs_provider_id_provider_ref", table_name="asset_provider_refs")
    op.drop_index(
        "ix_asset_provider_refs_expires_at",
        table_name="asset_provider_refs",
        postgresql_where=sa.text("expires_at IS NOT NULL"),
    )
    op.drop_index(op.f("ix_asset_provider_refs_account_id"), table_name="asset_provider_refs")
    op.drop_table("asset_provider_refs")
    op.drop_index(op.f("ix_asset_clips_asset_id"), table_name="asset_clips")
    op.drop_table("asset_clips")
    op.drop_index("ix_asset_branches_source_asset_id_branch_time_sec", table_name="asset_branches")
    op.drop_table("asset_branches")
    op.drop_index(op.f("ix_asset_audio_metadata_musical_key"), table_name="asset_audio_metadata")
    op.drop_index(op.f("ix_asset_audio_metadata_language"), table_name="asset_audio_metadata")
    op.drop_index(op.f("ix_asset_audio_metadata_bpm"), table_name="asset_audio_metadata")
    op.drop_table("asset_audio_metadata")
    op.drop_index(op.f("ix_asset_adult_metadata_tempo"), table_name="asset_adult_metadata")
    op.drop_index(op.f("ix_asset_adult_metadata_scene_type"), table_name="asset_adult_metadata")
    op.drop_index(op.f("ix_asset_adult_metadata_mood"), table_name="asset_adult_metadata")
    op.drop_index(op.f("ix_asset_adult_metadata_lighting"), table_name="asset_adult_metadata")
    op.drop_index("ix_asset_adult_metadata_intensity_level_mood", table_name="asset_adult_metadata")
    op.drop_table("asset_adult_metadata")
    op.drop_index(op.f("ix_asset_3d_metadata_file_format"), table_name="asset_3d_metadata")
    op.drop_table("asset_3d_metadata")
    op.drop_index(op.f("ix_provider_accounts_user_id"), table_name="provider_accounts")
    op.drop_index(op.f("ix_provider_accounts_provider_id"), table_name="provider_accounts")
    op.drop_table("provider_accounts")
    op.drop_index(
        "uq_assets_user_id_provider_id_provider_asset_id",
        table_name="assets",
        postgresql_where=sa.text("provider_asset_id IS NOT NULL"),
    )
    op.drop_index("ix_assets_user_id_created_at", table_name="assets")
    op.drop_index("ix_assets_tags", table_name="assets", postgresql_using="gin")
    op.drop_index("ix_assets_style_tags", table_name="assets", postgresql_using="gin")
    op.drop_index(op.f("ix_assets_sha256"), table_name="assets")
    op.drop_index(op.f("ix_assets_provider_id"), table_name="assets")
    op.drop_index(op.f("ix_assets_media_type"), table_name="assets")
    op.drop_index(op.f("ix_assets_content_rating"), table_name="assets")
    op.drop_index(op.f("ix_assets_content_domain"), table_name="assets")
    op.drop_index(op.f("ix_assets_content_category"), table_name="assets")
    op.drop_table("assets")
    op.drop_table("users")
    op.drop_table("embedding_models")
