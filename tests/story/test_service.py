"""Editing a video's story the way the timeline editor does: branch points, variants and clips, with the
errors a user would see, and undo (delete → restore) bringing back exactly what was there."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from sqlalchemy import event, select

from core.db.enums import BranchType, JobStatus, MediaType, OperationType, ParentRole
from core.db.models import Asset, AssetLineage
from core.media.probe import frame_at, probe, read_image
from core.story.conditions import InvalidCondition
from core.story.model import (
    BranchTimeOutOfRange,
    DuplicateTag,
    InvalidClipRange,
    MissingAsset,
    StoryError,
    VariantCycle,
)
from core.story.service import load_branches
from tests.story.conftest import StoryEnv


def _without_ids(value: Any) -> Any:
    """A dataclass as a dict with every id left out (restored rows get new ids)."""
    data = dataclasses.asdict(value)

    def strip(item: Any) -> Any:
        if isinstance(item, dict):
            return {k: strip(v) for k, v in item.items() if k not in ("id", "branch_id")}
        if isinstance(item, list | tuple):
            return [strip(v) for v in item]
        return item

    return strip(data)


async def test_branch_points_are_added_moved_and_checked(env: StoryEnv) -> None:
    video = await env.video(1, seconds=2.0, fps=12)
    story = env.story

    fork = await story.add_branch(video, 1.0, name="Fork in the road", game_metadata={"music": "tense"})
    assert (fork.time_sec, fork.frame, fork.tag) == (1.0, 12, "fork_in_the_road")
    assert fork.branch_type is BranchType.MANUAL and fork.game_metadata == {"music": "tense"}
    # A second branch with the same name gets a free tag; an explicit duplicate tag is refused.
    again = await story.add_branch(video, 0.5, name="Fork in the road")
    assert again.tag == "fork_in_the_road_2"
    with pytest.raises(DuplicateTag, match="fork_in_the_road"):
        await story.add_branch(video, 0.2, name="Other", tag="fork_in_the_road")

    # Beyond the end, or negative: refused with the video's length in the message.
    with pytest.raises(BranchTimeOutOfRange, match=r"beyond the end .*2\.00 s"):
        await story.add_branch(video, 2.5, name="Too late")
    with pytest.raises(BranchTimeOutOfRange, match="negative"):
        await story.add_branch(video, -0.1, name="Too early")

    moved = await story.update_branch(fork.id, time_sec=1.5, branch_type=BranchType.RANDOM)
    assert (moved.time_sec, moved.frame, moved.branch_type) == (1.5, 18, BranchType.RANDOM)
    assert moved.name == "Fork in the road" and moved.game_metadata == {"music": "tense"}  # untouched
    with pytest.raises(BranchTimeOutOfRange):
        await story.update_branch(fork.id, time_sec=3.0)
    with pytest.raises(DuplicateTag):
        await story.update_branch(fork.id, tag="fork_in_the_road_2")

    loaded = await story.story(video)
    assert [b.time_sec for b in loaded.branches] == [0.5, 1.5]  # by time
    assert loaded.video.duration_sec == pytest.approx(2.0) and loaded.video.frame_count == 24


async def test_a_story_must_be_on_a_video(env: StoryEnv) -> None:
    image = await env.image(3)
    with pytest.raises(MissingAsset, match="not a video"):
        await env.story.add_branch(image, 0.0, name="x")
    with pytest.raises(MissingAsset, match="not in the library"):
        await env.story.add_branch(999_999, 0.0, name="x")


async def test_variants_weights_conditions_order_default_and_cycles(env: StoryEnv) -> None:
    root, forest, cave, image = (
        await env.video(1, name="Crossroads"),
        await env.video(2, name="Forest"),
        await env.video(3, name="Cave"),
        await env.image(4),
    )
    story = env.story
    branch = await story.add_branch(root, 1.0, name="Which way", branch_type=BranchType.CONDITIONAL)

    first = await story.add_variant(branch.id, forest)
    assert (first.name, first.tag, first.asset_name, first.is_default) == ("Forest", "forest", "Forest", True)
    second = await story.add_variant(
        branch.id, cave, name="Into the cave", weight=2.5, conditions={"var": "has_torch", "eq": True}
    )
    assert (second.tag, second.weight, second.display_order, second.is_default) == (
        "into_the_cave",
        2.5,
        1,
        False,
    )

    with pytest.raises(VariantCycle, match="own video"):
        await story.add_variant(branch.id, root)
    with pytest.raises(MissingAsset, match="not a video"):
        await story.add_variant(branch.id, image)
    with pytest.raises(InvalidCondition, match="unknown operator 'equals'"):
        await story.add_variant(branch.id, cave, conditions={"var": "x", "equals": 1})
    with pytest.raises(StoryError, match="weight"):
        await story.update_variant(second.id, weight=-1)
    # The forest leading back to the crossroads would make a loop.
    back = await story.add_branch(forest, 0.5, name="Back")
    with pytest.raises(VariantCycle, match="lead back"):
        await story.add_variant(back.id, root)

    reordered = await story.reorder_variants(branch.id, [second.id, first.id])
    assert [v.id for v in reordered.variants] == [second.id, first.id]
    with pytest.raises(StoryError, match="each of its 2 variants once"):
        await story.reorder_variants(branch.id, [second.id])
    with_default = await story.set_default_variant(branch.id, second.id)
    assert [v.is_default for v in with_default.variants] == [True, False]
    assert with_default.default_variant is not None and with_default.default_variant.id == second.id
    none = await story.set_default_variant(branch.id, None)
    assert none.default_variant is None

    renamed = await story.update_variant(first.id, name="Through the forest", asset_id=cave)
    assert (renamed.name, renamed.asset_id, renamed.tag) == ("Through the forest", cave, "forest")


async def test_undo_of_deletes_restores_the_same_story(env: StoryEnv) -> None:
    root, a, b = await env.video(1), await env.video(2), await env.video(3)
    story = env.story
    branch = await story.add_branch(
        root, 1.0, name="Choice", branch_type=BranchType.RANDOM, description="d", game_metadata={"k": [1]}
    )
    await story.add_variant(branch.id, a, weight=3.0)
    second = await story.add_variant(branch.id, b, conditions={"all": [{"var": "n", "gte": 2}]})
    await story.set_default_variant(branch.id, second.id)
    before = await story.branch(branch.id)

    # A deleted variant comes back at its place, as the default it was.
    gone = await story.delete_variant(second.id)
    assert [v.asset_id for v in (await story.branch(branch.id)).variants] == [a]
    back = await story.restore_variant(gone)
    assert back.id != second.id
    assert _without_ids(await story.branch(branch.id)) == _without_ids(before)

    # A deleted branch comes back with its variants.
    deleted = await story.delete_branch(branch.id)
    assert (await story.story(root)).branches == ()
    restored = await story.restore_branch(deleted)
    assert restored.id != branch.id
    assert _without_ids(restored) == _without_ids(await story.branch(restored.id))
    assert _without_ids(restored) == _without_ids(before)

    # Restoring when the tag was taken meanwhile says so.
    deleted = await story.delete_branch(restored.id)
    await story.add_branch(root, 0.2, name="Squatter", tag=deleted.tag)
    with pytest.raises(DuplicateTag, match="Rename that one first"):
        await story.restore_branch(deleted)


async def test_clips_are_checked_updated_and_restored(env: StoryEnv) -> None:
    video = await env.video(1, seconds=2.0, fps=12)
    story = env.story
    clip = await story.add_clip(video, 0.5, 1.5, name="Boss intro", tags=["boss", "intro", "boss"])
    assert (clip.tag, clip.start_frame, clip.end_frame, clip.tags) == ("boss_intro", 6, 18, ("boss", "intro"))
    with pytest.raises(InvalidClipRange, match="end after it starts"):
        await story.add_clip(video, 1.0, 1.0, name="Empty")
    with pytest.raises(InvalidClipRange, match="after the end"):
        await story.add_clip(video, 1.0, 2.5, name="Long")
    with pytest.raises(InvalidClipRange, match="before the video"):
        await story.add_clip(video, -1.0, 1.0, name="Early")
    with pytest.raises(DuplicateTag):
        await story.add_clip(video, 0.0, 1.0, name="x", tag="boss_intro")

    resized = await story.update_clip(clip.id, end_sec=2.0, description="the big one")
    assert (resized.start_sec, resized.end_sec, resized.end_frame, resized.description) == (
        0.5,
        2.0,
        24,
        "the big one",
    )
    with pytest.raises(InvalidClipRange):
        await story.update_clip(clip.id, start_sec=2.0)  # would end before it starts

    gone = await story.delete_clip(clip.id)
    assert (await story.story(video)).clips == ()
    back = await story.restore_clip(gone)
    assert dataclasses.replace(back, id=gone.id) == gone


async def test_all_branches_and_variants_of_a_video_load_in_one_statement(env: StoryEnv) -> None:
    """The seed's Example 3: what a game loads once at start, in one query, however many branches."""
    root = await env.video(1)
    targets = [await env.video(seed) for seed in range(2, 6)]
    for n in range(3):
        branch = await env.story.add_branch(root, 0.5 * n, name=f"Branch {n}")
        for target in targets:
            await env.story.add_variant(branch.id, target)
    await env.story.add_branch(root, 1.9, name="No variants yet")

    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = env.services.engine.sync_engine
    async with env.services.sessions() as session:
        await session.connection()  # connect first: connection set-up is not the query
        event.listen(engine, "before_cursor_execute", count)
        try:
            branches = await load_branches(session, [root])
        finally:
            event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 1, statements
    loaded = branches[root]
    assert [len(b.variants) for b in loaded] == [4, 4, 4, 0]
    assert [v.asset_id for v in loaded[0].variants] == targets


async def test_continue_from_a_branch_point_runs_an_extend_job_that_fills_the_variant(env: StoryEnv) -> None:
    root = await env.video(1, seconds=2.0)
    branch = await env.story.add_branch(root, 1.25, name="What next")

    pending = await env.story.continue_from_branch(
        branch.id, "sandbox", {"prompt": "into the storm", "seed": 7}
    )
    assert pending.asset_id is None and pending.job_id is not None
    assert pending.job_status is JobStatus.QUEUED and pending.name.endswith("from 1.25 s")
    job = await env.services.jobs.get(pending.job_id)
    assert job.params["video_asset_id"] == root and job.params["start_sec"] == 1.25
    assert (await env.story.branch(branch.id)).variants[0].asset_id is None  # "generating…"

    done = await env.run_jobs_until_done(pending.job_id)
    assert done.status is JobStatus.SUCCEEDED, done.error_message
    (variant,) = (await env.story.branch(branch.id)).variants
    assert variant.asset_id == done.result_asset_ids[0]
    assert variant.job_status is JobStatus.SUCCEEDED and variant.asset_name is not None
    async with env.services.sessions() as session:
        (edge,) = await session.scalars(
            select(AssetLineage).where(AssetLineage.child_asset_id == variant.asset_id)
        )
    assert (edge.parent_asset_id, edge.parent_role, edge.operation) == (root, "source", "video_extend")
    assert edge.parent_start_sec == 1.25 and edge.job_id == pending.job_id
    # The continuation is playable: the story graph reaches it.
    graph = await env.story.playthrough(root)
    assert variant.asset_id in graph.videos


async def test_a_failed_continuation_stays_pending_with_its_job_status(env: StoryEnv) -> None:
    root = await env.video(1)
    branch = await env.story.add_branch(root, 0.5, name="Fork")
    pending = await env.story.continue_from_branch(branch.id, "sandbox", {"prompt": "x"})
    assert pending.job_id is not None
    await env.services.jobs.cancel(pending.job_id)
    (variant,) = (await env.story.branch(branch.id)).variants
    assert variant.asset_id is None and variant.job_status is JobStatus.CANCELLED
    problems = await env.story.validate(root)
    assert any(
        p.severity == "error" and "cancelled" in p.message and p.variant_id == variant.id for p in problems
    )


async def test_continue_refuses_bad_parameters_without_leaving_a_variant(env: StoryEnv) -> None:
    root = await env.video(1)
    branch = await env.story.add_branch(root, 0.5, name="Fork")
    with pytest.raises(Exception, match="unknown parameter 'colour'"):
        await env.story.continue_from_branch(branch.id, "sandbox", {"colour": "red"})
    assert (await env.story.branch(branch.id)).variants == ()
    assert await env.services.jobs.list() == []


async def test_export_clip_cuts_a_real_file_with_lineage(env: StoryEnv) -> None:
    video = await env.video(5, seconds=2.0, fps=12)
    clip = await env.story.add_clip(video, 0.5, 1.5, name="Boss intro")
    seen: list[float] = []
    asset_id = await env.story.export_clip(clip.id, progress=seen.append)

    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    async with env.services.sessions() as session:
        asset = await session.get(Asset, asset_id)
        assert asset is not None
        (edge,) = await session.scalars(select(AssetLineage).where(AssetLineage.child_asset_id == asset_id))
    assert asset.media_type is MediaType.VIDEO and asset.title == "Boss intro"
    assert asset.duration_sec == pytest.approx(1.0, abs=0.1)
    assert (edge.parent_asset_id, edge.parent_role, edge.operation) == (
        video,
        ParentRole.SOURCE,
        OperationType.CLIP_EXPORT,
    )
    assert (edge.parent_start_sec, edge.parent_end_sec) == (0.5, 1.5)
    # The cut starts on the clip's first frame: same picture as the source at 0.5 s.
    source = await env.services.transfers.ensure_local(video)
    cut = await env.services.transfers.ensure_local(asset_id)
    assert probe(cut).frame_count in (None, 12)
    want, got = frame_at(source, 0.5).getpixel((32, 24)), frame_at(cut, 0.0).getpixel((32, 24))
    assert isinstance(want, tuple) and isinstance(got, tuple)
    assert all(abs(a - b) <= 6 for a, b in zip(want, got, strict=True)), (want, got)
    # …and not the picture of the source's first frame (the tiny video fades between two colours).
    first = frame_at(source, 0.0).getpixel((32, 24))
    assert isinstance(first, tuple) and max(abs(a - b) for a, b in zip(first, got, strict=True)) > 6


def _sound(path: Path) -> tuple[int, np.ndarray] | None:
    """(sample rate, mono samples) of the file's first audio track; None if it has none."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        track = container.streams.audio[0]
        samples = [frame.to_ndarray()[0] for frame in container.decode(track)]
        return track.codec_context.sample_rate, np.concatenate(samples)


async def test_an_exported_clip_keeps_its_sound_in_sync_with_the_picture(env: StoryEnv) -> None:
    video = await env.video(6, seconds=2.0, fps=12, audio=True)  # silent, then a tone from 1.0 s
    clip = await env.story.add_clip(video, 0.5, 1.5, name="Roar")
    cut = await env.services.transfers.ensure_local(await env.story.export_clip(clip.id))

    sound = _sound(cut)
    assert sound is not None, "the clip lost its sound"
    rate, samples = sound
    assert len(samples) / rate == pytest.approx(1.0, abs=0.03)  # the clip's length (AAC rounds to 1024)
    loud = np.flatnonzero(np.abs(samples) > 0.1)
    # The tone starts 0.5 s into the clip, as it starts 0.5 s after the clip's start in the source.
    assert loud[0] / rate == pytest.approx(0.5, abs=0.005)
    assert np.abs(samples[: int(0.45 * rate)]).max() < 0.02


async def test_a_clip_of_a_silent_video_has_no_sound_track(env: StoryEnv) -> None:
    video = await env.video(7, seconds=1.0)
    clip = await env.story.add_clip(video, 0.0, 0.5, name="Quiet")
    cut = await env.services.transfers.ensure_local(await env.story.export_clip(clip.id))
    assert _sound(cut) is None


async def test_a_cancelled_clip_export_keeps_nothing(env: StoryEnv) -> None:
    import asyncio

    from core.story.media import ExportCancelled

    video = await env.video(5, seconds=2.0)
    clip = await env.story.add_clip(video, 0.0, 2.0, name="All")
    cancel = asyncio.Event()
    cancel.set()
    before = await env.services.library.count_assets()
    with pytest.raises(ExportCancelled):
        await env.story.export_clip(clip.id, cancel=cancel)
    assert await env.services.library.count_assets() == before


async def test_save_frame_keeps_the_exact_frame_as_an_image_with_lineage(env: StoryEnv) -> None:
    video = await env.video(8, seconds=2.0, fps=12, name="Sunset")
    image_id = await env.story.save_frame(video, 1.0)
    async with env.services.sessions() as session:
        image = await session.get(Asset, image_id)
        assert image is not None
        (edge,) = await session.scalars(select(AssetLineage).where(AssetLineage.child_asset_id == image_id))
    assert image.media_type is MediaType.IMAGE and image.mime_type == "image/png"
    assert image.title == "Sunset, frame 12" and (image.width, image.height) == (64, 48)
    assert (edge.parent_role, edge.operation, edge.parent_frame, edge.parent_start_sec) == (
        "frame",
        "frame_extract",
        12,
        1.0,
    )
    source = await env.services.transfers.ensure_local(video)
    png = await env.services.transfers.ensure_local(image_id)
    assert read_image(png).tobytes() == frame_at(source, 1.0).tobytes()
    with pytest.raises(BranchTimeOutOfRange):
        await env.story.save_frame(video, 9.0)


async def test_validation_names_each_problem(env: StoryEnv) -> None:
    root, a, b = await env.video(1, name="Root"), await env.video(2, name="A"), await env.video(3, name="B")
    story = env.story
    empty = await story.add_branch(root, 0.2, name="Nothing here")
    cond = await story.add_branch(root, 1.0, name="Gate", branch_type=BranchType.CONDITIONAL)
    await story.add_variant(cond.id, a, conditions={"var": "key", "eq": True})
    await story.set_default_variant(cond.id, None)
    rnd = await story.add_branch(root, 1.5, name="Dice", branch_type=BranchType.RANDOM)
    await story.add_variant(rnd.id, b, weight=0)
    await story.add_clip(root, 0.0, 1.0, name="Gate")  # same tag as the branch

    # Data made elsewhere (an import, an older version) can hold what the editor refuses: write a loop.
    loop_branch = await story.add_branch(a, 0.5, name="Back")
    async with env.services.sessions() as session, session.begin():
        from core.db.models import AssetBranchVariant

        session.add(
            AssetBranchVariant(
                branch_id=loop_branch.id, variant_asset_id=root, variant_name="Loop", variant_tag="loop"
            )
        )

    problems = await story.validate(root)
    messages = [(p.severity, p.message) for p in problems]
    assert [s for s, _ in messages] == sorted(
        (s for s, _ in messages), key=lambda s: s != "error"
    )  # errors first
    text = "\n".join(m for _, m in messages)
    assert "'Nothing here' of 'Root' has no variants" in text
    assert "'Gate' of 'Root' is conditional but has no default" in text
    assert "'Dice' of 'Root' is random but none of its variants has a weight above 0" in text
    assert "The tag 'gate' names both clip 'Gate' and branch point 'Gate'" in text
    assert "leads back to 'A'" in text or "leads back to 'Root'" in text
    by_branch = {p.branch_id for p in problems}
    assert {empty.id, cond.id, rnd.id, loop_branch.id} <= by_branch
    errors = [p for p in problems if p.severity == "error"]
    assert any(p.branch_id == rnd.id for p in errors) and any("loop" in p.message for p in errors)


async def test_continue_on_a_provider_that_extends_from_the_end_gets_a_cut_up_to_the_branch(
    env: StoryEnv,
) -> None:
    """Pixverse continues a video from its last frames: it is given the video cut at the branch time."""
    root = await env.video(1, seconds=2.0, name="Opening")
    branch = await env.story.add_branch(root, 1.0, name="Midway")
    await env.services.accounts.add("pixverse", "studio", api_key="pv-test-key")

    pending = await env.story.continue_from_branch(branch.id, "pixverse", {"prompt": "rain"})
    assert pending.job_id is not None and pending.asset_id is None
    job = await env.services.jobs.get(pending.job_id)
    cut_id = job.params["video_asset_id"]
    assert cut_id != root and "start_sec" not in job.params
    async with env.services.sessions() as session:
        cut = await session.get(Asset, cut_id)
        assert cut is not None
        (edge,) = await session.scalars(select(AssetLineage).where(AssetLineage.child_asset_id == cut_id))
    assert cut.title == "Opening up to 1.00 s" and cut.duration_sec == pytest.approx(1.0, abs=0.1)
    assert (edge.parent_asset_id, edge.parent_start_sec, edge.parent_end_sec) == (root, 0.0, 1.0)
    # At the very end of the video no cut is needed.
    end = await env.story.add_branch(root, 2.0, name="End")
    at_end = await env.story.continue_from_branch(end.id, "pixverse", {"prompt": "more"})
    assert at_end.job_id is not None
    assert (await env.services.jobs.get(at_end.job_id)).params["video_asset_id"] == root
