"""``pixsim push`` and ``pixsim cache`` end to end in subprocesses, on the embedded database."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from core.cache.store import ContentStore
from core.db import migrate
from core.db.embedded import EmbeddedDatabase
from tests.app.test_cli import pixsim


@pytest.fixture
def library(dirs: dict[str, str]) -> Iterator[tuple[dict[str, str], EmbeddedDatabase]]:
    """A data dir whose embedded database holds one imported video (library storage) and one remote one."""
    db = EmbeddedDatabase(Path(dirs["PIXSIM_DATA_DIR"]))
    status = db.start()
    migrate.upgrade(status.url, "head")
    body = b"\x00\x00\x00\x18ftypmp42" + b"frame" * 20_000
    source = Path(dirs["PIXSIM_DATA_DIR"]) / "clip.mp4"
    source.write_bytes(body)
    sha, size, _ = ContentStore(Path(dirs["PIXSIM_DATA_DIR"]) / "cache").add_file(source, "seed")
    libpq = status.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO assets (user_id, media_type, provider_id, sha256, file_size_bytes, mime_type, "
            "upload_method) VALUES (1, 'video', 'local', %s, %s, 'video/mp4', 'local_import')",
            (sha, size),
        )
        conn.execute(
            "INSERT INTO assets (user_id, media_type, provider_id, remote_url, upload_method) "
            "VALUES (1, 'video', 'sora', 'http://cdn.example.com/v.mp4?sig=SECRET', 'generated')"
        )
        conn.execute("INSERT INTO cache_entries (sha256, size_bytes) VALUES (%s, %s)", (sha, size))
    assert hashlib.sha256(body).hexdigest() == sha
    yield dirs, db
    db.stop()


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, str]:
    return {"PIXSIM_DATA_DIR": str(tmp_path / "data"), "PIXSIM_CONFIG_DIR": str(tmp_path / "config")}


def test_push_to_the_sandbox_prints_progress_and_the_reference(
    library: tuple[dict[str, str], EmbeddedDatabase],
) -> None:
    env, _ = library
    result = pixsim(env, "push", "1", "--to", "sandbox")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("asset 1 on sandbox: file_id sha256:")
    phases = [line.split()[0] for line in result.stderr.splitlines() if line.strip()]
    assert phases[0] == "queued" and phases[-1] == "done"
    again = pixsim(env, "push", "1", "--to", "sandbox")
    assert again.stdout == result.stdout, "the second push is a hit"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("push", "1", "--to", "runway"), "Unknown provider 'runway'"),
        (("push", "1", "--to", "pixverse"), "There is no pixverse account."),
        (("push", "99", "--to", "sandbox"), "There is no asset 99 in the library."),
        (("push", "2", "--to", "sandbox"), "only https URLs are allowed"),
    ],
)
def test_push_errors_are_clear_and_never_leak_url_tokens(
    library: tuple[dict[str, str], EmbeddedDatabase], args: tuple[str, ...], message: str
) -> None:
    env, _ = library
    result = pixsim(env, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "SECRET" not in result.stderr and "Traceback" not in result.stderr


def test_cache_stats_and_evict_respect_library_storage(
    library: tuple[dict[str, str], EmbeddedDatabase],
) -> None:
    env, _ = library
    stats = pixsim(env, "cache", "stats")
    assert stats.returncode == 0, stats.stderr
    assert "files:            1 (0 in use)" in stats.stdout
    assert "library storage:  97.7 KiB" in stats.stdout
    evicted = pixsim(env, "cache", "evict", "--to", "0")
    assert evicted.returncode == 0, evicted.stderr
    assert evicted.stdout.startswith("evicted 0 files")
    bad = pixsim(env, "cache", "evict", "--to", "lots")
    assert bad.returncode == 2 and "not a size" in bad.stderr
