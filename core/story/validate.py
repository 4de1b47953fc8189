"""What is wrong with a story, as problems a writer can act on (pure: works on a loaded StoryGraph).

Errors stop a game from playing the story as written (a branch past the end of its video, a variant
that loops back, a variant with no video); warnings are probably mistakes (a branch with no variants,
a conditional branch with no default, the same tag on a branch and a clip of one video).
"""

from __future__ import annotations

from core.db.enums import BranchType, JobStatus
from core.story.conditions import InvalidCondition, check_condition
from core.story.model import Branch, Problem, StoryGraph, VideoStory

_SLACK = 1e-3


def validate_story(graph: StoryGraph, video_id: int | None = None) -> list[Problem]:
    """Problems of every video in ``graph`` (or only of ``video_id`` and what it leads to), errors first."""
    problems: list[Problem] = []
    for story in graph.videos.values():
        problems.extend(_video_problems(graph, story))
    problems.extend(_cycles(graph))
    return sorted(problems, key=lambda p: p.severity != "error")


def _video_problems(graph: StoryGraph, story: VideoStory) -> list[Problem]:
    out: list[Problem] = []
    video = story.video
    where = f"'{video.name}'"
    times: dict[float, Branch] = {}
    for branch in story.branches:
        label = f"Branch point '{branch.name}' of {where}"
        if branch.time_sec < 0 or branch.time_sec > video.duration_sec + _SLACK:
            out.append(
                Problem(
                    "error",
                    f"{label} is at {branch.time_sec:.2f} s, beyond the end of the video "
                    f"({video.duration_sec:.2f} s). Move it within the video.",
                    branch_id=branch.id,
                )
            )
        if branch.time_sec in times:
            out.append(
                Problem(
                    "warning",
                    f"{label} is at the same time as '{times[branch.time_sec].name}' "
                    f"({branch.time_sec:.2f} s); only one of them can play.",
                    branch_id=branch.id,
                )
            )
        times.setdefault(branch.time_sec, branch)
        out.extend(_branch_problems(graph, story, branch, label))
    for clip in story.clips:
        label = f"Clip '{clip.name}' of {where}"
        if clip.start_sec < 0 or clip.end_sec <= clip.start_sec:
            out.append(
                Problem(
                    "error",
                    f"{label} has a bad range ({clip.start_sec:.2f}–{clip.end_sec:.2f} s): it must start at 0 "
                    "or later and end after it starts.",
                    clip_id=clip.id,
                )
            )
        elif clip.end_sec > video.duration_sec + _SLACK:
            out.append(
                Problem(
                    "error",
                    f"{label} ends at {clip.end_sec:.2f} s, after the end of the video "
                    f"({video.duration_sec:.2f} s).",
                    clip_id=clip.id,
                )
            )
    branch_tags = {b.tag: b for b in story.branches}
    for clip in story.clips:
        if clip.tag in branch_tags:
            out.append(
                Problem(
                    "warning",
                    f"The tag '{clip.tag}' names both clip '{clip.name}' and branch point "
                    f"'{branch_tags[clip.tag].name}' of {where}; a game looking it up may get the wrong one.",
                    branch_id=branch_tags[clip.tag].id,
                    clip_id=clip.id,
                )
            )
    return out


def _branch_problems(graph: StoryGraph, story: VideoStory, branch: Branch, label: str) -> list[Problem]:
    out: list[Problem] = []
    if not branch.variants:
        out.append(
            Problem("warning", f"{label} has no variants: the story stops there.", branch_id=branch.id)
        )
        return out
    for variant in branch.variants:
        vlabel = f"Variant '{variant.name}' of {label[0].lower()}{label[1:]}"
        ids = {"branch_id": branch.id, "variant_id": variant.id}
        if variant.asset_id is None:
            status = variant.job_status
            if status is None:
                out.append(
                    Problem("error", f"{vlabel} has no video and its job is gone. Pick a video.", **ids)
                )
            elif status in (JobStatus.FAILED, JobStatus.CANCELLED):
                out.append(
                    Problem(
                        "error",
                        f"{vlabel} has no video: its generation job {variant.job_id} {status.value}. "
                        "Retry the job or pick a video.",
                        **ids,
                    )
                )
            else:
                out.append(
                    Problem(
                        "warning",
                        f"{vlabel} is still being generated (job {variant.job_id}, {status.value}).",
                        **ids,
                    )
                )
            continue
        if variant.asset_id == story.video.asset_id:
            out.append(
                Problem("error", f"{vlabel} is the branch's own video: the story would loop forever.", **ids)
            )
        asset = graph.assets.get(variant.asset_id)
        if asset is None:
            out.append(
                Problem("error", f"{vlabel} refers to asset {variant.asset_id}, which is missing.", **ids)
            )
        elif asset.media_type != "video":
            out.append(
                Problem(
                    "error", f"{vlabel} is {asset.media_type} asset {variant.asset_id}, not a video.", **ids
                )
            )
        try:
            check_condition(variant.conditions)
        except InvalidCondition as exc:
            out.append(Problem("error", f"{vlabel}: {exc}", **ids))
        if variant.weight < 0:
            out.append(Problem("error", f"{vlabel} has a negative weight ({variant.weight}).", **ids))
    if branch.branch_type is BranchType.RANDOM and not any(
        v.weight > 0 for v in branch.variants if v.asset_id is not None
    ):
        out.append(
            Problem(
                "error",
                f"{label} is random but none of its variants has a weight above 0: nothing can be picked.",
                branch_id=branch.id,
            )
        )
    if branch.branch_type is BranchType.CONDITIONAL and branch.default_variant is None:
        out.append(
            Problem(
                "warning",
                f"{label} is conditional but has no default variant: when no condition holds the story stops.",
                branch_id=branch.id,
            )
        )
    return out


def _cycles(graph: StoryGraph) -> list[Problem]:
    """A variant whose video leads back (through further variants) to the video it branches from."""
    edges: dict[int, set[int]] = {}
    for video_id, story in graph.videos.items():
        edges[video_id] = {v.asset_id for b in story.branches for v in b.variants if v.asset_id is not None}

    def reaches(start: int, goal: int) -> bool:
        seen, stack = {start}, [start]
        while stack:
            for nxt in edges.get(stack.pop(), ()):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    out: list[Problem] = []
    for video_id, story in graph.videos.items():
        for branch in story.branches:
            for variant in branch.variants:
                target = variant.asset_id
                if target is None or target == video_id:
                    continue  # the self-reference is reported with the variant
                if reaches(target, video_id):
                    out.append(
                        Problem(
                            "error",
                            f"Variant '{variant.name}' of branch point '{branch.name}' ('{story.video.name}') "
                            f"leads back to '{story.video.name}': the story would loop forever.",
                            branch_id=branch.id,
                            variant_id=variant.id,
                        )
                    )
    return out
