"""Single-flight under load, within a process and across processes, and a kill -9 in mid-download."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys

from sqlalchemy.engine import URL

from core.db.enums import ProviderRefKind, SyncStatus
from tests.fakes.http_server import Slow

from .conftest import PIXVERSE_KEY, REPO, Env, media_bytes

CDN = "/cdn/clip.mp4"
MEDIA = "/openapi/v2/media/upload"


async def test_100_concurrent_requests_make_one_download_and_one_upload(env: Env) -> None:
    body = media_bytes(1_000_000)
    asset_id = await env.add_remote_asset(body)
    env.server.fail("GET", CDN, Slow(chunk_size=128 * 1024, interval_s=0.01))  # keep the flight open a while

    refs = await asyncio.gather(
        *(env.transfers.get_asset_for_provider(asset_id, "pixverse") for _ in range(100))
    )

    assert len({r.ref for r in refs}) == 1
    assert env.server.count("GET", CDN) == 1
    assert env.server.count("POST", MEDIA) == 1
    assert len(await env.refs(asset_id)) == 1


async def test_pushing_to_two_providers_at_once_downloads_once(env: Env) -> None:
    body = media_bytes(500_000)
    asset_id = await env.add_remote_asset(body)
    env.server.fail("GET", CDN, Slow(chunk_size=128 * 1024, interval_s=0.01))
    pixverse, sandbox = await asyncio.gather(
        env.transfers.get_asset_for_provider(asset_id, "pixverse"),
        env.transfers.get_asset_for_provider(asset_id, "sandbox"),
    )
    assert sandbox.ref == f"sha256:{hashlib.sha256(body).hexdigest()}"
    assert pixverse.kind == ProviderRefKind.MEDIA_ID
    assert env.server.count("GET", CDN) == 1


async def _spawn(env: Env, db_url: URL, asset_id: int, calls: int) -> asyncio.subprocess.Process:
    """Another process (tests.helpers.push_asset) making ``calls`` concurrent pushes to Pixverse."""
    args = (db_url.render_as_string(hide_password=False), str(env.store.root), env.server.base_url)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.helpers.push_asset",
        *args,
        str(asset_id),
        "pixverse",
        str(calls),
        cwd=REPO,
        env={**os.environ, "PIXSIM_TEST_PIXVERSE_KEY": PIXVERSE_KEY},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_processes_sharing_one_database_download_and_upload_once(env: Env, db_url: URL) -> None:
    body = media_bytes(1_000_000)
    asset_id = await env.add_remote_asset(body)
    env.server.fail("GET", CDN, Slow(chunk_size=128 * 1024, interval_s=0.05))
    procs = [await _spawn(env, db_url, asset_id, 20) for _ in range(3)]
    outputs = [await asyncio.wait_for(p.communicate(), 120) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    refs = {ref for out, _ in outputs for ref in json.loads(out.decode().splitlines()[-1])["refs"]}
    assert len(refs) == 1
    assert env.server.count("GET", CDN) == 1
    assert env.server.count("POST", MEDIA) == 1


async def test_kill_9_mid_download_leaves_no_corrupt_file_and_the_transfer_resumes(
    env: Env, db_url: URL
) -> None:
    body = media_bytes(3_000_000)
    sha = hashlib.sha256(body).hexdigest()
    asset_id = await env.add_remote_asset(body)
    env.server.fail("GET", CDN, Slow(chunk_size=64 * 1024, interval_s=0.05))
    proc = await _spawn(env, db_url, asset_id, 1)
    partial = env.store.partial(f"asset-{asset_id}")
    for _ in range(400):
        if partial.size() > 300_000:
            break
        await asyncio.sleep(0.025)
    assert partial.size() > 300_000, "the other process never started downloading"
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    kept = partial.size()

    # Nothing under a final name, nothing recorded as done.
    assert env.objects() == []
    assert not env.store.object_path(sha).exists()
    asset = await env.asset(asset_id)
    assert asset.sync_status == SyncStatus.REMOTE
    assert await env.refs(asset_id) == []
    assert env.pixverse.uploads == []

    # Asked again, the transfer completes, resuming after the bytes the killed process kept.
    ref = await env.transfers.get_asset_for_provider(asset_id, "pixverse")
    assert env.store.object_path(sha).read_bytes() == body
    resumed = [r for r in env.server.requests if r.path == CDN][-1]
    assert resumed.header("range") == f"bytes={kept}-"
    assert [u.data for u in env.pixverse.uploads] == [body]
    assert [r.provider_ref for r in await env.refs(asset_id)] == [ref.ref]
    assert env.partials() == []


async def test_a_large_batch_of_pushes_queues_instead_of_exhausting_connections(env: Env) -> None:
    """120 assets dropped on a provider at once: more than the database allows connections (100)."""
    ids = [await env.add_remote_asset(media_bytes(2_000, seed=i), name=f"batch{i}.mp4") for i in range(120)]
    refs = await asyncio.gather(*(env.transfers.get_asset_for_provider(i, "sandbox") for i in ids))
    assert len({r.ref for r in refs}) == 120
    assert sum(env.server.count("GET", f"/cdn/batch{i}.mp4") for i in range(120)) == 120
