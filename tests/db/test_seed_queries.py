"""The seeds' example queries run against the real schema and return exactly the right rows."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.enums import BranchType, ContentDomain, ContentRating
from core.db.models import AssetAdultMetadata, AssetBranch, AssetBranchVariant
from core.library import LibraryService
from tests.factories import add_asset


async def test_example_2_category_and_domain_metadata_filter(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        wanted = await add_asset(
            session,
            content_domain=ContentDomain.ADULT,
            content_category="artistic_nude",
            content_rating=ContentRating.ADULT,
            age_restricted=True,
        )
        session.add(
            AssetAdultMetadata(
                asset_id=wanted.id,
                intensity_level="moderate",
                scene_type="solo",
                mood="artistic",
                lighting="dramatic",
            )
        )
        # Same category, other intensity: excluded by the metadata filter.
        other_intensity = await add_asset(
            session, content_domain=ContentDomain.ADULT, content_category="artistic_nude"
        )
        session.add(AssetAdultMetadata(asset_id=other_intensity.id, intensity_level="high", mood="artistic"))
        # Same metadata, other category: excluded by the category filter.
        other_category = await add_asset(
            session, content_domain=ContentDomain.ADULT, content_category="glamour"
        )
        session.add(
            AssetAdultMetadata(asset_id=other_category.id, intensity_level="moderate", mood="artistic")
        )
        # Right category but no domain metadata row at all: excluded by the join.
        await add_asset(session, content_category="artistic_nude")
        wanted_id = wanted.id

    library = LibraryService(sessions)
    found = await library.find_by_category("artistic_nude", intensity_level="moderate", mood="artistic")
    assert [a.id for a in found] == [wanted_id]

    without_metadata_filter = await library.find_by_category("artistic_nude")
    assert len(without_metadata_filter) == 3


async def test_example_3_branch_variant_asset_join(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        source = await add_asset(session, duration_sec=20.0)
        forest = await add_asset(session, duration_sec=6.0, provider_id="sora")
        mountain = await add_asset(session, duration_sec=7.5, provider_id="pixverse")
        cave = await add_asset(session, duration_sec=5.0, provider_id="comfyui")
        unrelated_source = await add_asset(session)
        unrelated_variant = await add_asset(session)

        fork = AssetBranch(
            source_asset_id=source.id,
            branch_time_sec=10.5,
            branch_frame=315,
            branch_name="Fork in the Road",
            branch_tag="path_choice_01",
            branch_type=BranchType.CONDITIONAL,
        )
        session.add(fork)
        elsewhere = AssetBranch(
            source_asset_id=unrelated_source.id,
            branch_time_sec=1.0,
            branch_name="Elsewhere",
            branch_tag="elsewhere",
        )
        session.add(elsewhere)
        await session.flush()
        for order, (name, tag, asset, weight) in enumerate(
            [
                ("Forest Path", "path_forest", forest, 2.0),
                ("Mountain Path", "path_mountain", mountain, 1.0),
                ("Cave Path", "path_cave", cave, 0.5),
            ]
        ):
            session.add(
                AssetBranchVariant(
                    branch_id=fork.id,
                    variant_asset_id=asset.id,
                    variant_name=name,
                    variant_tag=tag,
                    weight=weight,
                    display_order=order,
                    conditions={"var": "courage", "gte": order},
                )
            )
        session.add(
            AssetBranchVariant(
                branch_id=elsewhere.id,
                variant_asset_id=unrelated_variant.id,
                variant_name="Other",
                variant_tag="other",
            )
        )
        source_id, ids = source.id, (forest.id, mountain.id, cave.id)

    rows = await LibraryService(sessions).branch_variants(source_id)
    assert [(r.variant_tag, r.variant_asset_id, r.weight) for r in rows] == [
        ("path_forest", ids[0], 2.0),
        ("path_mountain", ids[1], 1.0),
        ("path_cave", ids[2], 0.5),
    ]
    assert {(r.branch_tag, r.branch_time_sec, r.branch_frame) for r in rows} == {
        ("path_choice_01", 10.5, 315)
    }
    assert [r.variant_duration_sec for r in rows] == [6.0, 7.5, 5.0]
    assert rows[2].conditions == {"var": "courage", "gte": 2}
