"""The demo library: a small, coherent world ("The Lighthouse Keeper") made offline with the Sandbox
provider, so a newcomer sees a populated app at once — stills, clips, lineage of every kind, a story
video with a branch point and named clips.

Everything is made through the public job API (``JobService.create``, driven by a ``JobRunner``), so
the demo's lineage is exactly what real generations record. The branch, its variants and the clips are
written at the end in one transaction: a cancelled or interrupted build leaves finished assets but never
a half-made branch, and running again resumes (finished demo jobs are found by their operation, prompt
and seed and reused) instead of making duplicates. The branch's tag marks a complete demo: once it
exists, a build only reports what is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.enums import ACTIVE_JOB_STATUSES, BranchType, JobStatus, MediaType, OperationType
from core.db.models import Asset, AssetBranch, AssetBranchVariant, AssetClip, Job, JobResultAsset
from core.errors import JobError
from core.jobs.runner import JobRunner
from core.jobs.service import JobEvent, JobService

log = logging.getLogger(__name__)

PROVIDER = "sandbox"
# Every demo asset carries both tags; the second names the demo's world.
DEMO_TAG = "demo"
WORLD_TAG = "lighthouse-keeper"
# The branch point's tag: its existence means the demo library is complete.
BRANCH_TAG = "demo-fork-in-the-path"
BRANCH_NAME = "Fork in the path"
BRANCH_TIME_SEC = 2.5
STORY_DURATION = 4
_LOCK_KEY = "pixsim-demo-library"
# How often job states are read when no event says anything (jobs run by another process).
_POLL_S = 0.25


class DemoOutcome(enum.StrEnum):
    CREATED = "created"
    ALREADY_PRESENT = "already_present"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class DemoProgress:
    """``done`` of ``total`` steps (one per asset, one for the branch and clips); ``label`` names the step
    just finished (an asset's title) or, at the start and the end, what is happening."""

    done: int
    total: int
    label: str


@dataclass(frozen=True)
class DemoReport:
    outcome: DemoOutcome
    # Every demo asset in the library (made now, earlier, or reused from a cancelled build).
    asset_ids: tuple[int, ...] = ()
    # The assets this build made (empty when the demo was already there).
    new_asset_ids: tuple[int, ...] = ()
    images: int = 0
    videos: int = 0
    story_asset_id: int | None = None
    branch_id: int | None = None
    variant_asset_ids: tuple[int, ...] = ()
    clip_ids: tuple[int, ...] = ()
    seconds: float = 0.0


# -- the world -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    """One demo asset and the job that makes it. ``inputs`` name other items by key."""

    key: str
    operation: str
    title: str
    prompt: str
    description: str
    category: str
    tags: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, str] = field(default_factory=dict)
    keyframes: tuple[tuple[str, int, str], ...] = ()
    essential: bool = False
    style_tags: tuple[str, ...] = ("teal-and-amber", "moody")

    @property
    def depends_on(self) -> tuple[str, ...]:
        return (*self.inputs.values(), *(key for key, _, _ in self.keyframes))


def _still(
    key: str,
    title: str,
    prompt: str,
    aspect: str,
    category: str,
    description: str,
    *tags: str,
    essential: bool = False,
) -> _Item:
    return _Item(
        key,
        OperationType.TEXT_TO_IMAGE.value,
        title,
        prompt,
        description,
        category,
        ("still", *tags),
        {"aspect_ratio": aspect, "quality": "360p"},
        essential=essential,
    )


def _clip(
    key: str, title: str, prompt: str, aspect: str, duration: int, description: str, *tags: str
) -> _Item:
    return _Item(
        key,
        OperationType.TEXT_TO_VIDEO.value,
        title,
        prompt,
        description,
        "ambience",
        ("clip", *tags),
        {"aspect_ratio": aspect, "quality": "360p", "duration": duration},
    )


@dataclass(frozen=True)
class _Variant:
    key: str
    name: str
    tag: str
    weight: float
    conditions: Mapping[str, Any]


@dataclass(frozen=True)
class _ClipMark:
    name: str
    tag: str
    start_sec: float
    end_sec: float
    description: str
    tags: tuple[str, ...]


VARIANTS: tuple[_Variant, ...] = (
    _Variant("path-lamp", "Keep the light burning", "path_lamp", 2.0, {}),
    _Variant("path-boat", "Row out to the wreck", "path_boat", 1.0, {}),
    _Variant(
        "path-stranger",
        "Follow the stranger's lantern",
        "path_stranger",
        1.0,
        {"all": [{"var": "read_logbook", "eq": True}]},
    ),
)

CLIPS: tuple[_ClipMark, ...] = (
    _ClipMark(
        "The climb",
        "climb",
        0.0,
        BRANCH_TIME_SEC,
        "The keeper climbs the spiral stair, up to the fork.",
        ("intro",),
    ),
    _ClipMark(
        "The storm breaks",
        "storm_breaks",
        3.0,
        float(STORY_DURATION),
        "Lightning over the cape: the last second of the story video.",
        ("storm",),
    ),
)

_STILLS: tuple[_Item, ...] = (
    _still(
        "dusk",
        "The lighthouse at dusk",
        "A lone white lighthouse on a black basalt cape at dusk, the amber lamp just lit, teal sea",
        "16:9",
        "location",
        "Establishing shot of the cape: where the whole story happens.",
        "location",
        "lighthouse",
        essential=True,
    ),
    _still(
        "keeper",
        "The keeper",
        "Portrait of an old lighthouse keeper in a yellow oilskin, weathered face, warm lamplight",
        "9:16",
        "character",
        "The keeper, thirty winters on the cape. Main character.",
        "character",
        "keeper",
        essential=True,
    ),
    _still(
        "night",
        "Beacon in the night",
        "The lighthouse beam cutting through night fog, stars above, deep blue and amber",
        "16:9",
        "location",
        "The same cape at night: the beam is the story's clock.",
        "location",
        "night",
        essential=True,
    ),
    _still(
        "storm",
        "Storm over the cape",
        "A storm rolling in over the cape, towering waves against the rocks, lightning on the horizon",
        "16:9",
        "moodboard",
        "Mood reference for the second act.",
        "moodboard",
        "storm",
    ),
    _still(
        "stranger",
        "The stranger's lantern",
        "A hooded stranger on the shore holding a green lantern, seen from the gallery through fog",
        "9:16",
        "character",
        "Who is on the shore? Only players who read the logbook may follow.",
        "character",
        "stranger",
    ),
    _still(
        "lamp-room",
        "The lamp room",
        "Inside the lamp room: a brass Fresnel lens, an oil can and a logbook on a wooden desk",
        "1:1",
        "interior",
        "The top of the tower, where the branch point happens.",
        "interior",
        "lamp",
    ),
    _still(
        "logbook",
        "The keeper's logbook",
        "Close-up of a handwritten logbook: wind north-west, glass falling, a light seen offshore",
        "1:1",
        "prop",
        "The clue that unlocks the stranger's path.",
        "prop",
        "logbook",
    ),
    _still(
        "palette",
        "Moodboard: colour study",
        "Colour study for the film: teal sea, amber lamp, slate rock, bone-white tower, flat swatches",
        "1:1",
        "moodboard",
        "The palette every shot follows.",
        "moodboard",
        "palette",
    ),
    _still(
        "boat",
        "The supply boat",
        "A small red supply boat tied to the jetty below the lighthouse, morning mist",
        "16:9",
        "prop",
        "Once a month it brings oil, bread and letters.",
        "prop",
        "boat",
    ),
    _still(
        "gull",
        "Gull on the railing",
        "A herring gull on the gallery railing, wind in its feathers, the sea far below",
        "9:16",
        "creature",
        "The keeper's only daily visitor.",
        "creature",
        "gull",
    ),
)

_CLIPS: tuple[_Item, ...] = (
    _clip(
        "waves",
        "Waves on the rocks",
        "Waves breaking on black rocks below the tower",
        "16:9",
        2,
        "Looping ambience for the cape.",
        "sea",
    ),
    _clip(
        "beam",
        "The beam sweeps the fog",
        "The lighthouse beam sweeping slowly through thick fog",
        "16:9",
        2,
        "Night ambience.",
        "night",
    ),
    _clip(
        "gulls",
        "Gulls circling the tower",
        "Gulls circling the lighthouse gallery in a strong wind",
        "9:16",
        1,
        "Vertical cut for social posts.",
        "gull",
    ),
    _clip(
        "lamp-lit",
        "Lighting the lamp",
        "A match flares and the great lamp catches, golden light",
        "1:1",
        1,
        "Insert shot for the lamp room.",
        "lamp",
    ),
    _clip(
        "rain",
        "Rain on the lantern glass",
        "Rain streaming down the lantern glass, lights blurred",
        "16:9",
        1,
        "Texture for the storm.",
        "storm",
    ),
    _clip(
        "boat-arrives",
        "The supply boat arrives",
        "The red supply boat rounding the point in grey swell",
        "16:9",
        2,
        "Opening of the morning after.",
        "boat",
    ),
    _clip(
        "tide",
        "Tide pools at low water",
        "Tide pools at low water, crabs and kelp, soft light",
        "1:1",
        1,
        "Calm interlude.",
        "sea",
    ),
)

_MADE_FROM: tuple[_Item, ...] = (
    _Item(
        "keeper-alive",
        OperationType.IMAGE_TO_VIDEO.value,
        "The keeper looks up",
        "The keeper looks up from the logbook as the wind rises",
        "The keeper's portrait brought to life (image to video).",
        "character",
        ("clip", "keeper", "animated"),
        {"duration": 2, "quality": "360p"},
        {"image_asset_id": "keeper"},
        essential=True,
    ),
    _Item(
        "watch-1",
        OperationType.TEXT_TO_VIDEO.value,
        "Night watch, part 1",
        "The keeper trims the wick as darkness falls over the cape",
        "The first link of an extend chain: part 1 → part 2 → part 3.",
        "sequence",
        ("clip", "night-watch"),
        {"duration": 2, "aspect_ratio": "16:9", "quality": "360p"},
        essential=True,
    ),
    _Item(
        "watch-2",
        OperationType.VIDEO_EXTEND.value,
        "Night watch, part 2",
        "Midnight: the beam turns, a ship's light far out",
        "Part 1 extended from its last frame.",
        "sequence",
        ("clip", "night-watch", "extended"),
        {"duration": 1},
        {"video_asset_id": "watch-1"},
        essential=True,
    ),
    _Item(
        "watch-3",
        OperationType.VIDEO_EXTEND.value,
        "Night watch, part 3",
        "Dawn: the lamp is put out, grey light on the sea",
        "Part 2 extended from its last frame: the end of the chain.",
        "sequence",
        ("clip", "night-watch", "extended"),
        {"duration": 1},
        {"video_asset_id": "watch-2"},
        essential=True,
    ),
    _Item(
        "dusk-to-night",
        OperationType.TRANSITION.value,
        "From dusk to night",
        "Day fades and the beam takes over",
        "A transition from the dusk still (first frame) to the night still (last frame).",
        "transition",
        ("clip", "transition"),
        {"duration": 2, "quality": "360p"},
        {"first_frame_asset_id": "dusk", "last_frame_asset_id": "night"},
        essential=True,
    ),
    _Item(
        "storyboard",
        OperationType.TEXT_TO_VIDEO.value,
        "Storyboard: the long night",
        "Storyboard of the long night: the cape, the keeper, the beam",
        "A storyboard made from three stills, each anchored at its frame with a camera move.",
        "storyboard",
        ("clip", "storyboard"),
        {"duration": 3, "aspect_ratio": "16:9", "quality": "360p"},
        keyframes=(("dusk", 12, "zoom_in"), ("keeper", 36, "pan_left"), ("night", 60, "zoom_out")),
        essential=True,
    ),
    _Item(
        "story",
        OperationType.TEXT_TO_VIDEO.value,
        "The long night",
        "The keeper climbs the spiral stair as the storm breaks; at the top, a choice",
        f"The story video. At {BRANCH_TIME_SEC:g} s, '{BRANCH_NAME}' offers three continuations.",
        "story",
        ("story", "branching"),
        {"duration": STORY_DURATION, "aspect_ratio": "16:9", "quality": "360p"},
        essential=True,
    ),
    *(
        _Item(
            variant.key,
            OperationType.VIDEO_EXTEND.value,
            variant.name,
            prompt,
            f"A variant at '{BRANCH_NAME}': the story continued from {BRANCH_TIME_SEC:g} s.",
            "branch_variant",
            ("story", "variant", variant.tag.removeprefix("path_")),
            {"duration": 2, "start_sec": BRANCH_TIME_SEC},
            {"video_asset_id": "story"},
            essential=True,
        )
        for variant, prompt in zip(
            VARIANTS,
            (
                "The keeper stays and keeps the light burning through the storm",
                "The keeper rows out into the storm towards the wreck",
                "The keeper follows the green lantern down to the shore",
            ),
            strict=True,
        )
    ),
    _Item(
        "dusk-alive",
        OperationType.IMAGE_TO_VIDEO.value,
        "Dusk, alive",
        "Clouds drift over the lighthouse as the light fades",
        "The dusk still brought to life.",
        "location",
        ("clip", "lighthouse", "animated"),
        {"duration": 1, "quality": "360p"},
        {"image_asset_id": "dusk"},
    ),
    _Item(
        "storm-alive",
        OperationType.IMAGE_TO_VIDEO.value,
        "The storm gathers",
        "The storm gathers over the cape",
        "The storm still brought to life.",
        "moodboard",
        ("clip", "storm", "animated"),
        {"duration": 1, "quality": "360p"},
        {"image_asset_id": "storm"},
    ),
)

# Optional items in the order they are kept when ``scale`` < 1.
_OPTIONAL_ORDER = (
    "storm",
    "waves",
    "stranger",
    "beam",
    "lamp-room",
    "dusk-alive",
    "logbook",
    "gulls",
    "palette",
    "lamp-lit",
    "storm-alive",
    "boat",
    "rain",
    "gull",
    "boat-arrives",
    "tide",
)

ITEMS: tuple[_Item, ...] = (*_STILLS, *_CLIPS, *_MADE_FROM)
_BY_KEY = {item.key: item for item in ITEMS}
_SEED_BASE = 4100
# A still costs about as much to render as this many seconds of video.
_STILL_COST = 0.3


def _seed(item: _Item) -> int:
    return _SEED_BASE + ITEMS.index(item)


def select_items(scale: float = 1.0) -> tuple[_Item, ...]:
    """The items a build of this scale makes: the essentials, plus ``scale`` of the others (with what
    they need), in dependency order."""
    scale = min(1.0, max(0.0, scale))
    optional = [*_OPTIONAL_ORDER, *(i.key for i in ITEMS if not i.essential and i.key not in _OPTIONAL_ORDER)]
    wanted = {item.key for item in ITEMS if item.essential}
    wanted.update(optional[: round(len(optional) * scale)])
    pending = list(wanted)
    while pending:
        for dep in _BY_KEY[pending.pop()].depends_on:
            if dep not in wanted:
                wanted.add(dep)
                pending.append(dep)
    return tuple(item for item in ITEMS if item.key in wanted)


def _priorities(items: Sequence[_Item]) -> dict[str, int]:
    """Job priority per item: the seconds of video on the longest chain from it to the end, in tenths.

    The story video (long, and three variants wait for it) is rendered first, stills that others need
    next: the build is as short as its critical path allows.
    """
    by_key = {item.key: item for item in items}
    dependants: dict[str, list[str]] = {item.key: [] for item in items}
    for item in items:
        for dep in item.depends_on:
            dependants[dep].append(item.key)
    chains: dict[str, float] = {}

    def chain(key: str) -> float:
        if key not in chains:
            own = float(by_key[key].params.get("duration", _STILL_COST))
            chains[key] = own + max((chain(d) for d in dependants[key]), default=0.0)
        return chains[key]

    return {item.key: round(10 * chain(item.key)) for item in items}


# -- the build -------------------------------------------------------------------------------------


@dataclass
class _Made:
    asset_id: int
    job_id: int
    new: bool


async def build_demo_library(
    jobs: JobService,
    sessions: async_sessionmaker[AsyncSession],
    runner: JobRunner | None,
    *,
    progress: Callable[[DemoProgress], None] | None = None,
    cancel: asyncio.Event | None = None,
    scale: float = 1.0,
) -> DemoReport:
    """Make the demo library (or report it when it is already there).

    ``runner`` is run until the demo's jobs finish; pass ``None`` when a runner already works jobs in
    this process or another (the app's), and it is waited for. ``cancel`` is honoured between steps:
    the demo's unfinished jobs are cancelled and no branch is written. ``scale`` (0 to 1) keeps that
    share of the optional items; every kind of lineage, the branch and the clips are always made.
    """
    build = _Build(jobs, sessions, select_items(scale), progress, cancel or asyncio.Event())
    return await build.run(runner)


class _Build:
    def __init__(
        self,
        jobs: JobService,
        sessions: async_sessionmaker[AsyncSession],
        items: tuple[_Item, ...],
        progress: Callable[[DemoProgress], None] | None,
        cancel: asyncio.Event,
    ) -> None:
        self.jobs = jobs
        self.sessions = sessions
        self.items = items
        self.progress = progress
        self.cancel = cancel
        self.total = len(items) + 1
        self.made: dict[str, _Made] = {}
        self.pending: dict[int, _Item] = {}  # job id -> item
        self.wake = asyncio.Event()
        # A demo job was cancelled by someone else (the jobs panel): stop as if cancelled.
        self.halted = False
        self.story_written = False
        self.started = time.monotonic()
        self.priority = _priorities(items)

    def _report_progress(self, label: str) -> None:
        if self.progress is not None:
            try:
                done = len(self.made) + (1 if self.story_written else 0)
                self.progress(DemoProgress(done, self.total, label))
            except Exception:
                log.exception("demo progress listener failed")

    async def run(self, runner: JobRunner | None) -> DemoReport:
        present = await _present_report(self.sessions)
        if present is not None:
            if self.progress is not None:
                self.progress(DemoProgress(self.total, self.total, "The demo library is already there"))
            return present
        stop = asyncio.Event()
        runner_task = asyncio.ensure_future(runner.run(stop)) if runner is not None else None
        unsubscribe = self.jobs.events.subscribe(self._on_event)
        try:
            await self._adopt_earlier_jobs()
            reused = len(self.made)
            self._report_progress(f"Reusing {reused} assets made earlier" if reused else "Starting")
            finished = await self._make_assets(runner_task)
            if not finished or self.cancel.is_set() or self.halted:
                return await self._cancelled()
            self._report_progress(f"Branch point '{BRANCH_NAME}' and clips")
            return await self._write_story()
        finally:
            unsubscribe()
            stop.set()
            if runner_task is not None:
                await asyncio.gather(runner_task, return_exceptions=True)

    def _on_event(self, event: JobEvent) -> None:
        if event.job_id in self.pending and event.status.is_terminal:
            self.wake.set()

    # -- assets ------------------------------------------------------------------------------------

    async def _adopt_earlier_jobs(self) -> None:
        """Reuse what an earlier, unfinished build made or left queued: no duplicates on resume."""
        wanted = {(i.operation, i.prompt, _seed(i)): i for i in self.items}
        statuses = [JobStatus.SUCCEEDED, *ACTIVE_JOB_STATUSES]
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(Job.id, Job.operation_type, Job.params, Job.status)
                    .where(
                        Job.provider_id == PROVIDER,
                        Job.status.in_(statuses),
                        Job.params["prompt"].astext.in_([i.prompt for i in self.items]),
                    )
                    .order_by(Job.id)
                )
            ).all()
            results = dict(
                (
                    await session.execute(
                        select(JobResultAsset.job_id, JobResultAsset.asset_id)
                        .join(Asset, Asset.id == JobResultAsset.asset_id)
                        .where(JobResultAsset.job_id.in_([r.id for r in rows]))
                    )
                ).all()
            )
        earlier: dict[str, list[tuple[int, JobStatus, dict[str, Any]]]] = {}
        for job_id, operation, params, status in rows:
            item = wanted.get((operation, params.get("prompt"), params.get("seed")))
            if item is not None:
                earlier.setdefault(item.key, []).insert(0, (job_id, status, params))  # newest first
        # In dependency order, and only jobs made from the inputs this build uses: a variant extended
        # from a story video that has since been deleted and made again is not reused.
        for item in self.items:
            if not all(dep in self.made for dep in item.depends_on):
                continue
            inputs = self._input_params(item)
            matching = [
                (job_id, status)
                for job_id, status, params in earlier.get(item.key, [])
                if all(params.get(name) == value for name, value in inputs.items())
            ]
            done = next((j for j, status in matching if status is JobStatus.SUCCEEDED and j in results), None)
            if done is not None:
                self.made[item.key] = _Made(results[done], done, new=False)
                await self._describe(item, results[done])
                continue
            active = next((j for j, status in matching if status is not JobStatus.SUCCEEDED), None)
            if active is not None:
                self.pending[active] = item
        if self.made or self.pending:
            log.info(
                "demo: reusing %d assets and %d jobs of an earlier build", len(self.made), len(self.pending)
            )

    async def _make_assets(self, runner_task: asyncio.Future[None] | None) -> bool:
        """Queue each item once its inputs exist; True when all are made, False when cancelled."""
        cancelled = asyncio.ensure_future(self.cancel.wait())
        try:
            while True:
                if self.cancel.is_set() or self.halted:
                    return False
                await self._queue_ready()
                if not self.pending:
                    return len(self.made) == len(self.items)
                self.wake.clear()
                wake = asyncio.ensure_future(self.wake.wait())
                waiting: set[asyncio.Future[Any]] = {wake, cancelled}
                if runner_task is not None:
                    waiting.add(runner_task)
                await asyncio.wait(waiting, timeout=_POLL_S, return_when=asyncio.FIRST_COMPLETED)
                wake.cancel()
                if runner_task is not None and runner_task.done():
                    runner_task.result()  # what stopped the runner
                    raise JobError("The job runner stopped before the demo library was made.")
                await self._collect()
        finally:
            cancelled.cancel()

    async def _queue_ready(self) -> None:
        busy = {item.key for item in self.pending.values()}
        for item in sorted(self.items, key=lambda i: -self.priority[i.key]):
            if item.key in self.made or item.key in busy:
                continue
            if not all(dep in self.made for dep in item.depends_on):
                continue
            if self.cancel.is_set() or self.halted:
                return
            params = {"prompt": item.prompt, "seed": _seed(item), **item.params, **self._input_params(item)}
            job = await self.jobs.create(PROVIDER, item.operation, params, priority=self.priority[item.key])
            self.pending[job.id] = item

    def _input_params(self, item: _Item) -> dict[str, Any]:
        """The item's input parameters: the asset ids of the items it is made from (all made)."""
        params: dict[str, Any] = {name: self.made[key].asset_id for name, key in item.inputs.items()}
        if item.keyframes:
            params["keyframes"] = [
                {"asset_id": self.made[key].asset_id, "frame": frame, "action": action}
                for key, frame, action in item.keyframes
            ]
        return params

    async def _collect(self) -> None:
        """Take in the demo jobs that finished: describe their assets, or stop on a failure."""
        if not self.pending:
            return
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(Job.id, Job.status, Job.error_message).where(Job.id.in_(list(self.pending)))
                )
            ).all()
        for job_id, status, error in sorted(rows):
            if not status.is_terminal:
                continue
            item = self.pending.pop(job_id)
            if status is JobStatus.SUCCEEDED:
                summary = await self.jobs.get(job_id)
                asset_id = summary.result_asset_ids[0]
                self.made[item.key] = _Made(asset_id, job_id, new=True)
                await self._describe(item, asset_id)
                self._report_progress(item.title)
            elif status is JobStatus.CANCELLED:
                log.info("demo: job %s (%s) was cancelled; the demo stops", job_id, item.title)
                self.halted = True
            else:
                await self._cancel_pending()
                raise JobError(
                    f"The demo library could not be made: job {job_id} ('{item.title}') failed: {error}"
                )

    async def _describe(self, item: _Item, asset_id: int) -> None:
        """Title, description, tags and category, once (an asset already tagged keeps the user's edits)."""
        async with self.sessions() as session, session.begin():
            asset = await session.get(Asset, asset_id, with_for_update=True)
            if asset is None or DEMO_TAG in asset.tags:
                return
            asset.title = item.title
            asset.description = item.description
            asset.content_category = item.category
            ours = [DEMO_TAG, WORLD_TAG, *item.tags]
            asset.tags = list(dict.fromkeys([*asset.tags, *ours]))
            asset.style_tags = list(dict.fromkeys([*asset.style_tags, *item.style_tags]))

    async def _cancel_pending(self) -> None:
        for job_id in list(self.pending):
            with contextlib.suppress(JobError):  # it finished meanwhile: _collect takes it in
                await self.jobs.cancel(job_id)

    async def _cancelled(self) -> DemoReport:
        await self._cancel_pending()
        await self._collect()  # jobs that succeeded just before the cancel still get their titles
        self.pending.clear()
        made = tuple(m.asset_id for m in self.made.values())
        images, videos = await _media_counts(self.sessions, made)
        self._report_progress("Cancelled")
        return DemoReport(
            outcome=DemoOutcome.CANCELLED,
            asset_ids=made,
            new_asset_ids=tuple(m.asset_id for m in self.made.values() if m.new),
            images=images,
            videos=videos,
            seconds=time.monotonic() - self.started,
        )

    # -- branch and clips --------------------------------------------------------------------------

    async def _write_story(self) -> DemoReport:
        story = self.made["story"]
        async with self.sessions() as session, session.begin():
            # Two builds at once (the app and `pixsim demo`): one writes the branch, the other reports it.
            await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": _LOCK_KEY})
            if await session.scalar(select(AssetBranch.id).where(AssetBranch.branch_tag == BRANCH_TAG)):
                done = None
            else:
                done = await self._add_branch_and_clips(session, story.asset_id)
        if done is None:
            present = await _present_report(self.sessions)
            assert present is not None
            return present
        branch_id, clip_ids = done
        self.story_written = True
        self._report_progress("Done")
        asset_ids = tuple(m.asset_id for m in self.made.values())
        images, videos = await _media_counts(self.sessions, asset_ids)
        return DemoReport(
            outcome=DemoOutcome.CREATED,
            asset_ids=asset_ids,
            new_asset_ids=tuple(m.asset_id for m in self.made.values() if m.new),
            story_asset_id=story.asset_id,
            branch_id=branch_id,
            variant_asset_ids=tuple(self.made[v.key].asset_id for v in VARIANTS),
            clip_ids=clip_ids,
            seconds=time.monotonic() - self.started,
            images=images,
            videos=videos,
        )

    async def _add_branch_and_clips(
        self, session: AsyncSession, story_id: int
    ) -> tuple[int, tuple[int, ...]]:
        story = await session.get(Asset, story_id)
        assert story is not None
        fps = story.fps or 24.0
        length = story.duration_sec or float(STORY_DURATION)
        branch = AssetBranch(
            source_asset_id=story_id,
            branch_time_sec=BRANCH_TIME_SEC,
            branch_frame=round(BRANCH_TIME_SEC * fps),
            branch_name=BRANCH_NAME,
            branch_tag=BRANCH_TAG,
            branch_type=BranchType.CONDITIONAL,
            description=(
                "At the top of the stair the keeper chooses. 'Keep the light burning' is twice as likely "
                "as the others; the stranger's path opens only to players who read the logbook."
            ),
        )
        session.add(branch)
        await session.flush()
        for order, variant in enumerate(VARIANTS):
            made = self.made[variant.key]
            session.add(
                AssetBranchVariant(
                    branch_id=branch.id,
                    variant_asset_id=made.asset_id,
                    variant_name=variant.name,
                    variant_tag=variant.tag,
                    weight=variant.weight,
                    conditions=dict(variant.conditions),
                    display_order=order,
                    job_id=made.job_id,
                )
            )
        clips: list[AssetClip] = []
        for mark in CLIPS:
            end = min(mark.end_sec, length)
            clip = AssetClip(
                asset_id=story_id,
                clip_name=mark.name,
                clip_tag=mark.tag,
                start_sec=mark.start_sec,
                end_sec=end,
                start_frame=round(mark.start_sec * fps),
                end_frame=max(round(mark.start_sec * fps), round(end * fps) - 1),
                description=mark.description,
                tags=[DEMO_TAG, *mark.tags],
            )
            session.add(clip)
            clips.append(clip)
        await session.flush()
        return branch.id, tuple(c.id for c in clips)


# -- what is there ---------------------------------------------------------------------------------


async def demo_present(sessions: async_sessionmaker[AsyncSession]) -> bool:
    """True when the demo library is complete in this database (its branch point exists)."""
    async with sessions() as session:
        found = await session.scalar(select(AssetBranch.id).where(AssetBranch.branch_tag == BRANCH_TAG))
    return found is not None


async def _present_report(sessions: async_sessionmaker[AsyncSession]) -> DemoReport | None:
    async with sessions() as session:
        branch = await session.scalar(select(AssetBranch).where(AssetBranch.branch_tag == BRANCH_TAG))
        if branch is None:
            return None
        variants = await session.scalars(
            select(AssetBranchVariant.variant_asset_id)
            .where(AssetBranchVariant.branch_id == branch.id)
            .order_by(AssetBranchVariant.display_order, AssetBranchVariant.id)
        )
        clips = await session.scalars(
            select(AssetClip.id)
            .where(
                AssetClip.asset_id == branch.source_asset_id, AssetClip.clip_tag.in_([c.tag for c in CLIPS])
            )
            .order_by(AssetClip.start_sec, AssetClip.id)
        )
        assets = await session.scalars(
            select(Asset.id).where(Asset.tags.contains([DEMO_TAG, WORLD_TAG])).order_by(Asset.id)
        )
        report = DemoReport(
            outcome=DemoOutcome.ALREADY_PRESENT,
            asset_ids=tuple(assets),
            story_asset_id=branch.source_asset_id,
            branch_id=branch.id,
            variant_asset_ids=tuple(v for v in variants if v is not None),
            clip_ids=tuple(clips),
        )
    images, videos = await _media_counts(sessions, report.asset_ids)
    return dataclasses.replace(report, images=images, videos=videos)


async def _media_counts(
    sessions: async_sessionmaker[AsyncSession], asset_ids: Sequence[int]
) -> tuple[int, int]:
    async with sessions() as session:
        rows = (
            await session.execute(
                select(Asset.media_type, func.count())
                .where(Asset.id.in_(list(asset_ids)))
                .group_by(Asset.media_type)
            )
        ).all()
    counts = {media_type: int(n) for media_type, n in rows}
    return counts.get(MediaType.IMAGE, 0), counts.get(MediaType.VIDEO, 0)


__all__ = [
    "BRANCH_NAME",
    "BRANCH_TAG",
    "BRANCH_TIME_SEC",
    "DEMO_TAG",
    "WORLD_TAG",
    "DemoOutcome",
    "DemoProgress",
    "DemoReport",
    "build_demo_library",
    "demo_present",
    "select_items",
]
