"""The cross-provider transfer engine against its baselines, side by side in one run.

    .venv/bin/python bench/transfer.py [--runs 3] [--file-mib 512] [--skip-gui]

Everything runs against throwaway state: a fresh embedded PostgreSQL and a cache folder in a temp
directory, and a static file server (bench/_fileserver.py, sendfile) in a separate process on
127.0.0.1. The TransferService comes from the app's own wiring (app.services.build_transfers) and
runs on the app's core loop (core.runtime.CoreLoop). Measured:

* download: ``ensure_local`` of a ``--file-mib`` file into the cache (stream, sha256, size check,
  fsync, atomic rename, index row) against ``curl -s -o <file>`` of the same URL; runs interleaved,
  one untimed warm-up each, medians. Also curl followed by an fsync of its file, for reference.
* the same over TLS: the file server on https with a throwaway CA (trustme), against
  ``curl --cacert`` (the path real CDNs take; informative, the issue's target is the plain one).
* RSS: peak growth of this process's RSS during our downloads (psutil, sampled every 5 ms).
* hits: 10,000 cache-hit ``get_asset_for_provider`` calls (Sandbox) against 10,000 plain primary-key
  SELECTs through the same session factory, interleaved in blocks.
* single-flight: 100 concurrent ``get_asset_for_provider`` calls on one (asset, Pixverse) pair; the
  downloads and uploads the (fake) servers received.
* eviction: passes over 100,000 indexed cache files (written and synced to disk beforehand): one with
  the cache 1 % over its cap (``evict_100k_s``), then one dropping a further 10 %, next to plainly
  unlinking 10,000 files of the same size and layout (the filesystem's floor for that pass).
* GUI latency: a 1 ms QTimer on the Qt main thread (offscreen) while a download streams on the core
  loop, against the same timer with nothing running.

Human-readable lines first; the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import hashlib
import itertools
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import psutil
from sqlalchemy import select, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/ is not installed

from app.services import build_transfers
from bench._report import percentile, say, stage
from core.cache.store import ContentStore
from core.db import migrate
from core.db.embedded import EmbeddedDatabase
from core.db.engine import make_async_engine, make_async_session_factory
from core.db.enums import MediaType, UploadMethod
from core.db.models import LOCAL_USERNAME, Asset, ProviderAccount, User
from core.net.http import SafeHttp
from core.net.policy import UrlPolicy
from core.providers.accounts import KEYRING_SERVICE
from core.runtime import CoreLoop
from core.transfer.events import TransferEvent
from core.transfer.service import TransferService

REPO = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
T = TypeVar("T")

HIT_CALLS = 10_000
HIT_BLOCK = 1_000
HIT_WARMUP = 200
DEDUP_CALLERS = 100
DEDUP_BODY = 16 * MIB
EVICT_ENTRIES = 100_000
EVICT_FILE_BYTES = 4096
GUI_TICK_MS = 1
BENCH_KEY = "bench-pixverse-key"


# -- helpers ---------------------------------------------------------------------------------------


async def timed(awaitable: Awaitable[T]) -> tuple[T, float]:
    """The result and the wall time in seconds, measured on the loop that runs it."""
    start = time.perf_counter()
    result = await awaitable
    return result, time.perf_counter() - start


class RssSampler:
    """Peak RSS of this process while the block runs, sampled from a thread every ``interval_s``."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self._process = psutil.Process()
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.baseline = 0
        self.peak = 0
        self.samples = 0

    def _rss(self) -> int:
        return int(self._process.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.peak = max(self.peak, self._rss())
            self.samples += 1

    def __enter__(self) -> RssSampler:
        self.baseline = self.peak = self._rss()
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.baseline) / MIB


def write_random_file(path: Path, mib: int) -> str:
    """``mib`` MiB of random bytes; returns their sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as f:
        for _ in range(mib):
            block = os.urandom(MIB)
            digest.update(block)
            f.write(block)
    return digest.hexdigest()


# -- the file server (separate process) ------------------------------------------------------------


class FileServer:
    def __init__(self, directory: Path, tls: tuple[Path, Path] | None = None) -> None:
        command = [sys.executable, str(REPO / "bench" / "_fileserver.py"), str(directory)]
        if tls is not None:
            command += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        self._proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            self.stop()
            raise RuntimeError(f"the file server did not start (said {line!r})")
        self.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{int(line[1])}"

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def count(self, name: str) -> int:
        with urllib.request.urlopen(f"{self.base_url}/_count?path=/{name}", timeout=10) as response:
            return int(json.load(response)["count"])

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


# -- wiring (as app/services.py does, with the bench servers trusted) -----------------------------


@dataclass
class Wired:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    transfers: TransferService

    async def aclose(self) -> None:
        await self.transfers.aclose()
        await self.transfers.http.aclose()
        await self.engine.dispose()


def make_transfers(
    sessions: async_sessionmaker[AsyncSession],
    url: URL,
    cache_dir: Path,
    trusted: list[str],
    tls: ssl.SSLContext | None = None,
) -> TransferService:
    """The app's own wiring (app.services.build_transfers), with the bench's loopback servers trusted
    (and, for the https server, its throwaway CA).

    No cache cap: background eviction would interfere; the eviction pass is measured on its own.
    """
    return build_transfers(sessions, url, cache_dir, http=SafeHttp(UrlPolicy.trusting(trusted), tls=tls))


async def wire(url: URL, cache_dir: Path, trusted: list[str], tls: ssl.SSLContext | None = None) -> Wired:
    """Runs on the core loop: the engine's connections belong to the loop that made them."""
    engine = make_async_engine(url)
    sessions = make_async_session_factory(engine)
    return Wired(engine, sessions, make_transfers(sessions, url, cache_dir, trusted, tls))


async def add_asset(
    sessions: async_sessionmaker[AsyncSession], *, remote_url: str, sha256: str, size: int, **fields: Any
) -> int:
    async with sessions() as session, session.begin():
        user_id = await session.scalar(select(User.id).where(User.username == LOCAL_USERNAME))
        assert user_id is not None, "the initial migration seeds the local user"
        values: dict[str, Any] = {
            "media_type": MediaType.VIDEO,
            "provider_id": "sora",
            "remote_url": remote_url,
            "sha256": sha256,
            "file_size_bytes": size,
            "mime_type": "video/mp4",
            "upload_method": UploadMethod.GENERATED,
        }
        values.update(fields)
        asset = Asset(user_id=user_id, **values)
        session.add(asset)
        await session.flush()
        return asset.id


# -- 1. download throughput and RSS -----------------------------------------------------------------


@dataclass
class DownloadResults:
    ours_s: list[float] = field(default_factory=list)
    curl_s: list[float] = field(default_factory=list)
    curl_fsync_s: list[float] = field(default_factory=list)
    rss_growth_mib: list[float] = field(default_factory=list)


def run_ours(core: CoreLoop, wired: Wired, url: str, sha256: str, size: int) -> tuple[float, float]:
    """One ``ensure_local`` of a fresh asset with nothing cached: (seconds, RSS growth MiB)."""
    store = wired.transfers.store
    store.remove(sha256)
    asset_id = core.run(add_asset(wired.sessions, remote_url=url, sha256=sha256, size=size))
    with RssSampler() as rss:
        path, seconds = core.run(timed(wired.transfers.ensure_local(asset_id)))
    if path != store.object_path(sha256) or path.stat().st_size != size:
        raise RuntimeError(f"ensure_local returned {path}, not the verified object")
    store.remove(sha256)
    settle_disk()
    return seconds, rss.growth_mib


def run_curl(url: str, out: Path, size: int, extra: tuple[str, ...] = ()) -> tuple[float, float]:
    """``curl -s -o``: (seconds, seconds including an fsync of its output afterwards)."""
    start = time.perf_counter()
    subprocess.run(["curl", "-s", "-f", *extra, "-o", str(out), url], check=True)
    curl_s = time.perf_counter() - start
    fd = os.open(out, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    with_fsync = time.perf_counter() - start
    if out.stat().st_size != size:
        raise RuntimeError(f"curl wrote {out.stat().st_size} bytes, expected {size}")
    out.unlink()
    settle_disk()
    return curl_s, with_fsync


def settle_disk() -> None:
    """Untimed, after each run, for both contenders alike: commit the journal and give the disk time
    to process freeing the last 512 MiB (ext4 mounted with ``discard`` here), so that work does not
    land in the next contender's timed run (it hit whoever ran second: ours fsyncs, curl does not)."""
    os.sync()
    time.sleep(0.5)


def bench_download(
    core: CoreLoop,
    wired: Wired,
    server: FileServer,
    name: str,
    sha256: str,
    size: int,
    scratch: Path,
    runs: int,
    curl_extra: tuple[str, ...] = (),
) -> DownloadResults:
    url = server.url(name)
    out = scratch / "curl.out"
    results = DownloadResults()
    run_ours(core, wired, url, sha256, size)  # warm-up: connections, imports, page cache
    run_curl(url, out, size, curl_extra)
    mib = size / MIB
    for i in range(runs):
        # Alternate who goes first so slow drift (page cache, writeback) hits both alike.
        order = ("ours", "curl") if i % 2 == 0 else ("curl", "ours")
        for who in order:
            if who == "ours":
                seconds, growth = run_ours(core, wired, url, sha256, size)
                results.ours_s.append(seconds)
                results.rss_growth_mib.append(growth)
                say(
                    f"  run {i + 1}: ours {mib / seconds:7.1f} MiB/s  ({seconds:.2f} s, RSS +{growth:.1f} MiB)"
                )
            else:
                curl_s, fsync_s = run_curl(url, out, size, curl_extra)
                results.curl_s.append(curl_s)
                results.curl_fsync_s.append(fsync_s)
                say(
                    f"  run {i + 1}: curl {mib / curl_s:7.1f} MiB/s  ({curl_s:.2f} s; "
                    f"{mib / fsync_s:.1f} MiB/s with an fsync after)"
                )
    return results


def start_tls(core: CoreLoop, url: URL, served: Path, tmp: Path) -> tuple[FileServer, Wired]:
    """The same files over https (a throwaway CA from trustme), and a TransferService trusting it."""
    import trustme  # a test dependency, like the fake servers this bench borrows

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    server = FileServer(served, tls=(tmp / "server.pem", tmp / "server.pem"))
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, core.run(wire(url, tmp / "cache-tls", [server.base_url], tls=client))


def download_summary(
    results: DownloadResults, file_mib: int, prefix: str = ""
) -> tuple[float, float, dict[str, Any]]:
    """(ours MiB/s, curl MiB/s, JSON fields) from the medians of interleaved runs."""
    ours = file_mib / statistics.median(results.ours_s)
    curl = file_mib / statistics.median(results.curl_s)
    return (
        ours,
        curl,
        {
            f"{prefix}download_vs_curl": round(ours / curl, 3),
            f"{prefix}ours_mib_s": round(ours, 1),
            f"{prefix}curl_mib_s": round(curl, 1),
            f"{prefix}ours_samples_s": [round(s, 3) for s in results.ours_s],
            f"{prefix}curl_samples_s": [round(s, 3) for s in results.curl_s],
        },
    )


# -- 2. hit latency ---------------------------------------------------------------------------------

_PK_SELECT = text("SELECT id FROM assets WHERE id = :id")


async def hit_latencies(wired: Wired, asset_id: int) -> tuple[list[float], list[float]]:
    """(hit ms, primary-key SELECT ms), HIT_CALLS each, interleaved in blocks."""
    transfers, sessions = wired.transfers, wired.sessions

    async def hit() -> None:
        await transfers.get_asset_for_provider(asset_id, "sandbox")

    async def pk() -> None:
        async with sessions() as session:
            (await session.execute(_PK_SELECT, {"id": asset_id})).scalar_one()

    hits: list[float] = []
    pks: list[float] = []
    for _ in range(HIT_WARMUP):
        await hit()
        await pk()
    clock = time.perf_counter
    for _ in range(HIT_CALLS // HIT_BLOCK):
        for _ in range(HIT_BLOCK):
            start = clock()
            await hit()
            hits.append((clock() - start) * 1000)
        for _ in range(HIT_BLOCK):
            start = clock()
            await pk()
            pks.append((clock() - start) * 1000)
    return hits, pks


# -- 3. single-flight -------------------------------------------------------------------------------


async def dedup(url: URL, sessions: async_sessionmaker[AsyncSession], cache_dir: Path) -> dict[str, Any]:
    """100 concurrent pushes of one asset to a (fake) Pixverse; what the servers received."""
    import keyring

    from tests.fakes.http_server import FakeHttpServer
    from tests.fakes.pixverse import MEDIA_UPLOAD, FakePixverse
    from tests.memory_keyring import MemoryKeyring

    keyring.set_keyring(MemoryKeyring())
    keyring.set_password(KEYRING_SERVICE, "pixverse/bench", BENCH_KEY)
    body = (hashlib.sha256(b"pixsim-bench-dedup").digest() * 2048) * (DEDUP_BODY // 65536)
    cdn = "/cdn/dedup.mp4"
    async with FakeHttpServer() as server:
        FakePixverse(server, api_key=BENCH_KEY)
        server.add_file(cdn, body, content_type="video/mp4")
        async with sessions() as session, session.begin():
            user_id = await session.scalar(select(User.id).where(User.username == LOCAL_USERNAME))
            assert user_id is not None
            session.add(
                ProviderAccount(
                    user_id=user_id,
                    provider_id="pixverse",
                    label="bench",
                    keyring_ref="pixverse/bench",
                    base_url=server.base_url,
                )
            )
        transfers = make_transfers(sessions, url, cache_dir, [server.base_url])
        try:
            asset_id = await add_asset(
                sessions,
                remote_url=server.url(cdn),
                sha256=hashlib.sha256(body).hexdigest(),
                size=len(body),
            )
            refs, seconds = await timed(
                asyncio.gather(
                    *(transfers.get_asset_for_provider(asset_id, "pixverse") for _ in range(DEDUP_CALLERS))
                )
            )
        finally:
            await transfers.aclose()
            await transfers.http.aclose()
        return {
            "downloads": server.count("GET", cdn),
            "uploads": server.count("POST", MEDIA_UPLOAD),
            "distinct_refs": len({r.ref for r in refs}),
            "seconds": seconds,
        }


# -- 4. eviction ------------------------------------------------------------------------------------


def evict_content(i: int) -> bytes:
    """Entry i's bytes: its 8-byte big-endian number repeated (the SQL below builds the same)."""
    return i.to_bytes(8, "big") * (EVICT_FILE_BYTES // 8)


_EVICT_ROWS = text(
    """
    INSERT INTO cache_entries (sha256, size_bytes, created_at, last_accessed_at)
    SELECT encode(sha256(decode(repeat(lpad(to_hex(i), 16, '0'), :reps), 'hex')), 'hex'),
           :size, now(), now() - make_interval(secs => :n - i)
    FROM generate_series(0, :n - 1) AS i
    """
)


def make_evict_files(store: ContentStore, indices: range) -> list[str]:
    shas = []
    made: set[Path] = set()
    for i in indices:
        data = evict_content(i)
        sha = hashlib.sha256(data).hexdigest()
        path = store.object_path(sha)
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        path.write_bytes(data)
        shas.append(sha)
    return shas


async def clear_index(wired: Wired) -> None:
    store = wired.transfers.store
    async with wired.sessions() as session, session.begin():
        rows = (await session.execute(text("DELETE FROM cache_entries RETURNING sha256"))).scalars().all()
    for sha in rows:
        store.remove(sha)


async def insert_evict_rows(wired: Wired, n: int, first_sha: str) -> int:
    async with wired.sessions() as session, session.begin():
        await session.execute(_EVICT_ROWS, {"n": n, "reps": EVICT_FILE_BYTES // 8, "size": EVICT_FILE_BYTES})
        found = await session.scalar(
            text("SELECT count(*) FROM cache_entries WHERE sha256 = :s"), {"s": first_sha}
        )
        total = await session.scalar(text("SELECT count(*) FROM cache_entries"))
        await session.execute(text("ANALYZE cache_entries"))  # as autovacuum would after such growth
    if found != 1:
        raise RuntimeError("the SQL-built sha256 of entry 0 does not match the file's")
    return int(total or 0)


# -- 5. GUI latency ---------------------------------------------------------------------------------


@dataclass
class GuiResults:
    idle_ms: list[float]
    busy_ms: list[float]
    download_s: float
    events_delivered: int


def gui_latency(core: CoreLoop, wired: Wired, url: str, sha256: str, size: int, idle_s: float) -> GuiResults:
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])

    class EventSink(QObject):
        """Progress events reach the GUI thread through a queued signal, as the UI receives them."""

        delivered = Signal(object)

        def __init__(self) -> None:
            super().__init__()
            self.count = 0
            self.delivered.connect(self.on_event, Qt.ConnectionType.QueuedConnection)

        @Slot(object)
        def on_event(self, event: object) -> None:
            self.count += 1

    def measure(done: Callable[[], bool]) -> list[float]:
        """Latency of each 1 ms tick: the interval since the previous tick minus 1 ms."""
        ticks: list[float] = []
        timer = QTimer()
        timer.setTimerType(Qt.TimerType.PreciseTimer)
        timer.setInterval(GUI_TICK_MS)

        def tick() -> None:
            ticks.append(time.perf_counter())
            if done():
                timer.stop()
                app.quit()

        timer.timeout.connect(tick)
        timer.start()
        app.exec()
        gaps = [max(0.0, (b - a) * 1000 - GUI_TICK_MS) for a, b in itertools.pairwise(ticks)]
        return gaps[5:]  # the first ticks include the loop starting up

    idle_until = time.perf_counter() + idle_s
    idle = measure(lambda: time.perf_counter() >= idle_until)

    sink = EventSink()

    def forward(event: TransferEvent) -> None:
        sink.delivered.emit(event)

    unsubscribe = wired.transfers.events.subscribe(forward)
    store = wired.transfers.store
    store.remove(sha256)
    asset_id = core.run(add_asset(wired.sessions, remote_url=url, sha256=sha256, size=size))
    future: concurrent.futures.Future[tuple[Path, float]] = core.submit(
        timed(wired.transfers.ensure_local(asset_id))
    )
    try:
        busy = measure(future.done)
        path, seconds = future.result()
    finally:
        unsubscribe()
    app.processEvents()
    if path.stat().st_size != size:
        raise RuntimeError("the GUI-run download did not produce the file")
    store.remove(sha256)
    return GuiResults(idle, busy, seconds, sink.count)


# -- main -------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="timed download runs of each kind (default 3)")
    parser.add_argument("--file-mib", type=int, default=512, help="size of the downloaded file (default 512)")
    parser.add_argument("--skip-gui", action="store_true", help="skip the Qt event-latency measurement")
    args = parser.parse_args()
    if shutil.which("curl") is None:
        parser.error("curl is not installed")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # tests.fakes, for the fake Pixverse upload endpoint

    summary: dict[str, Any] = {"runs": args.runs, "file_mib": args.file_mib, "cpus": os.cpu_count()}
    size = args.file_mib * MIB
    tmp = Path(tempfile.mkdtemp(prefix="pixsim-xfer-"))
    served, scratch, cache_dir = tmp / "served", tmp / "scratch", tmp / "cache"
    for d in (served, scratch):
        d.mkdir()
    server: FileServer | None = None
    database: EmbeddedDatabase | None = None
    core = CoreLoop("bench-core").start()
    wired: Wired | None = None
    try:
        with stage(f"setup: {args.file_mib} MiB file, file server, embedded PostgreSQL"):
            big_sha = write_random_file(served / "big.bin", args.file_mib)
            small_sha = write_random_file(served / "small.bin", 1)
            server = FileServer(served)
            database = EmbeddedDatabase(tmp / "data")
            url = database.start().url
            migrate.upgrade(url, "head")
            wired = core.run(wire(url, cache_dir, [server.base_url]))
            say(f"   file server {server.base_url} (pid separate), cache {cache_dir}")

        with stage(f"download {args.file_mib} MiB: ensure_local vs curl -o, {args.runs} runs interleaved"):
            dl = bench_download(core, wired, server, "big.bin", big_sha, size, scratch, args.runs)
        ours, curl, summary_dl = download_summary(dl, args.file_mib)
        curl_fsync = args.file_mib / statistics.median(dl.curl_fsync_s)
        summary |= summary_dl | {
            "curl_plus_fsync_mib_s": round(curl_fsync, 1),
            "download_vs_curl_plus_fsync": round(ours / curl_fsync, 3),
            "rss_growth_mib": round(max(dl.rss_growth_mib), 1),
            "rss_growth_samples_mib": [round(g, 1) for g in dl.rss_growth_mib],
        }
        say(
            f"   median: ours {ours:.1f} MiB/s, curl {curl:.1f} MiB/s -> ratio {ours / curl:.2f} "
            f"(curl+fsync {curl_fsync:.1f} MiB/s -> ratio {ours / curl_fsync:.2f}); "
            f"peak RSS growth {max(dl.rss_growth_mib):.1f} MiB"
        )

        with stage(
            f"download {args.file_mib} MiB over TLS (loopback https): ensure_local vs curl, {args.runs} runs"
        ):
            tls_server, tls_wired = start_tls(core, url, served, tmp)
            try:
                tls_dl = bench_download(
                    core,
                    tls_wired,
                    tls_server,
                    "big.bin",
                    big_sha,
                    size,
                    scratch,
                    args.runs,
                    curl_extra=("--cacert", str(tmp / "ca.pem")),
                )
            finally:
                core.run(tls_wired.aclose(), timeout=30)
                tls_server.stop()
        tls_ours, tls_curl, summary_tls = download_summary(tls_dl, args.file_mib, prefix="tls_")
        summary |= summary_tls
        say(
            f"   median over TLS: ours {tls_ours:.1f} MiB/s, curl {tls_curl:.1f} MiB/s -> ratio "
            f"{tls_ours / tls_curl:.2f}"
        )

        with stage(f"cache hits: {HIT_CALLS} get_asset_for_provider vs {HIT_CALLS} primary-key SELECTs"):
            hit_asset = core.run(
                add_asset(wired.sessions, remote_url=server.url("small.bin"), sha256=small_sha, size=MIB)
            )
            core.run(wired.transfers.get_asset_for_provider(hit_asset, "sandbox"))  # the one push
            hits, pks = core.run(hit_latencies(wired, hit_asset))
            if server.count("small.bin") != 1:
                raise RuntimeError("the hit benchmark went to the network more than once")
        summary |= {
            "hit_p50_ms": round(percentile(hits, 50), 3),
            "hit_p99_ms": round(percentile(hits, 99), 3),
            "hit_max_ms": round(max(hits), 3),
            "baseline_pk_select_p50_ms": round(percentile(pks, 50), 3),
            "baseline_pk_select_p99_ms": round(percentile(pks, 99), 3),
        }
        say(
            f"   hit p50 {summary['hit_p50_ms']} ms, p99 {summary['hit_p99_ms']} ms, max "
            f"{summary['hit_max_ms']} ms; pk SELECT p50 {summary['baseline_pk_select_p50_ms']} ms, "
            f"p99 {summary['baseline_pk_select_p99_ms']} ms"
        )

        with stage(f"single-flight: {DEDUP_CALLERS} concurrent pushes of one asset to Pixverse (fake)"):
            flight = core.run(dedup(url, wired.sessions, cache_dir))
        summary |= {
            "dedup_downloads": flight["downloads"],
            "dedup_uploads": flight["uploads"],
            "dedup_distinct_refs": flight["distinct_refs"],
            "dedup_s": round(flight["seconds"], 3),
        }
        say(
            f"   server saw {flight['downloads']} download(s), {flight['uploads']} upload(s); "
            f"{flight['distinct_refs']} distinct reference(s); {flight['seconds']:.2f} s"
        )

        with stage(f"eviction: {EVICT_ENTRIES} entries of {EVICT_FILE_BYTES} B, 1 % then 10 % over the cap"):
            core.run(clear_index(wired))
            t0 = time.perf_counter()
            shas = make_evict_files(wired.transfers.store, range(EVICT_ENTRIES))
            # Baseline: as many files of the same size and layout, outside the store, just unlinked.
            plain = ContentStore(tmp / "unlink-baseline")
            plain_shas = make_evict_files(plain, range(EVICT_ENTRIES, EVICT_ENTRIES + EVICT_ENTRIES // 10))
            t1 = time.perf_counter()
            total = core.run(insert_evict_rows(wired, EVICT_ENTRIES, shas[0]))
            os.sync()  # a cache written long ago: no pending writeback distorts the unlinks
            t2 = time.perf_counter()
            say(
                f"   prepared {len(shas)} files in {t1 - t0:.1f} s, {total} rows (and sync) in {t2 - t1:.2f} s"
            )
            start = time.perf_counter()
            for sha in plain_shas:
                plain.object_path(sha).unlink()
            unlink_s = time.perf_counter() - start
            store = wired.transfers.store
            # Pass 1, the everyday case: the cache is 1 % over its cap (1,000 of 100,000 files go).
            one_pct = EVICT_ENTRIES // 100
            cap = (EVICT_ENTRIES - one_pct) * EVICT_FILE_BYTES
            report, evict_s = core.run(timed(wired.transfers.evict(cap)))
            # Pass 2, a big cut: a further 10 % (10,000 files); bounded by the filesystem's unlink speed.
            ten_pct = EVICT_ENTRIES // 10
            cap_10 = (EVICT_ENTRIES - one_pct - ten_pct) * EVICT_FILE_BYTES
            report_10, evict_10_s = core.run(timed(wired.transfers.evict(cap_10)))
            cut = one_pct + ten_pct
            gone = sum(1 for sha in shas[:cut] if not store.has(sha))
            kept = sum(1 for sha in shas[cut:] if store.has(sha))
        summary |= {
            "evict_100k_s": round(evict_s, 3),
            "evicted": report.evicted,
            "evict_100k_10pct_s": round(evict_10_s, 3),
            "evicted_10pct": report_10.evicted,
            "baseline_unlink_10pct_s": round(unlink_s, 3),
        }
        say(
            f"   1 % over the cap: evicted {report.evicted} in {evict_s:.3f} s; a further 10 %: evicted "
            f"{report_10.evicted} in {evict_10_s:.3f} s (baseline: plainly unlinking {len(plain_shas)} such "
            f"files took {unlink_s:.3f} s); oldest {cut} gone: {gone}, the rest kept: {kept}"
        )

        if args.skip_gui:
            summary |= {
                "gui_latency_p99_ms": None,
                "gui_latency_max_ms": None,
                "gui_latency_idle_p99_ms": None,
            }
        else:
            with stage("GUI latency: 1 ms QTimer on the Qt main thread, idle then during a download"):
                idle_s = max(2.0, statistics.median(dl.ours_s))
                gui = gui_latency(core, wired, server.url("big.bin"), big_sha, size, idle_s)
            summary |= {
                "gui_latency_p99_ms": round(percentile(gui.busy_ms, 99), 2),
                "gui_latency_max_ms": round(max(gui.busy_ms), 2),
                "gui_latency_p50_ms": round(percentile(gui.busy_ms, 50), 3),
                "gui_latency_idle_p99_ms": round(percentile(gui.idle_ms, 99), 2),
                "gui_latency_idle_max_ms": round(max(gui.idle_ms), 2),
                "gui_ticks": len(gui.busy_ms),
                "gui_download_mib_s": round(args.file_mib / gui.download_s, 1),
            }
            say(
                f"   during download ({gui.download_s:.2f} s, {len(gui.busy_ms)} ticks, "
                f"{gui.events_delivered} progress events delivered): p99 {summary['gui_latency_p99_ms']} ms, "
                f"max {summary['gui_latency_max_ms']} ms; idle p99 {summary['gui_latency_idle_p99_ms']} ms, "
                f"max {summary['gui_latency_idle_max_ms']} ms"
            )
    finally:
        if wired is not None:
            with contextlib.suppress(Exception):
                core.run(wired.aclose(), timeout=30)
        core.stop()
        if server is not None:
            server.stop()
        if database is not None:
            database.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
