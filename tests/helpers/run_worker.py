"""A `pixsim worker` process for job tests, wired to fake providers on 127.0.0.1.

Usage: python -m tests.helpers.run_worker DB_URL DATA_DIR TRUSTED_URL
Secrets come from PIXSIM_TEST_SECRETS (JSON {keyring_ref: key}) into an in-memory keyring (tests only).
The lease is long on purpose: a test that kills this process proves the takeover does not wait for it.
Prints "WORKER <id>" once running, then one line per job event.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import keyring
from sqlalchemy.engine import make_url

from app.services import build_services
from app.settings import Settings
from core.jobs.service import JobEvent
from core.net.http import SafeHttp
from core.net.policy import UrlPolicy
from core.providers.accounts import KEYRING_SERVICE
from tests.jobs.conftest import FAST
from tests.memory_keyring import MemoryKeyring
from tests.transfer.conftest import TEST_RETRY, TEST_TIMEOUT


async def main() -> int:
    db_url, data_dir, trusted = sys.argv[1:4]
    backend = MemoryKeyring()
    for ref, secret in json.loads(os.environ.get("PIXSIM_TEST_SECRETS", "{}")).items():
        backend.set_password(KEYRING_SERVICE, ref, secret)
    keyring.set_keyring(backend)
    settings = Settings(data_dir=Path(data_dir), config_dir=Path(data_dir) / "config")
    http = SafeHttp(UrlPolicy.trusting([trusted]), timeout=TEST_TIMEOUT)
    policy = dataclasses.replace(FAST, lease=timedelta(seconds=120))
    services = build_services(settings, make_url(db_url), http=http, job_policy=policy, retry=TEST_RETRY)

    def show(event: JobEvent) -> None:
        print(f"JOB {event.job_id} {event.status.value}", flush=True)

    services.jobs.events.subscribe(show)
    print(f"WORKER {services.runner.worker_id}", flush=True)
    try:
        await services.runner.run()
    finally:
        await services.aclose()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
