"""Exporting a story for a game and for Twine: the runtime bundle matches its JSON Schema, imports into
a fresh library and exports again byte for byte; the Twee 3 output is structurally valid."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL

from core.db.enums import BranchType
from core.story.export import ExportProgress, StoryNotExportable, read_bundle
from core.story.media import ExportCancelled
from core.story.model import InvalidBundle
from core.story.schema import schema_errors
from tests.conftest import TEMPLATE_DB, _create_database, _drop_database
from tests.memory_keyring import MemoryKeyring
from tests.story.conftest import StoryEnv, make_env


@pytest.fixture
def fresh_db_url(admin_url: URL, template_url: URL) -> Iterator[URL]:
    name = f"test_story_fresh_{os.getpid()}"
    url = _create_database(admin_url, name, template=TEMPLATE_DB)
    yield url
    _drop_database(admin_url, name)


@pytest.fixture
async def fresh(fresh_db_url: URL, tmp_path: Path, memory_keyring: MemoryKeyring) -> AsyncIterator[StoryEnv]:
    async for built in make_env(fresh_db_url, tmp_path / "b"):
        yield built


async def build_story(env: StoryEnv) -> int:
    """Crossroads → (forest | cave); forest → (river); the cave has a clip. Every kind of branch."""
    root = await env.video(1, seconds=2.0, name="Crossroads")
    forest = await env.video(2, seconds=1.5, name="Forest")
    cave = await env.video(3, seconds=1.0, name="Cave")
    river = await env.video(4, seconds=1.0, name="River")
    s = env.story
    fork = await s.add_branch(
        root,
        1.25,
        name="Fork in the road",
        branch_type=BranchType.CONDITIONAL,
        description="Left or right?",
        game_metadata={"music": "tense", "ui": {"timeout_sec": 5}},
    )
    await s.add_variant(fork.id, forest, name="Forest path")
    await s.add_variant(
        fork.id, cave, name="Cave path", conditions={"all": [{"var": "has_torch", "eq": True}]}
    )
    dice = await s.add_branch(forest, 0.5, name="Dice", branch_type=BranchType.RANDOM)
    await s.add_variant(dice.id, river, weight=3)
    await s.add_variant(dice.id, cave, weight=1.5)
    await s.add_branch(root, 1.9, name="Wait", branch_type=BranchType.MANUAL)
    await s.add_clip(root, 0.25, 1.0, name="Boss intro", description="roar", tags=["boss", "intro"])
    await s.add_clip(cave, 0.0, 0.5, name="Drip")
    return root


async def test_export_import_into_a_fresh_library_and_export_again_is_identical(
    env: StoryEnv, fresh: StoryEnv, tmp_path: Path
) -> None:
    root = await build_story(env)
    seen: list[ExportProgress] = []
    first = await env.story.export_runtime(root, tmp_path / "first", progress=seen.append)

    document = json.loads(first.read_text())
    assert schema_errors(document) == []
    assert document["title"] == "Crossroads" and len(document["videos"]) == 4
    names = [v["name"] for v in document["videos"]]
    assert names == ["Crossroads", "Forest", "Cave", "River"]  # the order a reader meets them
    for video in document["videos"]:  # each file is beside story.json, named by its hash
        data = (first.parent / video["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == video["sha256"] and len(data) == video["size_bytes"]
        assert video["file"] == video["sha256"] + ".mp4" and video["duration_sec"] > 0
    fork = document["videos"][0]["branches"][0]
    assert (fork["tag"], fork["time_sec"], fork["frame"], fork["type"]) == (
        "fork_in_the_road",
        1.25,
        15,
        "conditional",
    )
    assert fork["game_metadata"] == {"music": "tense", "ui": {"timeout_sec": 5}}
    assert [(v["name"], v["default"], v["order"]) for v in fork["variants"]] == [
        ("Forest path", True, 0),
        ("Cave path", False, 1),
    ]
    assert fork["variants"][1]["conditions"] == {"all": [{"var": "has_torch", "eq": True}]}
    assert seen[-1].files_done == seen[-1].files_total == 4 and seen[-1].bytes_done == seen[-1].bytes_total
    assert [p.bytes_done for p in seen] == sorted(p.bytes_done for p in seen)

    result = await fresh.story.import_runtime(first.parent)
    assert len(result.imported) == 4 and result.matched == [] and (result.branches, result.clips) == (3, 2)
    second = await fresh.story.export_runtime(result.root_asset_id, tmp_path / "second")
    assert second.read_bytes() == first.read_bytes()

    # Importing again matches every video by hash and replaces branches by tag: nothing doubles.
    again = await fresh.story.import_runtime(first)
    assert again.imported == [] and len(again.matched) == 4
    assert len((await fresh.story.story(again.root_asset_id)).branches) == 2
    third = await fresh.story.export_runtime(again.root_asset_id, tmp_path / "third")
    assert third.read_bytes() == first.read_bytes()


async def test_an_export_with_errors_is_refused_and_a_cancelled_one_writes_no_story(
    env: StoryEnv, tmp_path: Path
) -> None:
    root = await build_story(env)
    cancel = asyncio.Event()
    cancel.set()
    with pytest.raises(ExportCancelled):
        await env.story.export_runtime(root, tmp_path / "out", cancel=cancel)
    assert not (tmp_path / "out" / "story.json").exists()

    dice = await env.story.add_branch(root, 0.1, name="Zero", branch_type=BranchType.RANDOM)
    await env.story.add_variant(dice.id, await env.video(9), weight=0)
    with pytest.raises(StoryNotExportable, match="none of its variants has a weight above 0") as caught:
        await env.story.export_runtime(root, tmp_path / "out")
    assert len(caught.value.problems) == 1


async def test_bad_bundles_are_refused_with_the_reason(
    env: StoryEnv, fresh: StoryEnv, tmp_path: Path
) -> None:
    root = await build_story(env)
    story_json = await env.story.export_runtime(root, tmp_path / "bundle")
    document = json.loads(story_json.read_text())

    def write(doc: dict[str, Any]) -> Path:
        story_json.write_text(json.dumps(doc))
        return story_json

    broken = json.loads(json.dumps(document))
    broken["videos"][0]["branches"][0]["type"] = "sometimes"
    with pytest.raises(InvalidBundle, match=r"\$\.videos\[0\]\.branches\[0\]\.type: must be one of"):
        read_bundle(write(broken))

    broken = json.loads(json.dumps(document))
    broken["videos"][0]["branches"][0]["variants"][0]["video"] = "v_000000000000"
    with pytest.raises(InvalidBundle, match="not listed"):
        read_bundle(write(broken))

    # A media file damaged in transit is noticed before anything is written.
    write(document)
    victim = story_json.parent / document["videos"][1]["file"]
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(InvalidBundle, match="damaged"):
        await fresh.story.import_runtime(story_json)
    assert await fresh.services.library.count_assets() == 0  # every file is checked before any import

    (story_json.parent / "notes.txt").write_text("x")
    with pytest.raises(InvalidBundle, match="not valid JSON"):
        read_bundle(story_json.parent / "notes.txt")


_HEADER = re.compile(r"^:: (?P<name>(?:\\.|[^\\\[\]{}])+?)(?: \[(?P<tags>[^\]]*)\])?(?: (?P<meta>\{.*\}))?$")
_LINK = re.compile(r"\[\[(?P<text>[^\]]*?)->(?P<target>[^\]]+)\]\]")


def parse_twee(source: str) -> dict[str, str]:
    """Twee 3 passages by name, checking the structure as Twine's importer would."""
    passages: dict[str, str] = {}
    name: str | None = None
    body: list[str] = []
    for line in source.splitlines():
        if line.startswith("::"):
            if name is not None:
                passages[name] = "\n".join(body).strip()
            match = _HEADER.match(line)
            assert match, f"bad passage header: {line!r}"
            name = match["name"].replace("\\\\", "\\")
            assert name not in passages, f"duplicate passage {name!r}"
            if match["meta"]:
                meta = json.loads(match["meta"])
                assert re.fullmatch(r"\d+,\d+", meta["position"])
            body = []
        else:
            assert name is not None, "text before the first passage"
            body.append(line)
    if name is not None:
        passages[name] = "\n".join(body).strip()
    return passages


async def test_twee_export_is_valid_twee_3(env: StoryEnv) -> None:
    root = await build_story(env)
    source = await env.story.export_twee(root)
    passages = parse_twee(source)

    assert passages["StoryTitle"] == "Crossroads"
    data = json.loads(passages["StoryData"])
    assert re.fullmatch(r"[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}", data["ifid"])
    assert data["start"] in passages and data["format"] and data["format-version"]
    # Every link leads to a passage; every passage but the start is reachable.
    story = {k: v for k, v in passages.items() if k not in ("StoryTitle", "StoryData")}
    targets = {m["target"] for text in story.values() for m in _LINK.finditer(text)}
    assert targets <= set(story)
    assert set(story) - targets == {data["start"]}
    # One passage per stretch between branch points: Crossroads has 2 branches → 3, Forest 1 → 2, Cave, River 1 each.
    assert len(story) == 3 + 2 + 1 + 1
    start = story[data["start"]]
    assert "Fork in the road" in start
    links = [m["text"] for m in _LINK.finditer(start)]
    assert links == ["Forest path", "Cave path", "Continue without branching"]
    assert source == await env.story.export_twee(root)  # deterministic
