"""Another PixSim process for transfer tests: N concurrent get_asset_for_provider calls for one pair.

Usage: python -m tests.helpers.push_asset DB_URL CACHE_DIR TRUSTED_URL ASSET_ID PROVIDER COUNT
The Pixverse key comes from PIXSIM_TEST_PIXVERSE_KEY into an in-memory keyring (tests only).
Prints one JSON line: {"refs": [...distinct refs...]}.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import keyring
from sqlalchemy.engine import make_url

from core.db.engine import make_async_engine, make_async_session_factory
from core.providers.accounts import KEYRING_SERVICE
from tests.memory_keyring import MemoryKeyring
from tests.transfer.conftest import make_transfers


async def main() -> int:
    db_url, cache_dir, trusted, asset_id, provider, count = sys.argv[1:7]
    backend = MemoryKeyring()
    backend.set_password(KEYRING_SERVICE, "pixverse/main", os.environ.get("PIXSIM_TEST_PIXVERSE_KEY", ""))
    keyring.set_keyring(backend)
    url = make_url(db_url)
    engine = make_async_engine(url)
    transfers = make_transfers(make_async_session_factory(engine), url, Path(cache_dir), [trusted])
    print("STARTED", flush=True)
    try:
        refs = await asyncio.gather(
            *(transfers.get_asset_for_provider(int(asset_id), provider) for _ in range(int(count)))
        )
    finally:
        await transfers.aclose()
        await transfers.http.aclose()
        await engine.dispose()
    print(json.dumps({"refs": sorted({r.ref for r in refs})}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
