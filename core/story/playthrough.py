"""Playing a story (pure logic, no media): from the root video, play to the next branch point, choose a
variant (the user at manual branches; by weight at random ones; by the game state at conditional ones),
and continue in the variant's video from its start.

The same rules a game runtime follows; docs/STORY_FORMAT.md states them for game developers.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from core.db.enums import BranchType
from core.story.conditions import holds
from core.story.model import Branch, StoryError, StoryGraph, Variant, VideoStory

_EPSILON = 1e-6


@dataclass(frozen=True)
class Step:
    """One stretch of play: ``video_id`` from ``start_sec`` to ``end_sec``, then ``branch`` (None at the
    video's end) and the ``variant`` taken there (None: the story stopped)."""

    video_id: int
    start_sec: float
    end_sec: float
    branch: Branch | None
    variant: Variant | None


class Playthrough:
    def __init__(
        self,
        graph: StoryGraph,
        rng: random.Random | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        self.graph = graph
        self.rng = rng or random.Random()
        self.state: dict[str, Any] = dict(state or {})
        self.current_video: int = graph.root_id
        self.position_sec = 0.0
        self.history: list[Step] = []

    @property
    def story(self) -> VideoStory:
        return self.graph.videos[self.current_video]

    def next_branch(self, after_sec: float | None = None) -> Branch | None:
        """The first branch point of the current video at or after ``after_sec`` (default: where play is)."""
        start = self.position_sec if after_sec is None else after_sec
        for branch in self.story.branches:
            if branch.time_sec >= start - _EPSILON:
                return branch
        return None

    def playable(self, branch: Branch) -> list[Variant]:
        """The variants that have a video to play (pending or failed generations are left out)."""
        return [v for v in branch.variants if v.asset_id is not None and v.asset_id in self.graph.videos]

    def auto_choice(self, branch: Branch) -> Variant | None:
        """The variant the rules pick, or None when the user must choose (manual) or nothing applies."""
        playable = self.playable(branch)
        if branch.branch_type is BranchType.RANDOM:
            weighted = [v for v in playable if v.weight > 0]
            if not weighted:
                return branch.default_variant if branch.default_variant in playable else None
            return self.rng.choices(weighted, weights=[v.weight for v in weighted])[0]
        if branch.branch_type is BranchType.CONDITIONAL:
            default = branch.default_variant
            for variant in playable:
                if variant is not default and holds(variant.conditions, self.state):
                    return variant
            return default if default in playable else None
        return None

    def choose(self, variant_id: int) -> int:
        """Take ``variant_id`` at the branch point ahead: play continues at the start of its video."""
        branch = self.next_branch()
        if branch is None:
            raise StoryError("There is no branch point ahead to choose at.")
        variant = next((v for v in self.playable(branch) if v.id == variant_id), None)
        if variant is None:
            raise StoryError(f"Variant {variant_id} cannot be played at '{branch.name}'.")
        assert variant.asset_id is not None
        self.history.append(Step(self.current_video, self.position_sec, branch.time_sec, branch, variant))
        self.current_video = variant.asset_id
        self.position_sec = 0.0
        return variant.asset_id

    def finish(self) -> None:
        """Stop: play to the end of the current video, or to the branch point ahead where nothing was taken."""
        branch = self.next_branch()
        end = branch.time_sec if branch is not None else self.story.video.duration_sec
        self.history.append(Step(self.current_video, self.position_sec, end, branch, None))

    def run(
        self, ask: Callable[[Branch, list[Variant]], int | None] | None = None, max_steps: int = 1000
    ) -> list[Step]:
        """Play to the end: ``ask`` answers manual branches (and those where the rules pick nothing)
        with a variant id, or None to stop. Returns the steps taken."""
        for _ in range(max_steps):
            branch = self.next_branch()
            if branch is None:
                self.finish()
                return self.history
            variant = self.auto_choice(branch)
            chosen = variant.id if variant is not None else None
            if chosen is None and ask is not None and self.playable(branch):
                chosen = ask(branch, self.playable(branch))
            if chosen is None:
                self.finish()
                return self.history
            self.choose(chosen)
        raise StoryError(f"The playthrough took more than {max_steps} steps; does the story loop?")
