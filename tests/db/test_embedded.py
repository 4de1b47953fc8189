"""The embedded cluster: created once, reused, shared by processes, and clear about damage or locks."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from core.db.embedded import EmbeddedDatabase
from core.errors import DataDirError
from tests.conftest import libpq

REPO = Path(__file__).resolve().parents[2]


def _postmaster_running(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().splitlines()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Holder:
    """Another process holding the embedded database (tests.helpers.hold_db)."""

    def __init__(self, data_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.hold_db", str(data_dir)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self._read()
        assert line.startswith("READY"), line

    def _read(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"holder died: {self.proc.stderr.read() if self.proc.stderr else ''}")
        return line.strip()

    def send(self, command: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def exit(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("exit\n")
        self.proc.stdin.flush()
        assert self.proc.wait(30) == 0

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    yield path
    # Never leave a server behind, whatever the test did (fast shutdown of the postmaster).
    pid_file = path / "pgdata" / "postmaster.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGINT)


def test_first_start_creates_the_cluster_and_later_starts_reuse_it(data_dir: Path) -> None:
    db = EmbeddedDatabase(data_dir)
    status = db.start()
    assert (data_dir / "pgdata" / "PG_VERSION").exists()
    assert status.postgres_version.startswith("18")
    with psycopg.connect(libpq(status.url), autocommit=True) as conn:
        # Unix socket only: no TCP listener at all.
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
        conn.execute("CREATE TABLE survives_restart (v text)")
        conn.execute("INSERT INTO survives_restart VALUES ('kept')")
    db.stop()
    assert not _postmaster_running(data_dir / "pgdata"), "the last process to leave stops the server"

    again = EmbeddedDatabase(data_dir)
    status = again.start()
    with psycopg.connect(libpq(status.url)) as conn:
        assert conn.execute("SELECT v FROM survives_restart").fetchall() == [("kept",)]
    again.stop()


def test_two_processes_share_one_server_and_the_last_one_stops_it(data_dir: Path) -> None:
    first = Holder(data_dir)
    second = Holder(data_dir)
    pgdata = data_dir / "pgdata"
    assert _postmaster_running(pgdata)
    first.exit()
    assert _postmaster_running(pgdata), "the server stays up while another process uses it"
    assert second.send("query").startswith("OK")
    second.exit()
    assert not _postmaster_running(pgdata)


def test_a_crashed_process_does_not_keep_the_server_alive_forever(data_dir: Path) -> None:
    crashed = Holder(data_dir)
    crashed.kill()  # no clean-up: its pid stays in the handle list
    survivor = Holder(data_dir)
    assert survivor.send("query").startswith("OK")
    survivor.exit()
    assert not _postmaster_running(data_dir / "pgdata")


def test_a_locked_data_directory_gives_a_clear_error(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "helpers" / "hold_lock.py"), str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "LOCKED"
        with pytest.raises(DataDirError, match="is locked: another PixSim process"):
            EmbeddedDatabase(data_dir, lock_timeout_s=0.5).start()
        assert not (data_dir / "pgdata").exists(), "nothing was created while locked"
    finally:
        holder.communicate("", timeout=10)


@pytest.mark.parametrize(
    ("damage", "detail"),
    [
        (lambda pg: (pg / "PG_VERSION").write_text("garbage\n"), "PG_VERSION is unreadable"),
        (lambda pg: (pg / "global" / "pg_control").unlink(), "global/pg_control is missing"),
        (lambda pg: (pg / "PG_VERSION").unlink(), "PG_VERSION is missing"),
    ],
    ids=["bad-version", "no-pg-control", "no-version"],
)
def test_a_damaged_cluster_gives_a_clear_error_and_is_left_untouched(
    data_dir: Path, damage: object, detail: str
) -> None:
    db = EmbeddedDatabase(data_dir)
    db.start()
    db.stop()
    pgdata = data_dir / "pgdata"
    damage(pgdata)  # type: ignore[operator]
    before = sorted(p.name for p in pgdata.iterdir())
    with pytest.raises(DataDirError, match="is damaged") as info:
        EmbeddedDatabase(data_dir).start()
    assert detail in str(info.value)
    assert "move the folder aside" in str(info.value)
    assert sorted(p.name for p in pgdata.iterdir()) == before


def test_a_cluster_that_fails_to_start_reports_the_server_log(data_dir: Path) -> None:
    db = EmbeddedDatabase(data_dir)
    db.start()
    db.stop()
    conf = data_dir / "pgdata" / "postgresql.conf"
    conf.write_text(conf.read_text() + "\nshared_buffers = 'not a size'\n")
    with pytest.raises(DataDirError, match="could not start") as info:
        EmbeddedDatabase(data_dir).start()
    assert "shared_buffers" in str(info.value)
