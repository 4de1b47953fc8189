"""The schema enforces what the domain promises: references, lineage, embeddings, jobs, indexes."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from core.db.enums import JobStatus, MediaType, OperationType, ParentRole, ProviderRefKind, SegmentType
from core.db.models import (
    Asset,
    AssetLineage,
    AssetProviderRef,
    AssetTemporalSegment,
    Embedding,
    EmbeddingModel,
    Job,
    JobResultAsset,
    ProviderAccount,
)
from tests.factories import add_asset, local_user_id


async def test_provider_references_one_per_asset_provider_account(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        asset = await add_asset(session)
        account = ProviderAccount(
            user_id=await local_user_id(session),
            provider_id="sora",
            label="studio",
            keyring_ref="pixsim/sora-1",
        )
        session.add(account)
        await session.flush()
        session.add_all(
            [
                AssetProviderRef(
                    asset_id=asset.id,
                    provider_id="pixverse",
                    ref_kind=ProviderRefKind.VIDEO_ID,
                    provider_ref="video_abc123",
                    is_origin=True,
                ),
                AssetProviderRef(
                    asset_id=asset.id,
                    provider_id="sora",
                    account_id=account.id,
                    ref_kind=ProviderRefKind.VIDEO_ID,
                    provider_ref="video_xyz789",
                ),
            ]
        )
        asset_id = asset.id

    async with sessions() as session:
        loaded = await session.scalar(
            select(Asset).where(Asset.id == asset_id).options(selectinload(Asset.provider_refs))
        )
        assert loaded is not None
        assert dict(loaded.provider_uploads) == {"pixverse": "video_abc123", "sora": "video_xyz789"}
        with pytest.raises(TypeError):
            loaded.provider_uploads["runway"] = "x"  # type: ignore[index]

    # A second reference for the same (asset, provider, no account) is refused: NULLs are not distinct.
    async with sessions() as session:
        session.add(
            AssetProviderRef(
                asset_id=asset_id,
                provider_id="pixverse",
                ref_kind=ProviderRefKind.MEDIA_ID,
                provider_ref="m2",
            )
        )
        with pytest.raises(IntegrityError, match="uq_asset_provider_refs"):
            await session.commit()


async def test_relationships_never_load_lazily(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        asset = await add_asset(session)
        with pytest.raises(Exception, match="lazy='raise'"):
            _ = asset.provider_refs


async def test_lineage_edges_are_typed_and_allow_several_parents(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        first = await add_asset(session, media_type=MediaType.IMAGE, duration_sec=None, fps=None)
        last = await add_asset(session, media_type=MediaType.IMAGE, duration_sec=None, fps=None)
        transition = await add_asset(session)
        job = Job(
            user_id=await local_user_id(session),
            provider_id="pixverse",
            operation_type=OperationType.TRANSITION,
            params={"first_frame_asset_id": first.id, "last_frame_asset_id": last.id, "prompt": "morph"},
            status=JobStatus.SUCCEEDED,
            provider_job_id="vid-1",
            progress=1.0,
        )
        session.add(job)
        await session.flush()
        session.add(JobResultAsset(job_id=job.id, asset_id=transition.id))
        for order, (parent, role) in enumerate(
            [(first, ParentRole.FIRST_FRAME), (last, ParentRole.LAST_FRAME)]
        ):
            session.add(
                AssetLineage(
                    parent_asset_id=parent.id,
                    child_asset_id=transition.id,
                    operation=OperationType.TRANSITION,
                    parent_role=role,
                    provider_id="pixverse",
                    job_id=job.id,
                    sequence_order=order,
                    transformation={"prompt": "morph"},
                )
            )
        ids = first.id, last.id, transition.id

    async with sessions() as session:
        parents = (
            await session.execute(
                select(AssetLineage.parent_asset_id, AssetLineage.parent_role)
                .where(AssetLineage.child_asset_id == ids[2])
                .order_by(AssetLineage.sequence_order)
            )
        ).all()
        assert parents == [(ids[0], "first_frame"), (ids[1], "last_frame")]

    # An asset cannot be its own parent.
    async with sessions() as session:
        session.add(
            AssetLineage(
                parent_asset_id=ids[2], child_asset_id=ids[2], operation="remix", parent_role="source"
            )
        )
        with pytest.raises(IntegrityError, match="ck_asset_lineage_no_self_edge"):
            await session.commit()

    # Deleting a parent removes its edges; the child and the other edge remain.
    async with sessions() as session, session.begin():
        await session.execute(delete(Asset).where(Asset.id == ids[0]))
    async with sessions() as session:
        remaining = await session.scalars(select(AssetLineage.parent_asset_id))
        assert list(remaining) == [ids[1]]
        assert await session.get(Asset, ids[2]) is not None


async def test_keyframe_edges_keep_frame_time_range_and_order(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The seed's Example 4 (Sora storyboard): one edge per keyframe with its frame and action."""
    async with sessions() as session, session.begin():
        video = await add_asset(session, provider_id="sora")
        keyframes = [await add_asset(session, media_type=MediaType.IMAGE) for _ in range(2)]
        for i, (kf, frame, action) in enumerate(
            zip(keyframes, (48, 132), ("zoom_in", "pan_left"), strict=True)
        ):
            session.add(
                AssetLineage(
                    parent_asset_id=kf.id,
                    child_asset_id=video.id,
                    operation=OperationType.TEXT_TO_VIDEO,
                    parent_role=ParentRole.KEYFRAME,
                    parent_frame=frame,
                    sequence_order=i,
                    transformation={"action": action, "frame_position": frame},
                )
            )
        session.add(
            AssetLineage(
                parent_asset_id=keyframes[0].id,
                child_asset_id=(await add_asset(session)).id,
                operation=OperationType.VIDEO_EXTEND,
                parent_role=ParentRole.SOURCE,
                parent_start_sec=2.0,
                parent_end_sec=4.5,
            )
        )
        video_id = video.id

    async with sessions() as session:
        edges = (
            await session.execute(
                select(AssetLineage.parent_frame, AssetLineage.transformation["action"].astext)
                .where(AssetLineage.child_asset_id == video_id)
                .order_by(AssetLineage.sequence_order)
            )
        ).all()
        assert edges == [(48, "zoom_in"), (132, "pan_left")]

    # A parent time range must not run backwards.
    async with sessions() as session:
        session.add(
            AssetLineage(
                parent_asset_id=(await add_asset(session)).id,
                child_asset_id=video_id,
                operation="edit",
                parent_role="source",
                parent_start_sec=5.0,
                parent_end_sec=1.0,
            )
        )
        with pytest.raises(IntegrityError, match="ck_asset_lineage_end_after_start"):
            await session.commit()


async def test_embeddings_of_several_models_coexist_as_halfvec(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        clip = EmbeddingModel(name="clip-vit-b-32", dimensions=4)
        tiny = EmbeddingModel(name="tiny-test-model", dimensions=2)
        session.add_all([clip, tiny])
        near = await add_asset(session)
        far = await add_asset(session)
        segment = AssetTemporalSegment(
            asset_id=near.id, segment_type=SegmentType.SCENE, start_sec=0.0, end_sec=2.0, timestamp_sec=1.0
        )
        session.add(segment)
        await session.flush()
        session.add_all(
            [
                Embedding(model_id=clip.id, asset_id=near.id, embedding=[1.0, 0.0, 0.0, 0.1]),
                Embedding(model_id=clip.id, asset_id=far.id, embedding=[0.0, 1.0, 0.0, 0.0]),
                Embedding(model_id=tiny.id, asset_id=near.id, embedding=[0.5, 0.5]),
                Embedding(model_id=clip.id, segment_id=segment.id, embedding=[0.9, 0.1, 0.0, 0.0]),
            ]
        )
        clip_id, near_id, far_id = clip.id, near.id, far.id

    async with sessions() as session:
        query = [1.0, 0.0, 0.0, 0.0]
        distance = Embedding.embedding.cosine_distance(query)
        ranked = await session.scalars(
            select(Embedding.asset_id)
            .where(Embedding.model_id == clip_id, Embedding.asset_id.is_not(None))
            .order_by(distance)
        )
        assert list(ranked) == [near_id, far_id]
        kinds = await session.scalars(select(func.pg_typeof(Embedding.embedding)).distinct())
        assert list(kinds) == ["halfvec"]

    # An embedding belongs to exactly one subject.
    async with sessions() as session:
        session.add(Embedding(model_id=clip_id, embedding=[1.0, 0.0, 0.0, 0.0]))
        with pytest.raises(IntegrityError, match="ck_embeddings_one_subject"):
            await session.commit()


async def test_job_status_is_checked_by_the_database(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        user_id = await local_user_id(session)
        with pytest.raises(IntegrityError, match="ck_jobs_job_status"):
            await session.execute(
                text(
                    "INSERT INTO jobs (user_id, provider_id, operation_type, status) "
                    "VALUES (:u, 'sandbox', 'text_to_video', 'exploded')"
                ),
                {"u": user_id},
            )


@pytest.mark.parametrize(
    ("where", "index"),
    [
        ("content_category = 'football'", "ix_assets_content_category"),
        ("media_type = 'video'", "ix_assets_media_type"),
        ("provider_id = 'sora'", "ix_assets_provider_id"),
        ("tags @> ARRAY['cat']::varchar[]", "ix_assets_tags"),
        ("user_id = 1 ORDER BY created_at DESC LIMIT 50", "ix_assets_user_id_created_at"),
    ],
)
async def test_seed_queries_are_served_by_indexes(
    sessions: async_sessionmaker[AsyncSession], where: str, index: str
) -> None:
    async with sessions() as session:
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            row[0] for row in await session.execute(text(f"EXPLAIN SELECT id FROM assets WHERE {where}"))
        )
    assert index in plan
