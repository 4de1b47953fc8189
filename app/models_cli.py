"""``pixsim models list|install NAME|remove NAME``: the embedding models' files in the data directory."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, TextIO

from app.cli_support import stop_on_signals
from app.progress import ProgressBar
from app.settings import Settings
from core.embeddings import models
from core.errors import PixSimError, TransferCancelled
from core.net.http import SafeHttp
from core.text import human_bytes
from core.transfer.events import Phase, TransferEvent


def add_parsers(sub: Any) -> None:
    parser = sub.add_parser(
        "models",
        help="install or remove the CLIP model (text search, classification suggestions)",
        description="The visual signature embedder needs no files. CLIP's files (about 600 MB) are "
        "downloaded only when you install them, verified, and kept in the data directory.",
    )
    actions = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    actions.add_parser("list", help="show the models and whether they are installed")
    install = actions.add_parser("install", help="download and verify a model's files")
    install.add_argument("name", metavar="NAME", help=f"one of: {', '.join(sorted(models.REGISTRY))}")
    remove = actions.add_parser("remove", help="delete a model's files")
    remove.add_argument("name", metavar="NAME")


def run_models_command(args: argparse.Namespace, settings: Settings) -> int:
    """0: done; 1: nothing to remove; 2: an error; 130: cancelled."""
    try:
        if args.models_command == "list":
            print_models(settings, sys.stdout)
            return 0
        if args.models_command == "install":
            return asyncio.run(install(models.spec_for(args.name), settings, ProgressBar(), sys.stdout))
        if args.models_command == "remove":
            if models.remove_model(args.name, settings.data_dir):
                print(f"removed {models.spec_for(args.name).title}")
                return 0
            print(f"{args.name} is not installed")
            return 1
    except PixSimError as exc:
        print(f"pixsim: error: {exc}", file=sys.stderr)
        return 2
    raise AssertionError(args.models_command)


def print_models(settings: Settings, out: TextIO) -> None:
    print("visual-signature  built in (no files)", file=out)
    for status in models.model_status(settings.data_dir):
        spec = status.spec
        if status.installed:
            line = f"{spec.name:<16}  installed, {human_bytes(status.size_on_disk)}  {status.path}"
            if status.unverified_files:
                line += f"  (not verified by a published hash: {', '.join(status.unverified_files)})"
        else:
            size = f" (about {human_bytes(spec.download_size)} to download)" if spec.download_size else ""
            line = f"{spec.name:<16}  not installed{size}; run `pixsim models install {spec.name}`"
        print(f"{line}   {spec.title}", file=out)


async def install(
    spec: models.ModelSpec, settings: Settings, bar: ProgressBar, out: TextIO, http: SafeHttp | None = None
) -> int:
    """Install with a progress bar; Ctrl-C or SIGTERM cancels and leaves nothing behind."""
    own_http = http is None
    client = http or SafeHttp()

    def event(phase: Phase, done: int = 0, total: int | None = None, message: str | None = None) -> None:
        bar(TransferEvent(spec.name, None, None, phase, done, total, message))

    def on_progress(progress: models.InstallProgress) -> None:
        event(Phase.DOWNLOADING, progress.bytes_done, progress.bytes_total)

    try:
        with stop_on_signals() as cancel:
            folder = await models.install_model(
                spec.name, settings.data_dir, client, on_progress, cancel, spec=spec
            )
    except TransferCancelled as exc:
        event(Phase.CANCELLED, message=str(exc))
        return 130
    except PixSimError as exc:
        event(Phase.FAILED, message=str(exc))
        return 2
    finally:
        if own_http:
            await client.aclose()
    event(Phase.DONE, message=f"{spec.title} installed in {folder}")
    unverified = [f.name for f in spec.files if f.sha256 is None]
    if unverified:
        print(
            f"note: {', '.join(unverified)} have no published hash to check; their hashes as downloaded are in {folder / 'manifest.json'}",
            file=out,
        )
    return 0
