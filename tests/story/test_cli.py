"""``pixsim story show|validate|export|import|twee`` in real subprocesses, on a story built in-process."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sqlalchemy.engine import URL

from core.db.enums import BranchType
from tests.app.test_cli import pixsim
from tests.memory_keyring import MemoryKeyring
from tests.story.conftest import make_env
from tests.story.test_export import build_story


def _cli_env(tmp_path: Path, db_url: URL) -> dict[str, str]:
    return {
        "PIXSIM_DATA_DIR": str(tmp_path / "data"),
        "PIXSIM_CONFIG_DIR": str(tmp_path / "config"),
        "PIXSIM_DATABASE_URL": db_url.render_as_string(hide_password=False),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }


async def test_story_commands(db_url: URL, tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    async for env in make_env(db_url, tmp_path):
        root = await build_story(env)
    cli = _cli_env(tmp_path, db_url)

    def run(*args: str) -> tuple[int, str, str]:
        result = pixsim(cli, "story", *args)
        return result.returncode, result.stdout, result.stderr

    code, out, err = await asyncio.to_thread(run, "show", str(root))
    assert code == 0, err
    assert (
        f"[{root}] Crossroads (start)" in out
        and "@ 1.25 s  Fork in the road [fork_in_the_road] conditional" in out
    )
    assert "Cave path [cave_path]" in out and "clip 0.25–1.00 s  Boss intro [boss_intro]" in out

    code, out, err = await asyncio.to_thread(run, "validate", str(root))
    assert code == 0, err
    assert "warning: Branch point 'Wait' of 'Crossroads' has no variants" in out and "0 error(s)" in out

    code, out, err = await asyncio.to_thread(run, "export", str(root), str(tmp_path / "game"))
    assert code == 0, err
    assert "exporting" in err and "4 video(s) copied" in err
    document = json.loads((tmp_path / "game" / "story.json").read_text())
    assert len(document["videos"]) == 4

    code, out, err = await asyncio.to_thread(run, "import", str(tmp_path / "game"))
    assert code == 0, err
    assert "0 new video(s), 4 already in the library, 3 branch point(s), 2 clip(s)" in out

    code, out, err = await asyncio.to_thread(run, "twee", str(root), "-o", str(tmp_path / "story.twee"))
    assert code == 0, err
    assert (tmp_path / "story.twee").read_text().startswith(":: StoryTitle\nCrossroads\n")

    # A story with errors: validate exits 1, export refuses and lists them.
    async for env in make_env(db_url, tmp_path):
        dice = await env.story.add_branch(root, 0.1, name="Zero", branch_type=BranchType.RANDOM)
        await env.story.add_variant(dice.id, await env.video(9), weight=0)
    code, out, _ = await asyncio.to_thread(run, "validate", str(root))
    assert code == 1 and "error: Branch point 'Zero'" in out
    code, _, err = await asyncio.to_thread(run, "export", str(root), str(tmp_path / "again"))
    assert code == 2 and "1 problem(s) to fix" in err
    code, _, err = await asyncio.to_thread(run, "show", "999999")
    assert code == 2 and "not in the library" in err
