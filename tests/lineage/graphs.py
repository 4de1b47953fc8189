"""A demo-like lineage (the shapes the demo library and real jobs record) written straight into a real
database, for the lineage graph's tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.db.enums import ContentRating, MediaType, OperationType, ParentRole
from core.db.models import AssetLineage
from tests.factories import add_asset


async def add_edge(
    session: AsyncSession,
    parent: int,
    child: int,
    operation: OperationType | str,
    role: ParentRole | str,
    **fields: Any,
) -> None:
    session.add(
        AssetLineage(
            parent_asset_id=parent,
            child_asset_id=child,
            operation=str(operation),
            parent_role=str(role),
            provider_id=fields.pop("provider_id", "sandbox"),
            **fields,
        )
    )
    await session.flush()


async def build_demo_like(session: AsyncSession) -> dict[str, int]:
    """Stills, an image-to-video, an extend chain, a transition (two parents), a storyboard (three
    keyframes at frames 12/36/60 of a 24 fps video), a story with two variants extended from 2.5 s, a
    Pixverse remix of a variant, and one unrelated asset. Returns ids by name."""
    ids: dict[str, int] = {}

    async def asset(name: str, media: MediaType, provider: str = "sandbox", **fields: Any) -> int:
        row = await add_asset(session, media_type=media, provider_id=provider, title=name, **fields)
        ids[name] = row.id
        return row.id

    for still in ("dusk", "night", "keeper"):
        await asset(still, MediaType.IMAGE, mime_type="image/png", duration_sec=None, fps=None)
    await asset("keeper alive", MediaType.VIDEO)
    await add_edge(
        session, ids["keeper"], ids["keeper alive"], OperationType.IMAGE_TO_VIDEO, ParentRole.SOURCE
    )
    await asset("watch 1", MediaType.VIDEO)
    await asset("watch 2", MediaType.VIDEO)
    await asset("watch 3", MediaType.VIDEO)
    await add_edge(
        session,
        ids["watch 1"],
        ids["watch 2"],
        OperationType.VIDEO_EXTEND,
        ParentRole.SOURCE,
        parent_start_sec=2.0,
    )
    await add_edge(session, ids["watch 2"], ids["watch 3"], OperationType.VIDEO_EXTEND, ParentRole.SOURCE)
    await asset("dusk to night", MediaType.VIDEO)
    await add_edge(
        session, ids["dusk"], ids["dusk to night"], OperationType.TRANSITION, ParentRole.FIRST_FRAME
    )
    await add_edge(
        session, ids["night"], ids["dusk to night"], OperationType.TRANSITION, ParentRole.LAST_FRAME
    )
    await asset("storyboard", MediaType.VIDEO, fps=24.0)
    for order, (still, frame) in enumerate((("dusk", 12), ("keeper", 36), ("night", 60))):
        await add_edge(
            session,
            ids[still],
            ids["storyboard"],
            OperationType.TEXT_TO_VIDEO,
            ParentRole.KEYFRAME,
            parent_frame=frame,
            sequence_order=order,
        )
    await asset("story", MediaType.VIDEO, duration_sec=4.0)
    for variant in ("stay", "row out"):
        await asset(variant, MediaType.VIDEO)
        await add_edge(
            session,
            ids["story"],
            ids[variant],
            OperationType.VIDEO_EXTEND,
            ParentRole.SOURCE,
            parent_start_sec=2.5,
        )
    await asset("remix", MediaType.VIDEO, provider="pixverse")
    await add_edge(
        session, ids["stay"], ids["remix"], OperationType.REMIX, ParentRole.REFERENCE, provider_id="pixverse"
    )
    await asset("hidden", MediaType.VIDEO, content_rating=ContentRating.EXPLICIT)
    await add_edge(session, ids["story"], ids["hidden"], OperationType.VIDEO_EXTEND, ParentRole.SOURCE)
    await asset("alone", MediaType.IMAGE, mime_type="image/png")
    return ids
