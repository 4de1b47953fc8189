"""Read access to the library for views: plain frozen dataclasses, never ORM objects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.enums import ContentDomain, MediaType
from core.db.models import Asset, AssetAdultMetadata, AssetBranch, AssetBranchVariant


@dataclass(frozen=True, slots=True)
class AssetSummary:
    id: int
    media_type: MediaType
    provider_id: str
    title: str | None
    description: str | None
    width: int | None
    height: int | None
    duration_sec: float | None
    content_category: str | None
    created_at: datetime

    @property
    def display_name(self) -> str:
        return self.title or self.description or f"{self.media_type.value.replace('_', ' ')} #{self.id}"


@dataclass(frozen=True, slots=True)
class BranchVariantRow:
    """One row of the seed's Example 3 join: a branch point, one of its variants, and the variant video."""

    branch_id: int
    branch_name: str
    branch_tag: str
    branch_time_sec: float
    branch_frame: int | None
    variant_id: int
    variant_name: str
    variant_tag: str
    weight: float
    conditions: dict[str, Any]
    variant_asset_id: int
    variant_duration_sec: float | None


def _summary(asset: Asset) -> AssetSummary:
    return AssetSummary(
        id=asset.id,
        media_type=asset.media_type,
        provider_id=asset.provider_id,
        title=asset.title,
        description=asset.description,
        width=asset.width,
        height=asset.height,
        duration_sec=asset.duration_sec,
        content_category=asset.content_category,
        created_at=asset.created_at,
    )


class LibraryService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def count_assets(self) -> int:
        async with self._sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(Asset)) or 0)

    async def list_assets(self, offset: int = 0, limit: int = 200) -> list[AssetSummary]:
        """Newest first; ``id`` breaks ties so paging is stable."""
        stmt = select(Asset).order_by(Asset.created_at.desc(), Asset.id.desc()).offset(offset).limit(limit)
        async with self._sessions() as session:
            return [_summary(a) for a in await session.scalars(stmt)]

    async def find_by_category(
        self,
        content_category: str,
        *,
        content_domain: ContentDomain | None = None,
        intensity_level: str | None = None,
        mood: str | None = None,
        scene_type: str | None = None,
        lighting: str | None = None,
    ) -> list[AssetSummary]:
        """The seed's Example 2: a content category narrowed by the domain metadata table."""
        stmt = select(Asset).where(Asset.content_category == content_category)
        if content_domain is not None:
            stmt = stmt.where(Asset.content_domain == content_domain)
        meta_filters = {
            AssetAdultMetadata.intensity_level: intensity_level,
            AssetAdultMetadata.mood: mood,
            AssetAdultMetadata.scene_type: scene_type,
            AssetAdultMetadata.lighting: lighting,
        }
        wanted = [column == value for column, value in meta_filters.items() if value is not None]
        if wanted:
            stmt = stmt.join(AssetAdultMetadata).where(*wanted)
        stmt = stmt.order_by(Asset.created_at.desc(), Asset.id.desc())
        async with self._sessions() as session:
            return [_summary(a) for a in await session.scalars(stmt)]

    async def branch_variants(self, source_asset_id: int) -> list[BranchVariantRow]:
        """The seed's Example 3: every branch of a video with its variants, loaded in one query."""
        stmt = (
            select(AssetBranch, AssetBranchVariant, Asset)
            .join(AssetBranchVariant, AssetBranchVariant.branch_id == AssetBranch.id)
            .join(Asset, AssetBranchVariant.variant_asset_id == Asset.id)
            .where(AssetBranch.source_asset_id == source_asset_id)
            .order_by(AssetBranch.branch_time_sec, AssetBranchVariant.display_order, AssetBranchVariant.id)
        )
        async with self._sessions() as session:
            rows = (await session.execute(stmt)).all()
        return [
            BranchVariantRow(
                branch_id=branch.id,
                branch_name=branch.branch_name,
                branch_tag=branch.branch_tag,
                branch_time_sec=branch.branch_time_sec,
                branch_frame=branch.branch_frame,
                variant_id=variant.id,
                variant_name=variant.variant_name,
                variant_tag=variant.variant_tag,
                weight=variant.weight,
                conditions=dict(variant.conditions),
                variant_asset_id=asset.id,
                variant_duration_sec=asset.duration_sec,
            )
            for branch, variant, asset in rows
        ]
