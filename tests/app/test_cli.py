"""The ``pixsim`` command end to end, in real subprocesses: database commands, bad input, start-up."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from core.db import migrate

REPO = Path(__file__).resolve().parents[2]


def pixsim(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PIXSIM_")}
    full_env.update(env)
    full_env.setdefault("QT_QPA_PLATFORM", "offscreen")
    full_env["PIXSIM_NO_ERROR_DIALOG"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, str]:
    return {"PIXSIM_DATA_DIR": str(tmp_path / "data"), "PIXSIM_CONFIG_DIR": str(tmp_path / "config")}


def test_unreachable_external_database_names_the_host_hides_the_password_and_creates_nothing(
    dirs: dict[str, str],
) -> None:
    port = closed_port()
    env = dirs | {"PIXSIM_DATABASE_URL": f"postgresql://alice:s3cret-pw@127.0.0.1:{port}/pixsim"}
    for args in (("db", "current"), ("run",)):
        result = pixsim(env, *args)
        assert result.returncode == 2, result.stderr
        assert f"127.0.0.1:{port}" in result.stderr
        assert "Cannot connect to the PostgreSQL server" in result.stderr
        assert "s3cret-pw" not in result.stderr + result.stdout
        assert "Traceback" not in result.stderr
    assert not Path(dirs["PIXSIM_DATA_DIR"]).exists()
    assert not Path(dirs["PIXSIM_CONFIG_DIR"]).exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://bob:pw@db.example.test/pixsim", "PixSim needs PostgreSQL"),
        ("postgresql://bob:pw@db.example.test:5432", "names no database"),
        ("not a url at all", "not a valid URL"),
    ],
)
def test_a_wrong_database_url_is_explained(dirs: dict[str, str], url: str, message: str) -> None:
    result = pixsim(dirs | {"PIXSIM_DATABASE_URL": url}, "db", "current")
    assert result.returncode == 2
    assert message in result.stderr
    assert ":pw@" not in result.stderr
    assert "Traceback" not in result.stderr
    assert not Path(dirs["PIXSIM_DATA_DIR"]).exists()


def test_a_malformed_settings_file_is_explained(dirs: dict[str, str]) -> None:
    config = Path(dirs["PIXSIM_CONFIG_DIR"])
    config.mkdir()
    (config / "settings.json").write_text('{"database_url": "postgresql://x@h/db",\n  oops}')
    result = pixsim(dirs, "db", "current")
    assert result.returncode == 2
    assert "settings.json is not valid JSON (line 2" in result.stderr
    assert not Path(dirs["PIXSIM_DATA_DIR"]).exists()


def test_external_server_from_the_settings_file_is_migrated_without_touching_the_data_dir(
    dirs: dict[str, str], empty_db_url: URL
) -> None:
    config = Path(dirs["PIXSIM_CONFIG_DIR"])
    config.mkdir()
    libpq_url = empty_db_url.set(drivername="postgresql").render_as_string(hide_password=False)
    (config / "settings.json").write_text(json.dumps({"database_url": libpq_url}))

    current = pixsim(dirs, "db", "current")
    assert current.returncode == 0, current.stderr
    assert current.stdout.startswith("base (empty)")
    assert "PostgreSQL 18" in current.stdout

    upgraded = pixsim(dirs, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert migrate.current_revision(empty_db_url) == migrate.head_revision()
    assert not Path(dirs["PIXSIM_DATA_DIR"]).exists()


def test_db_commands_on_the_embedded_database(dirs: dict[str, str]) -> None:
    head = migrate.head_revision()
    first = pixsim(dirs, "db", "current")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("base (empty)")
    assert (Path(dirs["PIXSIM_DATA_DIR"]) / "pgdata" / "PG_VERSION").exists()

    assert pixsim(dirs, "db", "upgrade").stdout.strip() == f"database at {head}"
    assert pixsim(dirs, "db", "current").stdout.startswith(f"{head} (up to date)")
    down = pixsim(dirs, "db", "downgrade", "base")
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == "database at base (empty)"
    history = pixsim(dirs, "db", "history")
    assert history.stdout.splitlines()[0].startswith(head)


def test_a_damaged_data_dir_gives_a_message_not_a_traceback(dirs: dict[str, str]) -> None:
    pgdata = Path(dirs["PIXSIM_DATA_DIR"]) / "pgdata"
    pgdata.mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("not a version")
    for args in (("db", "current"), ("run",)):
        result = pixsim(dirs, *args)
        assert result.returncode == 2
        assert "is damaged (PG_VERSION is unreadable)" in result.stderr
        assert "Traceback" not in result.stderr


def test_the_app_starts_migrates_and_shows_its_window_on_a_fresh_data_dir(dirs: dict[str, str]) -> None:
    result = pixsim(dirs, "run", "--quit-after-shown")
    assert result.returncode == 0, result.stderr
    assert "PIXSIM_SHOWN" in result.stdout
    # The schema was migrated at start-up, and the window saved its state for next time.
    assert pixsim(dirs, "db", "current").stdout.startswith(f"{migrate.head_revision()} (up to date)")
    assert (Path(dirs["PIXSIM_CONFIG_DIR"]) / "window.ini").exists()
    assert (Path(dirs["PIXSIM_DATA_DIR"]) / "logs" / "pixsim.log").exists()
