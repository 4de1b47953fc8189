"""The branch timeline editor's core: branch points, variants and clips of a video, edited with checks
that name the problem, "continue from here" generation jobs, clip and frame export, validation, and the
story graph a playthrough or an export walks.

Every method opens its own short transaction and hands out plain frozen dataclasses (core.story.model),
so the editor can keep what ``delete_*`` returned and give it back to ``restore_*`` to undo.
"""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.enums import BranchType, JobStatus, MediaType, OperationType, ParentRole
from core.db.models import Asset, AssetBranch, AssetBranchVariant, AssetClip, Job, JobResultAsset
from core.importer import DerivedParent, ImportService
from core.jobs.service import JobService
from core.providers.base import find_operation
from core.providers.registry import ProviderRegistry
from core.providers.spec import Operation, Param, ParamKind
from core.story.conditions import check_condition
from core.story.export import ProgressCallback as ExportProgressCallback
from core.story.export import RuntimeImport, export_runtime, export_twee, import_runtime
from core.story.media import cut_video, frame_index, save_frame_png
from core.story.model import (
    UNSET,
    Branch,
    BranchTimeOutOfRange,
    Clip,
    DuplicateTag,
    InvalidClipRange,
    MissingAsset,
    NotFound,
    Problem,
    StoryAsset,
    StoryError,
    StoryGraph,
    Variant,
    VariantCycle,
    VideoInfo,
    VideoStory,
    _Unset,
)
from core.story.validate import validate_story
from core.transfer.service import TransferService

log = logging.getLogger(__name__)

# A branch or clip end may sit this far past the probed duration (container durations are rounded).
_DURATION_SLACK = 1e-3
_TAG_MAX = 120
_NAME_MAX = 200

ClipProgress = Callable[[float], None]


class StoryService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        jobs: JobService,
        importer: ImportService,
        transfers: TransferService,
        registry: ProviderRegistry,
    ) -> None:
        self._sessions = sessions
        self._jobs = jobs
        self._importer = importer
        self._transfers = transfers
        self._registry = registry

    # -- reading -------------------------------------------------------------------------------------

    async def story(self, video_id: int) -> VideoStory:
        """The video with its branches (by time, variants in display order) and clips (by start)."""
        async with self._sessions() as session:
            video = await _video(session, video_id)
            branches = await load_branches(session, [video_id])
            clips = await _clips(session, [video_id])
        return VideoStory(_info(video), tuple(branches.get(video_id, ())), tuple(clips.get(video_id, ())))

    async def branch(self, branch_id: int) -> Branch:
        async with self._sessions() as session:
            return await _branch(session, branch_id)

    # -- branches ------------------------------------------------------------------------------------

    async def add_branch(
        self,
        video_id: int,
        time_sec: float,
        *,
        name: str,
        tag: str | None = None,
        branch_type: BranchType = BranchType.MANUAL,
        description: str | None = None,
        game_metadata: Mapping[str, Any] | None = None,
    ) -> Branch:
        name = _name(name, "branch point")
        async with self._sessions() as session, session.begin():
            video = await _video(session, video_id, lock=True)
            _check_time(video, time_sec)
            taken = set(
                await session.scalars(
                    select(AssetBranch.branch_tag).where(AssetBranch.source_asset_id == video_id)
                )
            )
            row = AssetBranch(
                source_asset_id=video_id,
                branch_time_sec=float(time_sec),
                branch_frame=frame_index(time_sec, video.fps),
                branch_name=name,
                branch_tag=_pick_tag(tag, name, taken, f"video {video_id}", "branch"),
                branch_type=BranchType(branch_type),
                description=description,
                game_metadata=_json_object(game_metadata, "game metadata"),
            )
            session.add(row)
            await session.flush()
            branch_id = row.id
        return await self.branch(branch_id)

    async def update_branch(
        self,
        branch_id: int,
        *,
        time_sec: float | _Unset = UNSET,
        name: str | _Unset = UNSET,
        tag: str | _Unset = UNSET,
        branch_type: BranchType | _Unset = UNSET,
        description: str | _Unset | None = UNSET,
        game_metadata: Mapping[str, Any] | _Unset = UNSET,
    ) -> Branch:
        """Change only the fields given; moving a branch point is ``time_sec=`` (its frame follows)."""
        async with self._sessions() as session, session.begin():
            row = await _branch_row(session, branch_id, lock=True)
            if not isinstance(time_sec, _Unset):
                video = await _video(session, row.source_asset_id)
                _check_time(video, time_sec)
                row.branch_time_sec = float(time_sec)
                row.branch_frame = frame_index(time_sec, video.fps)
            if not isinstance(name, _Unset):
                row.branch_name = _name(name, "branch point")
            if not isinstance(tag, _Unset) and tag != row.branch_tag:
                taken = set(
                    await session.scalars(
                        select(AssetBranch.branch_tag).where(
                            AssetBranch.source_asset_id == row.source_asset_id, AssetBranch.id != branch_id
                        )
                    )
                )
                row.branch_tag = _pick_tag(
                    tag, row.branch_name, taken, f"video {row.source_asset_id}", "branch"
                )
            if not isinstance(branch_type, _Unset):
                row.branch_type = BranchType(branch_type)
            if not isinstance(description, _Unset):
                row.description = description
            if not isinstance(game_metadata, _Unset):
                row.game_metadata = _json_object(game_metadata, "game metadata")
        return await self.branch(branch_id)

    async def delete_branch(self, branch_id: int) -> Branch:
        """Delete a branch point and its variants; returns it whole, for ``restore_branch`` (undo)."""
        async with self._sessions() as session, session.begin():
            branch = await _branch(session, branch_id)
            row = await _branch_row(session, branch_id, lock=True)
            await session.delete(row)
        return branch

    async def restore_branch(self, branch: Branch) -> Branch:
        """Re-create a deleted branch point with its variants (new ids, same everything else). A
        variant whose job finished meanwhile gets the job's video."""
        async with self._sessions() as session, session.begin():
            video = await _video(session, branch.video_id, lock=True)
            _check_time(video, branch.time_sec)
            taken = set(
                await session.scalars(
                    select(AssetBranch.branch_tag).where(AssetBranch.source_asset_id == branch.video_id)
                )
            )
            if branch.tag in taken:
                raise DuplicateTag(
                    f"Cannot restore branch point '{branch.name}': its tag '{branch.tag}' is now used by "
                    "another branch point of this video. Rename that one first."
                )
            row = AssetBranch(
                source_asset_id=branch.video_id,
                branch_time_sec=branch.time_sec,
                branch_frame=frame_index(branch.time_sec, video.fps),
                branch_name=branch.name,
                branch_tag=branch.tag,
                branch_type=branch.branch_type,
                description=branch.description,
                game_metadata=dict(branch.game_metadata),
            )
            session.add(row)
            await session.flush()
            for variant in branch.variants:
                await _insert_variant(session, row.id, variant)
            branch_id = row.id
        return await self.branch(branch_id)

    # -- variants ------------------------------------------------------------------------------------

    async def add_variant(
        self,
        branch_id: int,
        asset_id: int,
        *,
        name: str | None = None,
        tag: str | None = None,
        weight: float = 1.0,
        conditions: Mapping[str, Any] | None = None,
    ) -> Variant:
        """Offer ``asset_id`` (a video) at the branch point. The first variant of a branch becomes its
        default (what plays when no condition holds)."""
        _check_weight(weight)
        conditions = _conditions(conditions)
        async with self._sessions() as session, session.begin():
            row = await _branch_row(session, branch_id, lock=True)
            asset = await _video(session, asset_id, role="variant")
            await _check_no_cycle(session, row.source_asset_id, asset_id)
            existing = list(
                await session.scalars(
                    select(AssetBranchVariant).where(AssetBranchVariant.branch_id == branch_id)
                )
            )
            display_name = _name(name if name is not None else _asset_name(asset), "variant")
            variant = AssetBranchVariant(
                branch_id=branch_id,
                variant_asset_id=asset_id,
                variant_name=display_name,
                variant_tag=_pick_tag(
                    tag,
                    display_name,
                    {v.variant_tag for v in existing},
                    f"branch '{row.branch_name}'",
                    "variant",
                ),
                weight=float(weight),
                conditions=conditions,
                display_order=max((v.display_order for v in existing), default=-1) + 1,
                is_default=not existing,
            )
            session.add(variant)
            await session.flush()
            variant_id = variant.id
        return await self._variant(variant_id)

    async def update_variant(
        self,
        variant_id: int,
        *,
        name: str | _Unset = UNSET,
        tag: str | _Unset = UNSET,
        weight: float | _Unset = UNSET,
        conditions: Mapping[str, Any] | _Unset = UNSET,
        asset_id: int | _Unset = UNSET,
    ) -> Variant:
        async with self._sessions() as session, session.begin():
            row = await _variant_row(session, variant_id, lock=True)
            branch = await _branch_row(session, row.branch_id)
            if not isinstance(name, _Unset):
                row.variant_name = _name(name, "variant")
            if not isinstance(tag, _Unset) and tag != row.variant_tag:
                taken = set(
                    await session.scalars(
                        select(AssetBranchVariant.variant_tag).where(
                            AssetBranchVariant.branch_id == row.branch_id, AssetBranchVariant.id != variant_id
                        )
                    )
                )
                row.variant_tag = _pick_tag(
                    tag, row.variant_name, taken, f"branch '{branch.branch_name}'", "variant"
                )
            if not isinstance(weight, _Unset):
                _check_weight(weight)
                row.weight = float(weight)
            if not isinstance(conditions, _Unset):
                row.conditions = _conditions(conditions)
            if not isinstance(asset_id, _Unset):
                await _video(session, asset_id, role="variant")
                await _check_no_cycle(session, branch.source_asset_id, asset_id)
                row.variant_asset_id = asset_id
        return await self._variant(variant_id)

    async def delete_variant(self, variant_id: int) -> Variant:
        async with self._sessions() as session, session.begin():
            variant = await _load_variant(session, variant_id)
            await session.delete(await _variant_row(session, variant_id, lock=True))
        return variant

    async def restore_variant(self, variant: Variant) -> Variant:
        """Re-create a deleted variant at its place (new id). If it was the default, it is again."""
        async with self._sessions() as session, session.begin():
            branch = await _branch_row(session, variant.branch_id, lock=True)
            if variant.asset_id is not None:
                await _video(session, variant.asset_id, role="variant")
                await _check_no_cycle(session, branch.source_asset_id, variant.asset_id)
            taken = set(
                await session.scalars(
                    select(AssetBranchVariant.variant_tag).where(
                        AssetBranchVariant.branch_id == variant.branch_id
                    )
                )
            )
            if variant.tag in taken:
                raise DuplicateTag(
                    f"Cannot restore variant '{variant.name}': its tag '{variant.tag}' is now used by another "
                    f"variant of '{branch.branch_name}'."
                )
            if variant.is_default:
                await _clear_default(session, variant.branch_id)
            # Its old place: later variants move down one.
            await session.execute(
                update(AssetBranchVariant)
                .where(
                    AssetBranchVariant.branch_id == variant.branch_id,
                    AssetBranchVariant.display_order >= variant.display_order,
                )
                .values(display_order=AssetBranchVariant.display_order + 1)
            )
            variant_id = await _insert_variant(session, variant.branch_id, variant)
        return await self._variant(variant_id)

    async def reorder_variants(self, branch_id: int, variant_ids: Sequence[int]) -> Branch:
        async with self._sessions() as session, session.begin():
            row = await _branch_row(session, branch_id, lock=True)
            rows = {
                v.id: v
                for v in await session.scalars(
                    select(AssetBranchVariant).where(AssetBranchVariant.branch_id == branch_id)
                )
            }
            if sorted(variant_ids) != sorted(rows) or len(set(variant_ids)) != len(variant_ids):
                raise StoryError(
                    f"The new order of '{row.branch_name}' must list each of its {len(rows)} variants once "
                    f"(got {list(variant_ids)}, it has {sorted(rows)}). Reload the branch and try again."
                )
            for order, variant_id in enumerate(variant_ids):
                rows[variant_id].display_order = order
        return await self.branch(branch_id)

    async def set_default_variant(self, branch_id: int, variant_id: int | None) -> Branch:
        """Make ``variant_id`` the branch's default (``None``: no default)."""
        async with self._sessions() as session, session.begin():
            row = await _branch_row(session, branch_id, lock=True)
            if variant_id is not None:
                target = await session.get(AssetBranchVariant, variant_id)
                if target is None or target.branch_id != branch_id:
                    raise NotFound(f"Variant {variant_id} is not a variant of '{row.branch_name}'.")
            await _clear_default(session, branch_id)
            if variant_id is not None:
                await session.execute(
                    update(AssetBranchVariant)
                    .where(AssetBranchVariant.id == variant_id)
                    .values(is_default=True)
                )
        return await self.branch(branch_id)

    async def continue_from_branch(
        self,
        branch_id: int,
        provider_id: str,
        params: Mapping[str, Any],
        *,
        operation: str = OperationType.VIDEO_EXTEND.value,
        account: str | int | None = None,
        name: str | None = None,
    ) -> Variant:
        """Queue a job continuing the branch's video from the branch time on ``provider_id`` and add a
        pending variant waiting for it, in one transaction. The job runner fills in the variant's video
        (and the lineage edge, parent_start_sec = branch time) in the transaction that imports the result.

        ``params`` are the operation's other parameters (prompt, seed, …); the video and start time are
        set here. A provider whose extend has no start-time parameter continues from the end of what it
        is given: it gets a cut of the video up to the branch time (a derived asset with lineage).
        """
        branch = await self.branch(branch_id)
        async with self._sessions() as session:
            video = await _video(session, branch.video_id)
        op = find_operation(self._registry.generator(provider_id), operation)
        source = _video_param(op, provider_id)
        values = dict(params)
        if source.start_param is not None:
            values[source.name] = branch.video_id
            values[source.start_param] = branch.time_sec
        elif video.duration_sec is not None and branch.time_sec >= video.duration_sec - _frame_length(video):
            values[source.name] = branch.video_id  # at the end: continue the whole video
        else:
            values[source.name] = await self._cut_to_asset(
                video, 0.0, branch.time_sec, f"{_asset_name(video)} up to {branch.time_sec:.2f} s"
            )
        prepared = await self._jobs.prepare(provider_id, op.id, values, account=account)
        label = name or f"{self._registry.generator(provider_id).display_name} from {branch.time_sec:.2f} s"
        async with self._sessions() as session, session.begin():
            row = await _branch_row(session, branch_id, lock=True)
            job_id = await self._jobs.insert(session, prepared)
            existing = list(
                await session.scalars(
                    select(AssetBranchVariant).where(AssetBranchVariant.branch_id == branch_id)
                )
            )
            display_name = _name(label, "variant")
            variant = AssetBranchVariant(
                branch_id=branch_id,
                variant_asset_id=None,
                job_id=job_id,
                variant_name=display_name,
                variant_tag=_pick_tag(
                    None,
                    display_name,
                    {v.variant_tag for v in existing},
                    f"branch '{row.branch_name}'",
                    "variant",
                ),
                weight=1.0,
                conditions={},
                display_order=max((v.display_order for v in existing), default=-1) + 1,
                is_default=not existing,
            )
            session.add(variant)
            await session.flush()
            variant_id = variant.id
        await self._jobs.announce(job_id)
        return await self._variant(variant_id)

    # -- clips ---------------------------------------------------------------------------------------

    async def add_clip(
        self,
        video_id: int,
        start_sec: float,
        end_sec: float,
        *,
        name: str,
        tag: str | None = None,
        description: str | None = None,
        tags: Iterable[str] = (),
    ) -> Clip:
        name = _name(name, "clip")
        async with self._sessions() as session, session.begin():
            video = await _video(session, video_id, lock=True)
            _check_range(video, start_sec, end_sec)
            taken = set(
                await session.scalars(select(AssetClip.clip_tag).where(AssetClip.asset_id == video_id))
            )
            row = AssetClip(
                asset_id=video_id,
                clip_name=name,
                clip_tag=_pick_tag(tag, name, taken, f"video {video_id}", "clip"),
                start_sec=float(start_sec),
                end_sec=float(end_sec),
                start_frame=frame_index(start_sec, video.fps),
                end_frame=frame_index(end_sec, video.fps),
                description=description,
                tags=_labels(tags),
            )
            session.add(row)
            await session.flush()
            clip_id = row.id
        return await self._clip(clip_id)

    async def update_clip(
        self,
        clip_id: int,
        *,
        start_sec: float | _Unset = UNSET,
        end_sec: float | _Unset = UNSET,
        name: str | _Unset = UNSET,
        tag: str | _Unset = UNSET,
        description: str | _Unset | None = UNSET,
        tags: Iterable[str] | _Unset = UNSET,
    ) -> Clip:
        async with self._sessions() as session, session.begin():
            row = await _clip_row(session, clip_id, lock=True)
            if not isinstance(start_sec, _Unset) or not isinstance(end_sec, _Unset):
                video = await _video(session, row.asset_id)
                start = row.start_sec if isinstance(start_sec, _Unset) else float(start_sec)
                end = row.end_sec if isinstance(end_sec, _Unset) else float(end_sec)
                _check_range(video, start, end)
                row.start_sec, row.end_sec = start, end
                row.start_frame, row.end_frame = frame_index(start, video.fps), frame_index(end, video.fps)
            if not isinstance(name, _Unset):
                row.clip_name = _name(name, "clip")
            if not isinstance(tag, _Unset) and tag != row.clip_tag:
                taken = set(
                    await session.scalars(
                        select(AssetClip.clip_tag).where(
                            AssetClip.asset_id == row.asset_id, AssetClip.id != clip_id
                        )
                    )
                )
                row.clip_tag = _pick_tag(tag, row.clip_name, taken, f"video {row.asset_id}", "clip")
            if not isinstance(description, _Unset):
                row.description = description
            if not isinstance(tags, _Unset):
                row.tags = _labels(tags)
        return await self._clip(clip_id)

    async def delete_clip(self, clip_id: int) -> Clip:
        async with self._sessions() as session, session.begin():
            row = await _clip_row(session, clip_id, lock=True)
            clip = _to_clip(row)
            await session.delete(row)
        return clip

    async def restore_clip(self, clip: Clip) -> Clip:
        async with self._sessions() as session, session.begin():
            video = await _video(session, clip.video_id, lock=True)
            _check_range(video, clip.start_sec, clip.end_sec)
            taken = set(
                await session.scalars(select(AssetClip.clip_tag).where(AssetClip.asset_id == clip.video_id))
            )
            if clip.tag in taken:
                raise DuplicateTag(
                    f"Cannot restore clip '{clip.name}': its tag '{clip.tag}' is now used by another clip of "
                    "this video. Rename that one first."
                )
            row = AssetClip(
                asset_id=clip.video_id,
                clip_name=clip.name,
                clip_tag=clip.tag,
                start_sec=clip.start_sec,
                end_sec=clip.end_sec,
                start_frame=frame_index(clip.start_sec, video.fps),
                end_frame=frame_index(clip.end_sec, video.fps),
                description=clip.description,
                tags=list(clip.tags),
            )
            session.add(row)
            await session.flush()
            clip_id = row.id
        return await self._clip(clip_id)

    async def export_clip(
        self,
        clip_id: int,
        *,
        progress: ClipProgress | None = None,
        cancel: asyncio.Event | None = None,
    ) -> int:
        """Cut the clip into its own video file: a new asset, with a lineage edge to the source video
        (role "source", parent_start_sec/parent_end_sec = the clip's range). Returns the asset id."""
        clip = await self._clip(clip_id)
        async with self._sessions() as session:
            video = await _video(session, clip.video_id)
        return await self._cut_to_asset(
            video,
            clip.start_sec,
            clip.end_sec,
            clip.name,
            description=clip.description,
            progress=progress,
            cancel=cancel,
            transformation={"clip_tag": clip.tag},
        )

    async def save_frame(self, video_id: int, time_sec: float) -> int:
        """The exact frame shown at ``time_sec`` as a PNG image asset, with a lineage edge to the video
        (role "frame", parent_frame and parent_start_sec say which). Returns the image's asset id."""
        async with self._sessions() as session:
            video = await _video(session, video_id)
        _check_time(video, time_sec)
        frame = frame_index(time_sec, video.fps)
        title = (
            f"{_asset_name(video)}, frame {frame}"
            if frame is not None
            else f"{_asset_name(video)} at {time_sec:.2f} s"
        )
        async with self._transfers.using_local(video_id) as source:
            with tempfile.TemporaryDirectory(prefix="pixsim-frame-") as folder:
                out = Path(folder) / "frame.png"
                await asyncio.to_thread(save_frame_png, source, time_sec, out)
                return await self._importer.store_derived(
                    out,
                    title=title,
                    parents=[
                        DerivedParent(
                            video_id,
                            ParentRole.FRAME.value,
                            OperationType.FRAME_EXTRACT.value,
                            start_sec=float(time_sec),
                            frame=frame,
                        )
                    ],
                )

    async def _cut_to_asset(
        self,
        video: Asset,
        start_sec: float,
        end_sec: float,
        title: str,
        *,
        description: str | None = None,
        progress: ClipProgress | None = None,
        cancel: asyncio.Event | None = None,
        transformation: dict[str, Any] | None = None,
    ) -> int:
        video_id = video.id
        async with self._transfers.using_local(video_id) as source:
            with tempfile.TemporaryDirectory(prefix="pixsim-clip-") as folder:
                out = Path(folder) / "clip.mp4"
                await asyncio.to_thread(
                    cut_video,
                    source,
                    start_sec,
                    end_sec,
                    out,
                    progress=progress,
                    cancelled=cancel.is_set if cancel is not None else None,
                )
                return await self._importer.store_derived(
                    out,
                    title=title,
                    description=description,
                    parents=[
                        DerivedParent(
                            video_id,
                            ParentRole.SOURCE.value,
                            OperationType.CLIP_EXPORT.value,
                            start_sec=start_sec,
                            end_sec=end_sec,
                            frame=frame_index(start_sec, video.fps),
                            transformation=transformation or {},
                        )
                    ],
                )

    # -- validation and the story graph --------------------------------------------------------------

    async def validate(self, video_id: int) -> list[Problem]:
        """Everything wrong with the video's story, errors first: what an export or a game would trip on."""
        graph = await self.playthrough(video_id)
        return validate_story(graph, video_id)

    async def playthrough(self, root_video_id: int) -> StoryGraph:
        """The root video and every video reachable from it through variants, with branches and clips.
        Loaded breadth first: one query for the branches (with variants) of each level."""
        graph = StoryGraph(root_id=root_video_id)
        async with self._sessions() as session:
            root = await _video(session, root_video_id)
            videos: dict[int, Asset] = {root.id: root}
            level = [root.id]
            while level:
                branches = await load_branches(session, level)
                clips = await _clips(session, level)
                for video_id in level:
                    asset = videos[video_id]
                    graph.videos[video_id] = VideoStory(
                        _info(asset), tuple(branches.get(video_id, ())), tuple(clips.get(video_id, ()))
                    )
                    graph.assets[video_id] = _story_asset(asset)
                wanted = {
                    v.asset_id
                    for bs in branches.values()
                    for b in bs
                    for v in b.variants
                    if v.asset_id is not None and v.asset_id not in videos
                }
                found = (
                    list(await session.scalars(select(Asset).where(Asset.id.in_(wanted)))) if wanted else []
                )
                for asset in found:
                    videos[asset.id] = asset
                # Non-video assets are kept out of the walk (validation reports them).
                level = sorted(a.id for a in found if a.media_type is MediaType.VIDEO)
                for asset in found:
                    if asset.media_type is not MediaType.VIDEO:
                        graph.assets[asset.id] = _story_asset(asset)
        return graph

    # -- export and import --------------------------------------------------------------------------

    async def export_runtime(
        self,
        root_video_id: int,
        dest_dir: Path,
        *,
        progress: ExportProgressCallback | None = None,
        cancel: asyncio.Event | None = None,
    ) -> Path:
        """The story from ``root_video_id`` as ``dest_dir/story.json`` with its videos beside it."""
        graph = await self.playthrough(root_video_id)
        return await export_runtime(graph, dest_dir, self._transfers.ensure_local, progress, cancel)

    async def import_runtime(self, path: Path, *, cancel: asyncio.Event | None = None) -> RuntimeImport:
        """An exported story (its folder or story.json) into this library; see core.story.export."""
        return await import_runtime(path, self._sessions, self._importer, cancel)

    async def export_twee(self, root_video_id: int) -> str:
        """The story from ``root_video_id`` as Twee 3 source (Twine)."""
        return export_twee(await self.playthrough(root_video_id))

    # -- loading helpers -----------------------------------------------------------------------------

    async def _variant(self, variant_id: int) -> Variant:
        async with self._sessions() as session:
            return await _load_variant(session, variant_id)

    async def _clip(self, clip_id: int) -> Clip:
        async with self._sessions() as session:
            return _to_clip(await _clip_row(session, clip_id))


# -- queries -----------------------------------------------------------------------------------------


async def load_branches(session: AsyncSession, video_ids: Sequence[int]) -> dict[int, list[Branch]]:
    """The branches of ``video_ids`` with their variants, variant video names and job states, in ONE
    statement (the seed's Example 3, with outer joins so branches without variants and pending
    variants are there too). Branches by time, variants by display order."""
    stmt = (
        select(AssetBranch, AssetBranchVariant, Asset.title, Asset.description, Job.status)
        .outerjoin(AssetBranchVariant, AssetBranchVariant.branch_id == AssetBranch.id)
        .outerjoin(Asset, AssetBranchVariant.variant_asset_id == Asset.id)
        .outerjoin(Job, AssetBranchVariant.job_id == Job.id)
        .where(AssetBranch.source_asset_id.in_(video_ids))
        .order_by(
            AssetBranch.source_asset_id,
            AssetBranch.branch_time_sec,
            AssetBranch.id,
            AssetBranchVariant.display_order,
            AssetBranchVariant.id,
        )
    )
    rows = (await session.execute(stmt)).all()
    order: list[AssetBranch] = []
    variants: dict[int, list[Variant]] = {}
    for branch, variant, title, description, status in rows:
        if branch.id not in variants:
            order.append(branch)
            variants[branch.id] = []
        if variant is not None:
            name = None
            if variant.variant_asset_id is not None:
                name = _display_name(variant.variant_asset_id, title, description)
            variants[branch.id].append(_to_variant(variant, status, name))
    out: dict[int, list[Branch]] = {}
    for branch in order:
        out.setdefault(branch.source_asset_id, []).append(_to_branch(branch, tuple(variants[branch.id])))
    return out


async def _clips(session: AsyncSession, video_ids: Sequence[int]) -> dict[int, list[Clip]]:
    rows = await session.scalars(
        select(AssetClip)
        .where(AssetClip.asset_id.in_(video_ids))
        .order_by(AssetClip.asset_id, AssetClip.start_sec, AssetClip.id)
    )
    out: dict[int, list[Clip]] = {}
    for row in rows:
        out.setdefault(row.asset_id, []).append(_to_clip(row))
    return out


async def _video(session: AsyncSession, asset_id: int, *, lock: bool = False, role: str = "video") -> Asset:
    stmt = select(Asset).where(Asset.id == asset_id)
    if lock:
        # Serialises tag picking for one video's branches and clips (two editors adding at once).
        stmt = stmt.with_for_update()
    asset = await session.scalar(stmt)
    if asset is None:
        raise MissingAsset(f"Asset {asset_id} is not in the library (deleted?); pick another {role}.")
    if asset.media_type is not MediaType.VIDEO:
        raise MissingAsset(
            f"Asset {asset_id} ('{_asset_name(asset)}') is {asset.media_type.value}, not a video; "
            f"a {role} must be a video."
        )
    return asset


async def _branch_row(session: AsyncSession, branch_id: int, *, lock: bool = False) -> AssetBranch:
    stmt = select(AssetBranch).where(AssetBranch.id == branch_id)
    if lock:
        stmt = stmt.with_for_update()
    row = await session.scalar(stmt)
    if row is None:
        raise NotFound(f"Branch point {branch_id} no longer exists (deleted elsewhere?). Reload the story.")
    return row


async def _branch(session: AsyncSession, branch_id: int) -> Branch:
    row = await _branch_row(session, branch_id)
    for branch in (await load_branches(session, [row.source_asset_id])).get(row.source_asset_id, []):
        if branch.id == branch_id:
            return branch
    raise NotFound(f"Branch point {branch_id} no longer exists (deleted elsewhere?). Reload the story.")


async def _variant_row(session: AsyncSession, variant_id: int, *, lock: bool = False) -> AssetBranchVariant:
    stmt = select(AssetBranchVariant).where(AssetBranchVariant.id == variant_id)
    if lock:
        stmt = stmt.with_for_update()
    row = await session.scalar(stmt)
    if row is None:
        raise NotFound(f"Variant {variant_id} no longer exists (deleted elsewhere?). Reload the story.")
    return row


async def _load_variant(session: AsyncSession, variant_id: int) -> Variant:
    row = (
        await session.execute(
            select(AssetBranchVariant, Asset.title, Asset.description, Job.status)
            .outerjoin(Asset, AssetBranchVariant.variant_asset_id == Asset.id)
            .outerjoin(Job, AssetBranchVariant.job_id == Job.id)
            .where(AssetBranchVariant.id == variant_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"Variant {variant_id} no longer exists (deleted elsewhere?). Reload the story.")
    variant, title, description, status = row
    name = _display_name(variant.variant_asset_id, title, description) if variant.variant_asset_id else None
    return _to_variant(variant, status, name)


async def _clip_row(session: AsyncSession, clip_id: int, *, lock: bool = False) -> AssetClip:
    stmt = select(AssetClip).where(AssetClip.id == clip_id)
    if lock:
        stmt = stmt.with_for_update()
    row = await session.scalar(stmt)
    if row is None:
        raise NotFound(f"Clip {clip_id} no longer exists (deleted elsewhere?). Reload the story.")
    return row


async def _clear_default(session: AsyncSession, branch_id: int) -> None:
    await session.execute(
        update(AssetBranchVariant)
        .where(AssetBranchVariant.branch_id == branch_id, AssetBranchVariant.is_default)
        .values(is_default=False)
    )
    # The partial unique index checks each statement: the flag must be gone before another is set.
    await session.flush()


async def _insert_variant(session: AsyncSession, branch_id: int, variant: Variant) -> int:
    asset_id = variant.asset_id
    if asset_id is None and variant.job_id is not None:
        # The job may have finished while the variant was deleted: take its result now.
        asset_id = await session.scalar(
            select(JobResultAsset.asset_id)
            .where(JobResultAsset.job_id == variant.job_id)
            .order_by(JobResultAsset.output_index)
            .limit(1)
        )
        job_exists = await session.scalar(
            select(func.count()).select_from(Job).where(Job.id == variant.job_id)
        )
        if asset_id is None and not job_exists:
            raise MissingAsset(
                f"Cannot restore variant '{variant.name}': the job generating it no longer exists."
            )
    row = AssetBranchVariant(
        branch_id=branch_id,
        variant_asset_id=asset_id,
        job_id=variant.job_id,
        variant_name=variant.name,
        variant_tag=variant.tag,
        weight=variant.weight,
        conditions=dict(variant.conditions),
        display_order=variant.display_order,
        is_default=variant.is_default,
    )
    session.add(row)
    await session.flush()
    return row.id


async def _check_no_cycle(session: AsyncSession, source_id: int, asset_id: int) -> None:
    """``VariantCycle`` if ``asset_id`` is the branch's own video or its story leads back to it."""
    if asset_id == source_id:
        raise VariantCycle(
            "A variant cannot be the branch's own video: playing it would loop forever. Pick another video."
        )
    seen = {asset_id}
    level = [asset_id]
    while level:
        rows = await session.execute(
            select(AssetBranch.source_asset_id, AssetBranchVariant.variant_asset_id)
            .join(AssetBranchVariant, AssetBranchVariant.branch_id == AssetBranch.id)
            .where(AssetBranch.source_asset_id.in_(level), AssetBranchVariant.variant_asset_id.is_not(None))
        )
        following: set[int] = set()
        for _source, target in rows:
            if target is None:
                continue
            if target == source_id:
                raise VariantCycle(
                    f"Asset {asset_id}'s own branches lead back to video {source_id}: the story would loop "
                    "forever. Pick a video that does not lead back here."
                )
            if target not in seen:
                seen.add(target)
                following.add(target)
        level = sorted(following)


# -- checks and conversions --------------------------------------------------------------------------


def _frame_length(video: Asset) -> float:
    return 1.0 / video.fps if video.fps else 0.05


def _check_time(video: Asset, time_sec: float) -> None:
    if not isinstance(time_sec, int | float) or time_sec != time_sec:
        raise BranchTimeOutOfRange(f"A branch time must be a number of seconds, got {time_sec!r}.")
    if time_sec < 0:
        raise BranchTimeOutOfRange(f"A branch time cannot be negative ({time_sec:.2f} s).")
    duration = video.duration_sec
    if duration is not None and time_sec > duration + _DURATION_SLACK:
        raise BranchTimeOutOfRange(
            f"{time_sec:.2f} s is beyond the end of '{_asset_name(video)}' ({duration:.2f} s long). "
            "Pick a time within the video."
        )


def _check_range(video: Asset, start_sec: float, end_sec: float) -> None:
    if start_sec < 0:
        raise InvalidClipRange(f"A clip cannot start before the video does ({start_sec:.2f} s).")
    if end_sec <= start_sec:
        raise InvalidClipRange(
            f"A clip must end after it starts (start {start_sec:.2f} s, end {end_sec:.2f} s)."
        )
    duration = video.duration_sec
    if duration is not None and end_sec > duration + _DURATION_SLACK:
        raise InvalidClipRange(
            f"The clip ends at {end_sec:.2f} s, after the end of '{_asset_name(video)}' ({duration:.2f} s)."
        )


def _check_weight(weight: float) -> None:
    if not isinstance(weight, int | float) or weight != weight or weight < 0 or weight == float("inf"):
        raise StoryError(f"A variant's weight must be a number of 0 or more, got {weight!r}.")


def _conditions(conditions: Mapping[str, Any] | None) -> dict[str, Any]:
    value = dict(conditions or {})
    check_condition(value)
    return value


def _json_object(value: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise StoryError(f"The {what} must be a JSON object (key: value pairs).")
    return dict(value)


def _name(name: str, what: str) -> str:
    cleaned = " ".join(str(name).split())
    if not cleaned:
        raise StoryError(f"A {what} needs a name.")
    if len(cleaned) > _NAME_MAX:
        raise StoryError(f"A {what}'s name can be at most {_NAME_MAX} characters.")
    return cleaned


def slugify(text: str) -> str:
    """A tag made from a name: lower case letters, digits and underscores ("Fork in the road" → fork_in_the_road)."""
    slug = re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_")
    return slug[:_TAG_MAX] or "untitled"


def _pick_tag(tag: str | None, name: str, taken: set[str], scope: str, what: str) -> str:
    """An explicit tag is used as given (``DuplicateTag`` if taken); none: one made from the name,
    with _2, _3 … appended until it is free."""
    if tag is not None:
        tag = tag.strip()
        if not tag:
            raise StoryError(f"A {what} tag cannot be empty; leave it out to make one from the name.")
        if len(tag) > _TAG_MAX:
            raise StoryError(f"A {what} tag can be at most {_TAG_MAX} characters.")
        if tag in taken:
            raise DuplicateTag(f"The tag '{tag}' is already used by another {what} of {scope}; pick another.")
        return tag
    base = slugify(name)
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        suffix = f"_{n}"
        candidate = base[: _TAG_MAX - len(suffix)] + suffix
    return candidate


def _labels(tags: Iterable[str]) -> list[str]:
    out: list[str] = []
    for tag in tags:
        cleaned = str(tag).strip()
        if cleaned and cleaned not in out:
            out.append(cleaned)
    return out


def _video_param(op: Operation, provider_id: str) -> Param:
    for param in op.input_params:
        if param.kind is ParamKind.ASSET and MediaType.VIDEO in param.media_types:
            return param
    raise StoryError(
        f"{provider_id}'s '{op.id}' takes no video, so it cannot continue a story from a branch point."
    )


def _asset_name(asset: Asset) -> str:
    return _display_name(asset.id, asset.title, asset.description)


def _display_name(asset_id: int, title: str | None, description: str | None) -> str:
    return title or (description or "").strip()[:80] or f"Asset {asset_id}"


def _frames(asset: Asset) -> int | None:
    if asset.duration_sec is None or not asset.fps:
        return None
    return max(1, round(asset.duration_sec * asset.fps))


def _info(asset: Asset) -> VideoInfo:
    return VideoInfo(
        asset_id=asset.id,
        name=_asset_name(asset),
        duration_sec=asset.duration_sec or 0.0,
        fps=asset.fps,
        frame_count=_frames(asset),
        width=asset.width,
        height=asset.height,
    )


def _story_asset(asset: Asset) -> StoryAsset:
    return StoryAsset(
        info=_info(asset),
        sha256=asset.sha256,
        size_bytes=asset.file_size_bytes,
        mime_type=asset.mime_type,
        media_type=asset.media_type.value,
    )


def _to_variant(row: AssetBranchVariant, status: JobStatus | None, asset_name: str | None) -> Variant:
    return Variant(
        id=row.id,
        branch_id=row.branch_id,
        asset_id=row.variant_asset_id,
        job_id=row.job_id,
        job_status=status,
        name=row.variant_name,
        tag=row.variant_tag,
        weight=row.weight,
        conditions=dict(row.conditions),
        display_order=row.display_order,
        is_default=row.is_default,
        asset_name=asset_name,
    )


def _to_branch(row: AssetBranch, variants: tuple[Variant, ...]) -> Branch:
    return Branch(
        id=row.id,
        video_id=row.source_asset_id,
        time_sec=row.branch_time_sec,
        frame=row.branch_frame,
        name=row.branch_name,
        tag=row.branch_tag,
        branch_type=row.branch_type,
        description=row.description,
        game_metadata=dict(row.game_metadata),
        variants=variants,
    )


def _to_clip(row: AssetClip) -> Clip:
    return Clip(
        id=row.id,
        video_id=row.asset_id,
        name=row.clip_name,
        tag=row.clip_tag,
        start_sec=row.start_sec,
        end_sec=row.end_sec,
        start_frame=row.start_frame,
        end_frame=row.end_frame,
        description=row.description,
        tags=tuple(row.tags),
    )
