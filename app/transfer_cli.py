"""``pixsim push`` and ``pixsim cache``: the transfer engine from a terminal, with a progress bar."""

from __future__ import annotations

import argparse

from sqlalchemy.engine import URL

from app.cli_support import run_on_database
from app.progress import ProgressBar
from app.services import build_services
from app.settings import Settings
from core.text import human_bytes


def run_transfer_command(args: argparse.Namespace, settings: Settings) -> int:
    return run_on_database(settings, lambda url: _run(args, settings, url))


async def _run(args: argparse.Namespace, settings: Settings, url: URL) -> int:
    services = build_services(settings, url)
    try:
        transfers = services.transfers
        if args.command == "push":
            transfers.events.subscribe(ProgressBar())
            ref = await transfers.get_asset_for_provider(args.asset_id, args.provider, args.account)
            expiry = f", expires {ref.expires_at:%Y-%m-%d %H:%M %Z}" if ref.expires_at else ""
            origin = " (made there: no upload needed)" if ref.is_origin else ""
            print(f"asset {args.asset_id} on {ref.provider_id}: {ref.kind.value} {ref.ref}{expiry}{origin}")
            return 0
        if args.cache_command == "stats":
            stats = await transfers.stats()
            print(f"cache folder:     {transfers.store.root}")
            print(f"files:            {stats.entries:,} ({stats.leased_entries:,} in use)")
            print(f"stored:           {human_bytes(stats.total_bytes)}")
            print(f"library storage:  {human_bytes(stats.library_bytes)} (only copy: never evicted)")
            print(f"evictable cache:  {human_bytes(stats.evictable_bytes)}")
            print(f"size cap:         {human_bytes(stats.cap_bytes)}")
            return 0
        target = args.target if args.target is not None else transfers.cache_cap_bytes or 0
        report = await transfers.evict(target)
        over = report.remaining_bytes > target
        print(
            f"evicted {report.evicted:,} files, freed {human_bytes(report.freed_bytes)}; "
            f"{human_bytes(report.remaining_bytes)} remain"
            + (" (the rest is in use or the only copy of an asset)" if over else "")
        )
        return 0
    finally:
        await services.aclose()
