"""The demo library, built for real: the Sandbox through the job runner into a test database, then
looked at the way a newcomer would see it."""

from __future__ import annotations

import argparse
import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import URL

from app import demo_cli
from app.services import Services, build_services
from app.settings import Settings
from core.db.enums import ACTIVE_JOB_STATUSES, MediaType, OperationType, ParentRole
from core.db.models import Asset, AssetBranch, AssetBranchVariant, AssetClip, AssetLineage, Job
from core.demo import (
    BRANCH_NAME,
    BRANCH_TAG,
    BRANCH_TIME_SEC,
    DEMO_TAG,
    WORLD_TAG,
    DemoOutcome,
    DemoProgress,
    build_demo_library,
    select_items,
)
from core.jobs.runner import JobPolicy
from core.jobs.service import JobEvent, JobEventKind
from tests.memory_keyring import MemoryKeyring

FAST = JobPolicy(idle_poll_s=0.05, first_poll_s=0.02, max_poll_interval_s=0.1)
# Only the essentials: every kind of lineage, the branch and the clips (13 jobs).
SCALE = 0.0


@pytest.fixture
async def services(db_url: URL, tmp_path: Path, memory_keyring: MemoryKeyring) -> AsyncIterator[Services]:
    settings = Settings(data_dir=tmp_path / "data", config_dir=tmp_path / "config")
    built = build_services(settings, db_url, job_policy=FAST)
    yield built
    await built.aclose()


async def _by_title(services: Services) -> dict[str, Asset]:
    async with services.sessions() as session:
        assets = await session.scalars(select(Asset).where(Asset.tags.contains([DEMO_TAG])))
        return {a.title or "": a for a in assets}


async def _parents(services: Services, child_id: int) -> list[AssetLineage]:
    async with services.sessions() as session:
        return list(
            await session.scalars(
                select(AssetLineage)
                .where(AssetLineage.child_asset_id == child_id)
                .order_by(AssetLineage.sequence_order, AssetLineage.id)
            )
        )


async def _count(services: Services, model: type[object]) -> int:
    async with services.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_newcomer_sees_a_populated_library_and_a_second_run_makes_nothing(
    services: Services, db_url: URL, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    steps: list[DemoProgress] = []
    report = await build_demo_library(
        services.jobs, services.sessions, services.runner, progress=steps.append, scale=SCALE
    )

    assert report.outcome is DemoOutcome.CREATED
    items = select_items(SCALE)
    assert len(report.asset_ids) == len(report.new_asset_ids) == len(items)
    assert await services.library.count_assets() == len(items)
    assert report.images == 3 and report.videos == len(items) - 3
    # Progress: steps done of the total, never going back, ending complete.
    assert [s.done for s in steps] == sorted(s.done for s in steps)
    assert steps[-1].done == steps[-1].total == len(items) + 1

    titled = await _by_title(services)
    assert len(titled) == len(items)
    for asset in titled.values():
        assert asset.description and asset.content_category
        assert {DEMO_TAG, WORLD_TAG} <= set(asset.tags)
    assert {a.media_type for a in titled.values()} == {MediaType.IMAGE, MediaType.VIDEO}
    # Stills of several shapes (16:9 at 360p is 640x360).
    stills = [a for a in titled.values() if a.media_type is MediaType.IMAGE]
    assert {(a.width, a.height) for a in stills} == {(640, 360), (360, 640)}

    # The extend chain: part 3 ← part 2 ← part 1.
    chain = [titled[f"Night watch, part {n}"] for n in (1, 2, 3)]
    for parent, child in itertools.pairwise(chain):
        (edge,) = await _parents(services, child.id)
        assert edge.parent_asset_id == parent.id
        assert (edge.operation, edge.parent_role) == (OperationType.VIDEO_EXTEND, ParentRole.SOURCE)
    assert await _parents(services, chain[0].id) == []

    # The transition: first and last frames, by role.
    edges = await _parents(services, titled["From dusk to night"].id)
    assert {(e.parent_role, e.parent_asset_id) for e in edges} == {
        (ParentRole.FIRST_FRAME, titled["The lighthouse at dusk"].id),
        (ParentRole.LAST_FRAME, titled["Beacon in the night"].id),
    }

    # Image to video.
    (edge,) = await _parents(services, titled["The keeper looks up"].id)
    assert (edge.operation, edge.parent_asset_id) == (OperationType.IMAGE_TO_VIDEO, titled["The keeper"].id)

    # The storyboard (the seed's Example 4): one keyframe edge per still, with its frame and action.
    edges = await _parents(services, titled["Storyboard: the long night"].id)
    assert [(e.parent_role, e.sequence_order, e.parent_frame) for e in edges] == [
        (ParentRole.KEYFRAME, 0, 12),
        (ParentRole.KEYFRAME, 1, 36),
        (ParentRole.KEYFRAME, 2, 60),
    ]
    assert [e.parent_asset_id for e in edges] == [
        titled[t].id for t in ("The lighthouse at dusk", "The keeper", "Beacon in the night")
    ]
    assert [e.transformation["action"] for e in edges] == ["zoom_in", "pan_left", "zoom_out"]
    assert edges[1].transformation["frame_position"] == 36

    # The story video's branch point: three variants that start at the branch time.
    story = titled["The long night"]
    assert report.story_asset_id == story.id
    assert story.duration_sec is not None and 0 < BRANCH_TIME_SEC < story.duration_sec
    rows = await services.library.branch_variants(story.id)
    assert len(rows) == 3
    assert {(r.branch_name, r.branch_tag, r.branch_time_sec, r.branch_frame) for r in rows} == {
        (BRANCH_NAME, BRANCH_TAG, BRANCH_TIME_SEC, 60)
    }
    assert [r.variant_asset_id for r in rows] == list(report.variant_asset_ids)
    assert [r.weight for r in rows] == [2.0, 1.0, 1.0]
    conditional = [r for r in rows if r.conditions]
    assert len(conditional) == 1 and conditional[0].conditions == {
        "all": [{"var": "read_logbook", "eq": True}]
    }
    for row in rows:
        (edge,) = await _parents(services, row.variant_asset_id)
        assert edge.parent_asset_id == story.id
        assert edge.operation == OperationType.VIDEO_EXTEND
        assert edge.parent_start_sec == BRANCH_TIME_SEC
    async with services.sessions() as session:
        variant_jobs = list(await session.scalars(select(AssetBranchVariant.job_id)))
        clips = list(await session.scalars(select(AssetClip).order_by(AssetClip.start_sec)))
    assert len(variant_jobs) == 3 and all(variant_jobs)

    # Two named clips on the story video, inside it.
    assert [c.clip_name for c in clips] == ["The climb", "The storm breaks"]
    assert tuple(c.id for c in clips) == report.clip_ids
    for clip in clips:
        assert clip.asset_id == story.id and DEMO_TAG in clip.tags
        assert 0 <= clip.start_sec < clip.end_sec <= story.duration_sec

    # Again: the demo is there, nothing is made.
    jobs_before = await _count(services, Job)
    again = await build_demo_library(services.jobs, services.sessions, services.runner, scale=1.0)
    assert again.outcome is DemoOutcome.ALREADY_PRESENT
    assert again.new_asset_ids == ()
    assert set(again.asset_ids) == set(report.asset_ids)
    assert (again.branch_id, again.story_asset_id) == (report.branch_id, report.story_asset_id)
    assert again.variant_asset_ids == report.variant_asset_ids and again.clip_ids == report.clip_ids
    assert await _count(services, Job) == jobs_before
    assert await services.library.count_assets() == len(items)
    assert await _count(services, AssetBranch) == 1

    # `pixsim demo` says so too.
    settings = Settings(data_dir=tmp_path / "data", config_dir=tmp_path / "config")
    code = await demo_cli._run(argparse.Namespace(command="demo", scale=1.0), settings, db_url)
    out = capsys.readouterr().out
    assert code == 0
    assert "already there" in out and f"asset {story.id}" in out
    assert await _count(services, Job) == jobs_before


async def test_cancel_midway_leaves_no_half_made_branch_and_the_next_run_finishes_it(
    services: Services,
) -> None:
    cancel = asyncio.Event()

    def stop_after_four(step: DemoProgress) -> None:
        if step.done >= 4:
            cancel.set()

    report = await build_demo_library(
        services.jobs,
        services.sessions,
        services.runner,
        progress=stop_after_four,
        cancel=cancel,
        scale=SCALE,
    )

    assert report.outcome is DemoOutcome.CANCELLED
    assert report.branch_id is None and report.clip_ids == ()
    for model in (AssetBranch, AssetBranchVariant, AssetClip):
        assert await _count(services, model) == 0
    async with services.sessions() as session:
        active = await session.scalar(
            select(func.count()).select_from(Job).where(Job.status.in_(ACTIVE_JOB_STATUSES))
        )
    assert active == 0
    made = await services.library.count_assets()
    assert 4 <= made < len(select_items(SCALE))
    assert len(await _by_title(services)) == made  # what was made is described, not left anonymous

    resumed = await build_demo_library(services.jobs, services.sessions, services.runner, scale=SCALE)
    assert resumed.outcome is DemoOutcome.CREATED
    assert len(resumed.asset_ids) - len(resumed.new_asset_ids) == made  # reused, not made twice
    assert await services.library.count_assets() == len(select_items(SCALE))
    assert await _count(services, AssetBranchVariant) == 3


async def test_an_interrupted_build_is_finished_by_the_next_one_with_the_apps_runner(
    services: Services,
) -> None:
    # No runner yet (the app quit while the demo's first jobs were queued).
    created: list[int] = []
    three_queued = asyncio.Event()

    def on_event(event: JobEvent) -> None:
        if event.kind is JobEventKind.CREATED:
            created.append(event.job_id)
            if len(created) >= 3:
                three_queued.set()

    unsubscribe = services.jobs.events.subscribe(on_event)
    interrupted = asyncio.ensure_future(
        build_demo_library(services.jobs, services.sessions, None, scale=SCALE)
    )
    async with asyncio.timeout(10):
        await three_queued.wait()
    unsubscribe()
    interrupted.cancel()
    with pytest.raises(asyncio.CancelledError):
        await interrupted
    left_queued = await _count(services, Job)

    # Next time a runner already works jobs (the app's): the build waits for it, adopting the queued jobs.
    stop = asyncio.Event()
    runner = asyncio.ensure_future(services.runner.run(stop))
    try:
        report = await build_demo_library(services.jobs, services.sessions, None, scale=SCALE)
    finally:
        stop.set()
        await runner
    assert report.outcome is DemoOutcome.CREATED
    items = select_items(SCALE)
    assert await _count(services, Job) == len(items) > left_queued  # one job per asset, none twice
    assert await services.library.count_assets() == len(items)
    assert len(await _by_title(services)) == len(items)


def test_the_full_demo_is_a_few_dozen_assets_and_scale_keeps_every_kind() -> None:
    full = select_items(1.0)
    assert 25 <= len(full) <= 40
    operations = {item.operation for item in full}
    assert operations == {op.value for op in (
        OperationType.TEXT_TO_IMAGE,
        OperationType.TEXT_TO_VIDEO,
        OperationType.IMAGE_TO_VIDEO,
        OperationType.VIDEO_EXTEND,
        OperationType.TRANSITION,
    )}  # fmt: skip
    assert {i.operation for i in select_items(0.0)} == operations
    half = select_items(0.5)
    assert len(select_items(0.0)) < len(half) < len(full)
    # With everything an item is made from, listed before it.
    for index, item in enumerate(half):
        assert all(dep in [i.key for i in half[:index]] for dep in item.depends_on)


def test_the_demo_command_parses() -> None:
    parser = argparse.ArgumentParser()
    demo_cli.add_parsers(parser.add_subparsers(dest="command"))
    assert parser.parse_args(["demo"]).scale == 1.0
    assert parser.parse_args(["demo", "--scale", "0.25"]).scale == 0.25
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "--scale", "2"])
