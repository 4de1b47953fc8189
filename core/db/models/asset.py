"""The Asset aggregate: the library's source of truth, and its per-provider references."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, CheckConstraint, Computed, ForeignKey, Index, String, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db.base import Base, TimestampMixin, enum_column, id_column
from core.db.enums import (
    ContentDomain,
    ContentRating,
    MediaType,
    ProviderRefKind,
    SyncStatus,
    UploadMethod,
)

if TYPE_CHECKING:
    from core.db.models.metadata import (
        Asset3DMetadata,
        AssetAdultMetadata,
        AssetAudioMetadata,
        AssetTemporalSegment,
    )

# Full text over title, tags, style tags, description and prompt ('simple': no stemming, no stop
# words). Written as PostgreSQL prints it back, so autogenerate sees no change; migration 0004 explains
# the choices and creates the IMMUTABLE helper ``pixsim_tags_text``.
SEARCH_VECTOR_SQL = (
    "setweight(to_tsvector('simple'::regconfig, (COALESCE(title, ''::character varying))::text), 'A'::\"char\")"
    " || setweight(to_tsvector('simple'::regconfig, pixsim_tags_text(tags)), 'B'::\"char\")"
    " || setweight(to_tsvector('simple'::regconfig, pixsim_tags_text(style_tags)), 'B'::\"char\")"
    " || setweight(to_tsvector('simple'::regconfig, (COALESCE(description, ''::character varying))::text), 'C'::\"char\")"
    " || setweight(to_tsvector('simple'::regconfig, (COALESCE(prompt, ''::character varying))::text), 'D'::\"char\")"
)

# The assets the library shows unless the user asks for age-restricted ones (core.library).
SHOWN_BY_DEFAULT_SQL = "NOT age_restricted AND content_rating IN ('general', 'mature')"

# The "name" sort key: the card's display name, case-folded, cut short so a long description cannot
# exceed a B-tree entry's size limit.
NAME_SORT_SQL = 'lower("left"(COALESCE(title, description)::text, 100))'


class Asset(TimestampMixin, Base):
    __tablename__ = "assets"
    __table_args__ = (
        CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="sha256_hex"),
        CheckConstraint("file_size_bytes IS NULL OR file_size_bytes >= 0", name="size_non_negative"),
        CheckConstraint("duration_sec IS NULL OR duration_sec >= 0", name="duration_non_negative"),
        Index("ix_assets_user_id_created_at", "user_id", text("created_at DESC")),
        Index("ix_assets_tags", "tags", postgresql_using="gin"),
        Index("ix_assets_style_tags", "style_tags", postgresql_using="gin"),
        Index("ix_assets_search_vector", "search_vector", postgresql_using="gin"),
        # The library grid (core.library, migration 0004): counts and facets of the default view
        # (age gate closed) without words, tags or dates read only ix_assets_facets; each sort walks
        # its own index (newest, oldest: ix_assets_user_id_created_at) ending in id, the tie-breaker
        # of stable paging.
        Index(
            "ix_assets_facets",
            "user_id",
            "media_type",
            "provider_id",
            postgresql_include=["id"],
            postgresql_where=text(SHOWN_BY_DEFAULT_SQL),
        ),
        Index("ix_assets_sort_name", "user_id", text(NAME_SORT_SQL), "id"),
        Index("ix_assets_sort_duration", "user_id", text("duration_sec DESC NULLS LAST"), text("id DESC")),
        Index("ix_assets_sort_size", "user_id", text("file_size_bytes DESC NULLS LAST"), text("id DESC")),
        Index(
            "ix_assets_sort_last_accessed_at",
            "user_id",
            text("last_accessed_at DESC NULLS LAST"),
            text("id DESC"),
        ),
        # A provider's own asset id appears once per user: generation results are never duplicated.
        Index(
            "uq_assets_user_id_provider_id_provider_asset_id",
            "user_id",
            "provider_id",
            "provider_asset_id",
            unique=True,
            postgresql_where=text("provider_asset_id IS NOT NULL"),
        ),
        # Expanding a stack of near-duplicates (core.embeddings.duplicates, migration 0006).
        Index(
            "ix_assets_duplicate_group_id",
            "duplicate_group_id",
            postgresql_where=text("duplicate_group_id IS NOT NULL"),
        ),
    )

    # Identity and owner
    id: Mapped[int] = id_column()
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    media_type: Mapped[MediaType] = enum_column(MediaType, "media_type", index=True)

    # Original provider ("local" for files the user imported)
    provider_id: Mapped[str] = mapped_column(String(64), index=True)
    provider_asset_id: Mapped[str | None] = mapped_column(String(255))
    remote_url: Mapped[str | None]
    remote_url_expires_at: Mapped[datetime | None]

    # Content: identifies the bytes (many assets may share one file)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    file_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    mime_type: Mapped[str | None] = mapped_column(String(127))
    sync_status: Mapped[SyncStatus] = enum_column(
        SyncStatus, "sync_status", server_default=SyncStatus.REMOTE.value
    )

    # Media facts (probed from the file, not trusted from the provider)
    width: Mapped[int | None]
    height: Mapped[int | None]
    duration_sec: Mapped[float | None]
    fps: Mapped[float | None]

    # Description
    title: Mapped[str | None]
    description: Mapped[str | None]
    prompt: Mapped[str | None]
    tags: Mapped[list[str]] = mapped_column(ARRAY(String), server_default=text("'{}'"))
    style_tags: Mapped[list[str]] = mapped_column(ARRAY(String), server_default=text("'{}'"))

    # Content classification
    content_domain: Mapped[ContentDomain] = enum_column(
        ContentDomain, "content_domain", server_default=ContentDomain.GENERAL.value, index=True
    )
    content_category: Mapped[str | None] = mapped_column(String(120), index=True)
    content_rating: Mapped[ContentRating] = enum_column(
        ContentRating, "content_rating", server_default=ContentRating.GENERAL.value, index=True
    )
    age_restricted: Mapped[bool] = mapped_column(server_default=text("false"))
    searchable: Mapped[bool] = mapped_column(server_default=text("true"))
    # Generated by the database; never loaded with the row (reading it raises): queries use it in SQL.
    search_vector: Mapped[str | None] = mapped_column(
        TSVECTOR, Computed(SEARCH_VECTOR_SQL, persisted=True), deferred=True, deferred_raiseload=True
    )

    # Provenance
    original_source_url: Mapped[str | None]
    upload_method: Mapped[UploadMethod] = enum_column(UploadMethod, "upload_method")

    # Cache management
    last_accessed_at: Mapped[datetime | None]

    # Near-duplicates: members of one group share this label (the id of one member, not a foreign
    # key: the group outlives that member). NULL = no near-duplicate. The grid can stack a group.
    duplicate_group_id: Mapped[int | None] = mapped_column(BigInteger)

    provider_refs: Mapped[list[AssetProviderRef]] = relationship(
        back_populates="asset", lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )
    audio_metadata: Mapped[AssetAudioMetadata | None] = relationship(
        lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )
    model_3d_metadata: Mapped[Asset3DMetadata | None] = relationship(
        lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )
    adult_metadata: Mapped[AssetAdultMetadata | None] = relationship(
        lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )
    segments: Mapped[list[AssetTemporalSegment]] = relationship(
        lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def provider_uploads(self) -> Mapping[str, str]:
        """The seed's ``provider_uploads`` dict, read-only: provider id -> that provider's reference.

        Needs ``provider_refs`` loaded (``selectinload``). With several accounts on one provider the
        most recently uploaded reference wins.
        """
        refs = sorted(self.provider_refs, key=lambda r: r.uploaded_at)
        return MappingProxyType({r.provider_id: r.provider_ref for r in refs})


class AssetProviderRef(Base):
    """One provider's handle for an asset: one row per (asset, provider, account)."""

    __tablename__ = "asset_provider_refs"
    __table_args__ = (
        Index(
            "uq_asset_provider_refs_asset_id_provider_id_account_id",
            "asset_id",
            "provider_id",
            "account_id",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
        Index("ix_asset_provider_refs_provider_id_provider_ref", "provider_id", "provider_ref"),
        Index(
            "ix_asset_provider_refs_expires_at",
            "expires_at",
            postgresql_where=text("expires_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = id_column()
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
    provider_id: Mapped[str] = mapped_column(String(64))
    # NULL for providers without accounts (Sandbox, a keyless local ComfyUI).
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("provider_accounts.id", ondelete="CASCADE"), index=True
    )
    ref_kind: Mapped[ProviderRefKind] = enum_column(ProviderRefKind, "ref_kind")
    provider_ref: Mapped[str] = mapped_column(String(1024))
    url: Mapped[str | None]
    # True when the provider made this asset itself: using it there needs no upload.
    is_origin: Mapped[bool] = mapped_column(server_default=text("false"))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    uploaded_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    asset: Mapped[Asset] = relationship(back_populates="provider_refs", lazy="raise")
