"""The lineage graph's queries on a real database: neighbourhoods, multi-parent edges, filters, the
age gate and the whole-library view."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.enums import MediaType, OperationType
from core.lineage_graph import GraphFilter, LineageGraphError, LineageGraphService
from tests.factories import add_asset
from tests.lineage.graphs import add_edge, build_demo_like


@pytest.fixture
async def world(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with sessions() as session, session.begin():
        return await build_demo_like(session)


def names(graph_nodes: Mapping[int, object], ids: dict[str, int]) -> set[str]:
    by_id = {v: k for k, v in ids.items()}
    return {by_id[i] for i in graph_nodes}


async def test_neighbourhood_follows_ancestors_and_descendants_hop_by_hop(
    sessions: async_sessionmaker[AsyncSession], world: dict[str, int]
) -> None:
    service = LineageGraphService(sessions)
    one = await service.neighbourhood(world["watch 2"], hops=1)
    assert names(one.nodes, world) == {"watch 1", "watch 2", "watch 3"}
    assert one.focus_id == world["watch 2"] and one.hops == 1
    assert {(e.parent_id, e.child_id) for e in one.edges} == {
        (world["watch 1"], world["watch 2"]),
        (world["watch 2"], world["watch 3"]),
    }
    assert one.nodes[world["watch 1"]].depth == 1 and one.nodes[world["watch 2"]].depth == 0

    zero = await service.neighbourhood(world["watch 2"], hops=0)
    assert names(zero.nodes, world) == {"watch 2"} and zero.edges == ()

    # From a still: one hop reaches its children; two hops still only descend (no siblings' parents).
    dusk1 = await service.neighbourhood(world["dusk"], hops=1)
    assert names(dusk1.nodes, world) == {"dusk", "dusk to night", "storyboard"}
    # Only edges between shown nodes: the storyboard's other keyframe parents are not shown.
    assert all(e.parent_id == world["dusk"] for e in dusk1.edges)


async def test_multi_parent_edges_come_with_their_roles_frames_and_labels(
    sessions: async_sessionmaker[AsyncSession], world: dict[str, int]
) -> None:
    service = LineageGraphService(sessions)
    board = await service.neighbourhood(world["storyboard"], hops=1)
    assert names(board.nodes, world) == {"storyboard", "dusk", "keeper", "night"}
    keyframes = sorted(board.parents_of(world["storyboard"]), key=lambda e: e.sequence_order)
    assert [e.frame for e in keyframes] == [12, 36, 60]
    fps = board.nodes[world["storyboard"]].fps
    assert [e.label(fps) for e in keyframes] == [
        "keyframe #1 @ 0.5 s",
        "keyframe #2 @ 1.5 s",
        "keyframe #3 @ 2.5 s",
    ]

    transition = await service.neighbourhood(world["dusk to night"], hops=1)
    roles = {e.role: e.label() for e in transition.parents_of(world["dusk to night"])}
    assert roles == {"first_frame": "first frame", "last_frame": "last frame"}

    story = await service.neighbourhood(world["story"], hops=1)
    variants = story.children_of(world["story"])
    assert {e.label() for e in variants} == {"from 2.5 s"}
    assert all(e.operation == "video_extend" and e.provider_id == "sandbox" for e in variants)
    node = story.nodes[world["story"]]
    assert node.name == "story" and node.media_type is MediaType.VIDEO and node.provider_id == "sandbox"
    assert node.thumbnail_key == (world["story"], "thumb") and node.card.sha256


async def test_filters_by_operation_and_provider_cut_the_walk(
    sessions: async_sessionmaker[AsyncSession], world: dict[str, int]
) -> None:
    service = LineageGraphService(sessions)
    everything = await service.neighbourhood(world["story"], hops=3)
    assert names(everything.nodes, world) == {"story", "stay", "row out", "remix"}
    assert set(everything.operations) >= {"video_extend", "remix"}
    assert set(everything.providers) == {"sandbox", "pixverse"}

    extends = await service.neighbourhood(
        world["story"], hops=3, graph_filter=GraphFilter(operations=frozenset({"video_extend"}))
    )
    assert names(extends.nodes, world) == {"story", "stay", "row out"}
    # The vocabulary stays complete, so a filter can be undone from the same menu.
    assert "remix" in extends.operations

    pixverse = await service.whole_library(graph_filter=GraphFilter(providers=frozenset({"pixverse"})))
    assert names(pixverse.nodes, world) == {"stay", "remix"}
    assert [e.operation for e in pixverse.edges] == ["remix"]


async def test_age_gate_hides_restricted_relatives_unless_asked(
    sessions: async_sessionmaker[AsyncSession], world: dict[str, int]
) -> None:
    service = LineageGraphService(sessions)
    shown = await service.neighbourhood(world["story"], hops=1)
    assert "hidden" not in names(shown.nodes, world)
    with_gated = await service.neighbourhood(world["story"], hops=1, include_age_restricted=True)
    assert "hidden" in names(with_gated.nodes, world)


async def test_whole_library_shows_every_asset_with_lineage_and_stops_at_the_bound(
    sessions: async_sessionmaker[AsyncSession], world: dict[str, int]
) -> None:
    service = LineageGraphService(sessions)
    library = await service.whole_library()
    assert "alone" not in names(library.nodes, world) and "hidden" not in names(library.nodes, world)
    assert len(library.nodes) == 13 and len(library.edges) == 11 and not library.truncated
    assert library.nodes[world["dusk"]].fps is None
    cut = await service.whole_library(max_nodes=5)
    assert len(cut.nodes) == 5 and cut.truncated
    assert all(e.parent_id in cut.nodes and e.child_id in cut.nodes for e in cut.edges)


async def test_cycles_in_the_table_do_not_hang_the_walk(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        a, b, c = [(await add_asset(session)).id for _ in range(3)]
        await add_edge(session, a, b, OperationType.VIDEO_EXTEND, "source")
        await add_edge(session, b, c, OperationType.VIDEO_EXTEND, "source")
        await add_edge(session, c, a, OperationType.VIDEO_EXTEND, "source")
    graph = await LineageGraphService(sessions).neighbourhood(a, hops=50)
    assert set(graph.nodes) == {a, b, c} and len(graph.edges) == 3


async def test_bad_requests_say_what_to_do(
    sessions: async_sessionmaker[AsyncSession], world: dict[str, int]
) -> None:
    service = LineageGraphService(sessions)
    with pytest.raises(LineageGraphError, match="not in the library"):
        await service.neighbourhood(10**9, hops=1)
    with pytest.raises(LineageGraphError, match="between 0 and 50 hops"):
        await service.neighbourhood(world["story"], hops=99)
