"""The playthrough window on a real story: it plays, stops at branch points, offers the variants as
buttons (manual), picks by weight with a seed (random) or by the game state (conditional), continues
into the chosen video and keeps a breadcrumb of the path."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from PySide6.QtWidgets import QPushButton
from pytestqt.qtbot import QtBot

from core.db.enums import BranchType
from tests.ui.story_env import StoryApp, story_app  # noqa: F401 - the fixture
from ui.playthrough import PlaythroughWindow


@dataclass
class Story:
    root: int
    left: int
    right: int
    calm: int
    storm: int
    key_door: int
    plain_door: int
    weights: dict[int, float]  # variant id → weight at the random branch point


@pytest.fixture
def story(story_app: StoryApp) -> Story:  # noqa: F811
    app = story_app
    ids = {
        name: app.video(seed, seconds=1.0 if name != "gate" else 2.0, name=name)
        for seed, name in enumerate(("gate", "left", "right", "calm", "storm", "key door", "plain door"), 10)
    }
    service = app.services.story

    async def build() -> dict[int, float]:
        fork = await service.add_branch(ids["gate"], 1.0, name="Fork")
        await service.add_variant(fork.id, ids["left"], name="Go left")
        await service.add_variant(fork.id, ids["right"], name="Go right")
        weather = await service.add_branch(ids["left"], 0.5, name="Weather", branch_type=BranchType.RANDOM)
        calm = await service.add_variant(weather.id, ids["calm"], name="Calm", weight=1.0)
        storm = await service.add_variant(weather.id, ids["storm"], name="Storm", weight=3.0)
        door = await service.add_branch(ids["right"], 0.5, name="Door", branch_type=BranchType.CONDITIONAL)
        await service.add_variant(door.id, ids["plain door"], name="Knock")  # the default
        await service.add_variant(
            door.id, ids["key door"], name="Unlock", conditions={"var": "has_key", "eq": True}
        )
        return {calm.id: calm.weight, storm.id: storm.weight}

    weights = app.core.run(build(), timeout=60)
    return Story(
        ids["gate"],
        ids["left"],
        ids["right"],
        ids["calm"],
        ids["storm"],
        ids["key door"],
        ids["plain door"],
        weights,
    )


def open_window(
    qtbot: QtBot,
    app: StoryApp,
    root: int,
    **options: object,
) -> PlaythroughWindow:
    window = PlaythroughWindow(app.window_services, app.bridge, root, **options)  # type: ignore[arg-type]
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.player.meta is not None and window.play is not None, timeout=20_000)
    return window


def buttons(window: PlaythroughWindow) -> list[QPushButton]:
    return list(window.choice_buttons)


@pytest.fixture
def manual(qtbot: QtBot, story_app: StoryApp, story: Story) -> Iterator[PlaythroughWindow]:  # noqa: F811
    yield open_window(qtbot, story_app, story.root, seed=7, autoplay=False)


def test_it_plays_to_the_branch_point_and_offers_the_variants(
    qtbot: QtBot,
    story_app: StoryApp,  # noqa: F811
    story: Story,
) -> None:
    window = open_window(qtbot, story_app, story.root, seed=1)  # plays in real time from the start
    with qtbot.waitSignal(window.choice_needed, timeout=10_000) as asked:
        pass
    branch, _ = asked.args
    assert branch.name == "Fork" and not window.player.is_playing
    assert window.player.current_sec == pytest.approx(1.0)
    assert [b.text() for b in buttons(window)] == ["Go left", "Go right"]
    assert window.prompt.text() == "Fork: what happens next?"
    assert window.breadcrumb.text() == "gate"


def test_a_manual_choice_then_a_random_pick_by_weight(
    qtbot: QtBot, manual: PlaythroughWindow, story: Story
) -> None:
    window = manual
    with qtbot.waitSignal(window.choice_needed, timeout=10_000):
        window.skip_to_branch()
    with qtbot.waitSignal(window.chosen, timeout=10_000) as chosen:
        buttons(window)[0].click()  # Go left
    assert chosen.args[1].name == "Go left" and buttons(window) == []
    qtbot.waitUntil(lambda: window.showing_video == story.left, timeout=20_000)
    # The random branch point: the same seed picks the same variant, by weight.
    expected_rng = random.Random(7)
    calm_id, storm_id = story.weights
    expected = expected_rng.choices([calm_id, storm_id], weights=[1.0, 3.0])[0]
    with qtbot.waitSignal(window.chosen, timeout=10_000) as picked:
        window.skip_to_branch()
    assert picked.args[0].name == "Weather" and picked.args[1].id == expected
    name = "Calm" if expected == calm_id else "Storm"
    assert f"“{name}” was picked by weight" in window.prompt.text() or window.prompt.text() == ""
    qtbot.waitUntil(
        lambda: window.showing_video == (story.calm if name == "Calm" else story.storm), timeout=20_000
    )
    with qtbot.waitSignal(window.finished, timeout=10_000):
        window.skip_to_branch()  # no branch point ahead: to the end
    assert window.path_names == ["gate", "Go left", name]
    assert window.breadcrumb.text() == f"gate  ›  Go left  ›  {name}"
    assert window.prompt.text() == "The end."


def test_a_conditional_branch_point_follows_the_game_state(
    qtbot: QtBot, manual: PlaythroughWindow, story: Story
) -> None:
    window = manual
    for state, expected in (('{"has_key": true}', "Unlock"), ("{}", "Knock")):
        window.state_edit.setPlainText(state)
        window.restart_button.click()
        qtbot.waitUntil(lambda: window.showing_video == story.root, timeout=20_000)
        with qtbot.waitSignal(window.choice_needed, timeout=10_000):
            window.skip_to_branch()
        right = next(b for b in buttons(window) if b.text() == "Go right")
        right.click()
        qtbot.waitUntil(lambda: window.showing_video == story.right, timeout=20_000)
        with qtbot.waitSignal(window.chosen, timeout=10_000) as picked:
            window.skip_to_branch()
        assert picked.args[1].name == expected
        assert window.path_names == ["gate", "Go right", expected]
    window.state_edit.setPlainText("{has_key}")
    window.restart_button.click()
    assert "not valid JSON" in window.error_label.text() and not window.error_label.isHidden()
