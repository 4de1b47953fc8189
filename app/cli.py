"""The ``pixsim`` command: the desktop app by default, plus database and diagnostic subcommands."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from app.logs import configure_logging
from app.settings import Settings, describe, load_settings
from core.errors import PixSimError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixsim",
        description="PixSim: one library for every AI-generated asset, usable on every provider.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to the terminal")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="open the desktop app (the default)")
    run.add_argument("--quit-after-shown", action="store_true", help=argparse.SUPPRESS)

    db = sub.add_parser("db", help="inspect or migrate the library database")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = db_sub.add_parser("upgrade", help="migrate the schema up (to the newest by default)")
    up.add_argument("revision", nargs="?", default="head")
    down = db_sub.add_parser("downgrade", help="migrate the schema down, e.g. '-1' or 'base'")
    down.add_argument("revision")
    db_sub.add_parser("current", help="print the schema revision of the database")
    db_sub.add_parser("history", help="list the schema revisions this PixSim knows")
    rev = db_sub.add_parser("revision", help="(developers) write a new migration from the models")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--autogenerate", action="store_true")

    push = sub.add_parser("push", help="make an asset available on a provider (download and upload once)")
    push.add_argument("asset_id", type=int, metavar="ASSET_ID")
    push.add_argument("--to", required=True, dest="provider", metavar="PROVIDER")
    push.add_argument("--account", help="the account's name, when the provider has several")

    cache = sub.add_parser("cache", help="the local cache of downloaded files")
    cache_sub = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    cache_sub.add_parser("stats", help="how much is stored, and how much of it may be evicted")
    evict = cache_sub.add_parser("evict", help="evict least recently used files down to the size cap")
    evict.add_argument("--to", dest="target", type=_size, help="evict down to this size (e.g. 10G, 500M)")

    sub.add_parser("info", help="print settings, paths and the database in use")

    from app import demo_cli, import_cli, index_cli, jobs_cli, models_cli, segments_cli, story_cli

    import_cli.add_parsers(sub)
    demo_cli.add_parsers(sub)
    jobs_cli.add_parsers(sub)
    story_cli.add_parsers(sub)
    models_cli.add_parsers(sub)
    segments_cli.add_parsers(sub)
    index_cli.add_parsers(sub)
    return parser


def _size(text: str) -> int:
    units = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = value[-1] if value and value[-1] in units else ""
    try:
        number = float(value[: len(value) - len(unit)])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 500M, 20G)") from None
    return int(number * units[unit])


def main(argv: Sequence[str] | None = None) -> int:
    started_at = time.perf_counter()
    args = _parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        settings = load_settings()
        if args.command in (None, "run"):
            from app.gui import run_gui

            return run_gui(
                settings, quit_after_shown=getattr(args, "quit_after_shown", False), started_at=started_at
            )
        if args.command == "db":
            return _db(args, settings)
        if args.command == "info":
            return _info(settings)
        if args.command in ("push", "cache"):
            from app.transfer_cli import run_transfer_command

            return run_transfer_command(args, settings)
        if args.command == "demo":
            from app.demo_cli import run_demo_command

            return run_demo_command(args, settings)
        if args.command == "import":
            from app.import_cli import run_import_command

            return run_import_command(args, settings)
        if args.command in ("generate", "jobs", "worker", "accounts", "providers"):
            from app.jobs_cli import run_jobs_command

            return run_jobs_command(args, settings)
        if args.command == "models":
            from app.models_cli import run_models_command

            return run_models_command(args, settings)
        if args.command == "segments":
            from app.segments_cli import run_segments_command

            return run_segments_command(args, settings)
        if args.command == "index":
            from app.index_cli import run_index_command

            return run_index_command(args, settings)
        if args.command == "story":
            from app.story_cli import run_story_command

            return run_story_command(args, settings)
    except PixSimError as exc:
        print(f"pixsim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    raise AssertionError(args.command)


def _db(args: argparse.Namespace, settings: Settings) -> int:
    from alembic import command

    from app.bootstrap import open_database
    from core.db import migrate

    if args.db_command == "history":
        for revision, doc in migrate.history():
            print(f"{revision}  {doc}")
        return 0
    handle = open_database(settings, migrate_schema=False)
    try:
        if args.db_command == "upgrade":
            migrate.upgrade(handle.url, args.revision)
            print(f"database at {migrate.current_revision(handle.url)}")
        elif args.db_command == "downgrade":
            migrate.downgrade(handle.url, args.revision)
            print(f"database at {migrate.current_revision(handle.url) or 'base (empty)'}")
        elif args.db_command == "current":
            current = migrate.current_revision(handle.url)
            head = migrate.head_revision()
            state = "up to date" if current == head else f"head is {head}"
            print(f"{current or 'base (empty)'} ({state})")
            print(f"database: {handle.description}")
        elif args.db_command == "revision":
            command.revision(
                migrate.alembic_config(handle.url), message=args.message, autogenerate=args.autogenerate
            )
    finally:
        handle.close()
    return 0


def _info(settings: Settings) -> int:
    data = describe(settings)
    data["settings_file"] = str(settings.settings_file)
    data["database"] = "embedded" if settings.uses_embedded_database else "external"
    print(json.dumps(data, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
