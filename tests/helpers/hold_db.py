"""A second PixSim-like process for tests: joins the embedded database and obeys commands on stdin.

Usage: python -m tests.helpers.hold_db DATA_DIR
Prints "READY <server pid>", then for each line on stdin: "query" -> "OK <n>", "exit" -> leaves and exits.
"""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg

from core.db.embedded import EmbeddedDatabase


def main() -> int:
    db = EmbeddedDatabase(Path(sys.argv[1]), lock_timeout_s=float(sys.argv[2]) if len(sys.argv) > 2 else 30)
    status = db.start()
    libpq = status.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()
    print(f"READY {pid[0] if pid else 0}", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "query":
            with psycopg.connect(libpq) as conn:
                row = conn.execute("SELECT count(*) FROM pg_database").fetchone()
            print(f"OK {row[0] if row else 0}", flush=True)
        elif command == "exit":
            break
    db.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
