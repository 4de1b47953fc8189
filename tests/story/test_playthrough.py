"""Playing a story by the rules a game follows: manual branches ask, random ones pick by weight with a
seeded generator, conditional ones read the game state; and the condition language itself."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from core.db.enums import BranchType
from core.story.conditions import InvalidCondition, check_condition, holds
from core.story.model import StoryError, StoryGraph
from core.story.playthrough import Playthrough
from tests.story.conftest import StoryEnv


async def _story(env: StoryEnv) -> tuple[StoryGraph, dict[str, int]]:
    ids = {
        "hall": await env.video(1, seconds=2.0, name="Hall"),
        "door": await env.video(2, name="Door"),
        "left": await env.video(3, name="Left"),
        "right": await env.video(4, name="Right"),
        "vault": await env.video(5, name="Vault"),
        "wall": await env.video(6, name="Wall"),
    }
    s = env.story
    choose = await s.add_branch(ids["hall"], 0.5, name="Which door")  # manual
    await s.add_variant(choose.id, ids["door"])
    dice = await s.add_branch(ids["door"], 0.5, name="Coin", branch_type=BranchType.RANDOM)
    await s.add_variant(dice.id, ids["left"], weight=3)
    await s.add_variant(dice.id, ids["right"], weight=1)
    await s.add_variant(dice.id, ids["wall"], weight=0)  # never picked at random
    gate = await s.add_branch(ids["left"], 0.5, name="Gate", branch_type=BranchType.CONDITIONAL)
    wall = await s.add_variant(gate.id, ids["wall"])  # first: the default
    await s.add_variant(
        gate.id,
        ids["vault"],
        conditions={"all": [{"var": "has_key", "eq": True}, {"var": "gold", "gte": 10}]},
    )
    assert wall.is_default
    # A pending continuation is never played.
    await s.continue_from_branch(gate.id, "sandbox", {"prompt": "x"})
    return await s.playthrough(ids["hall"]), ids


async def test_a_playthrough_asks_at_manual_branches_and_follows_the_rules(env: StoryEnv) -> None:
    graph, ids = await _story(env)
    assert set(graph.videos) == set(ids.values())

    play = Playthrough(graph, rng=random.Random(1), state={"has_key": True, "gold": 12})
    assert play.current_video == ids["hall"]
    branch = play.next_branch(0.0)
    assert branch is not None and branch.name == "Which door"
    assert play.auto_choice(branch) is None  # manual: the user decides
    assert play.next_branch(0.6) is None  # nothing after 0.6 s in the hall
    with pytest.raises(StoryError):
        play.choose(branch.variants[0].id + 1000)
    assert play.choose(branch.variants[0].id) == ids["door"]

    coin = play.next_branch()
    assert coin is not None and coin.branch_type is BranchType.RANDOM
    picked = play.auto_choice(coin)
    assert picked is not None and picked.asset_id in (ids["left"], ids["right"])

    gate = graph.videos[ids["left"]].branches[0]
    assert len(play.playable(gate)) == 2  # the pending variant is left out
    chosen = play.auto_choice(gate)
    assert chosen is not None and chosen.asset_id == ids["vault"]  # key and gold: the vault
    play.state = {"has_key": True, "gold": 3}
    default = play.auto_choice(gate)
    assert default is not None and default.asset_id == ids["wall"]  # not enough gold: the default


async def test_random_branches_follow_weights_and_a_seed_repeats_a_run(env: StoryEnv) -> None:
    graph, ids = await _story(env)
    coin = graph.videos[ids["door"]].branches[0]
    play = Playthrough(graph, rng=random.Random(42))
    counts = Counter(v.asset_id for v in (play.auto_choice(coin) for _ in range(4000)) if v is not None)
    assert set(counts) == {ids["left"], ids["right"]}  # weight 0 is never picked
    assert 2.5 < counts[ids["left"]] / counts[ids["right"]] < 3.5

    def run(seed: int) -> list[int]:
        p = Playthrough(graph, rng=random.Random(seed), state={"has_key": False})
        steps = p.run(ask=lambda branch, variants: variants[0].id)
        return [s.video_id for s in steps]

    assert run(7) == run(7)
    path = run(7)
    assert path[:2] == [ids["hall"], ids["door"]] and path[-1] in (ids["wall"], ids["right"])
    # Without anyone to ask, a manual branch stops the story there.
    stopped = Playthrough(graph).run()
    assert [(s.video_id, s.end_sec, s.variant) for s in stopped] == [(ids["hall"], 0.5, None)]


@pytest.mark.parametrize(
    ("condition", "state", "expected"),
    [
        ({}, {}, True),
        ({"var": "has_key", "eq": True}, {"has_key": True}, True),
        ({"var": "has_key", "eq": True}, {"has_key": 1}, False),  # JSON: true is not 1
        ({"var": "has_key", "eq": True}, {}, False),
        ({"var": "has_key", "ne": True}, {}, True),
        ({"var": "has_key", "exists": False}, {}, True),
        ({"var": "gold", "gte": 10, "lt": 20}, {"gold": 15}, True),
        ({"var": "gold", "gte": 10, "lt": 20}, {"gold": 20}, False),
        ({"var": "gold", "gt": 1}, {"gold": "lots"}, False),
        ({"var": "mood", "in": ["calm", "happy"]}, {"mood": "calm"}, True),
        ({"var": "bag", "contains": "rope"}, {"bag": ["rope", "torch"]}, True),
        ({"var": "player.level", "gte": 3}, {"player": {"level": 4}}, True),
        ({"any": [{"var": "a", "eq": 1}, {"var": "b", "eq": 2}]}, {"b": 2}, True),
        ({"any": []}, {}, False),
        ({"all": []}, {}, True),
        ({"not": {"var": "a", "eq": 1}}, {"a": 1}, False),
    ],
)
def test_conditions(condition: dict[str, Any], state: dict[str, Any], expected: bool) -> None:
    check_condition(condition)
    assert holds(condition, state) is expected


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ([1], "must be an object"),
        ({"var": "x"}, "needs an operator"),
        ({"var": "x", "like": 1}, "unknown operator 'like'"),
        ({"all": {"var": "x", "eq": 1}}, r"conditions\.all must be a list"),
        ({"all": [{"var": "x", "eq": 1}, {"nope": 1}]}, r"conditions\.all\[1\]: expected 'var'"),
        ({"var": "x", "in": 3}, r"\.in must be a list"),
        ({"var": "x", "lt": [1]}, r"\.lt must be a number or a string"),
        ({"any": [], "var": "x"}, "must be the only key"),
    ],
)
def test_bad_conditions_say_where_and_why(condition: Any, message: str) -> None:
    with pytest.raises(InvalidCondition, match=message):
        check_condition(condition)
