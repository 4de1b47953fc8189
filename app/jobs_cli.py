"""``pixsim generate``, ``jobs``, ``worker``, ``accounts`` and ``providers``: generation from a terminal."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import time
from typing import Any, TextIO

from sqlalchemy.engine import URL

from app.cli_support import run_on_database, stop_on_signals
from app.progress import ProgressBar
from app.services import Services, build_services
from app.settings import Settings
from core.errors import ConfigError, InvalidParameter
from core.jobs.service import JobEvent, JobSummary
from core.providers.accounts import AccountInfo
from core.providers.base import find_operation
from core.providers.spec import Operation, ParamKind
from core.transfer.events import TransferEvent


def add_parsers(sub: Any) -> None:
    gen = sub.add_parser(
        "generate",
        help="create a generation job and wait for its result",
        description="Examples:  pixsim generate --provider sandbox --op text_to_video --param prompt='a cat'\n"
        "           pixsim generate --provider pixverse --op video_extend --input 123 --param prompt='rain'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gen.add_argument("--provider", required=True, metavar="PROVIDER")
    gen.add_argument("--op", required=True, metavar="OPERATION", help="see `pixsim providers`")
    gen.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an operation parameter (repeatable)",
    )
    gen.add_argument(
        "--input",
        action="append",
        type=int,
        default=[],
        metavar="ASSET_ID",
        help="an input asset, filling the operation's input parameters in order (repeatable)",
    )
    gen.add_argument("--account", help="the account's name, when the provider has several")
    gen.add_argument("--no-wait", action="store_true", help="queue the job and return (a worker runs it)")

    jobs = sub.add_parser("jobs", help="list, inspect, cancel or retry generation jobs")
    jobs.add_argument("--active", action="store_true", help="only jobs that have not finished")
    jobs.add_argument("--limit", type=int, default=30)
    jobs_sub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION")
    for name, text in (
        ("show", "everything about one job"),
        ("cancel", "cancel a job"),
        ("retry", "queue a failed job again"),
    ):
        action = jobs_sub.add_parser(name, help=text)
        action.add_argument("job_id", type=int, metavar="JOB_ID")

    worker = sub.add_parser("worker", help="run generation jobs headless until stopped (Ctrl-C)")
    worker.add_argument("--concurrency", type=int, help="jobs worked at once (default: the setting)")

    accounts = sub.add_parser("accounts", help="provider accounts (API keys live in the OS keyring)")
    acc_sub = accounts.add_subparsers(dest="accounts_command", metavar="ACTION", required=True)
    acc_sub.add_parser("list", help="list accounts and their last check")
    add = acc_sub.add_parser("add", help="add an account; the key is asked for, or read from stdin")
    add.add_argument("provider", metavar="PROVIDER")
    add.add_argument("label", metavar="NAME")
    add.add_argument("--base-url", help="another API address (a ComfyUI server, a proxy)")
    add.add_argument("--key-stdin", action="store_true", help="read the API key from standard input")
    add.add_argument("--check", action="store_true", help="check the key right away")
    edit = acc_sub.add_parser("edit", help="rename, re-key, enable or disable an account")
    edit.add_argument("account", metavar="ACCOUNT", help="an id, or PROVIDER/NAME")
    edit.add_argument("--label")
    edit.add_argument("--base-url")
    edit.add_argument("--key-stdin", action="store_true", help="read a new API key from standard input")
    edit.add_argument("--enable", dest="enabled", action="store_true", default=None)
    edit.add_argument("--disable", dest="enabled", action="store_false")
    for name, text in (("remove", "remove an account and its key"), ("check", "check that the key works")):
        action = acc_sub.add_parser(name, help=text)
        action.add_argument("account", metavar="ACCOUNT", help="an id, or PROVIDER/NAME")

    providers = sub.add_parser("providers", help="the providers installed and what they can make")
    providers.add_argument("--json", action="store_true", help="the full parameter specifications as JSON")


def run_jobs_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "providers":
        return _providers(args)
    key = None
    if getattr(args, "key_stdin", False):
        key = sys.stdin.readline().strip() or None
    elif args.command == "accounts" and args.accounts_command == "add" and sys.stdin.isatty():
        key = _ask_key(args.provider)
    return run_on_database(settings, lambda url: _run(args, settings, url, key))


async def _run(args: argparse.Namespace, settings: Settings, url: URL, key: str | None) -> int:
    services = build_services(settings, url)
    try:
        if args.command == "generate":
            return await _generate(args, services)
        if args.command == "jobs":
            return await _jobs(args, services)
        if args.command == "worker":
            return await _worker(args, services)
        return await _accounts(args, services, key)
    finally:
        await services.aclose()


# -- generate ------------------------------------------------------------------------------------


def _parse_params(pairs: list[str], inputs: list[int], operation: Operation) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidParameter(f"--param needs KEY=VALUE, got {pair!r}.")
        params[name.strip()] = value
    slots = [
        p
        for p in operation.input_params
        if p.kind in (ParamKind.ASSET, ParamKind.ASSETS) and p.name not in params
    ]
    remaining = list(inputs)
    for param in slots:
        if not remaining:
            break
        if param.kind is ParamKind.ASSET:
            params[param.name] = remaining.pop(0)
        else:
            params[param.name], remaining = remaining, []
    if remaining:
        names = ", ".join(p.name for p in operation.input_params) or "none"
        raise InvalidParameter(
            f"{operation.label} takes fewer inputs than given ({len(inputs)}); its input parameters: {names}."
        )
    return params


async def _generate(args: argparse.Namespace, services: Services) -> int:
    adapter = services.registry.generator(args.provider)
    operation = find_operation(adapter, args.op)
    params = _parse_params(args.param, args.input, operation)
    job = await services.jobs.create(args.provider, operation.id, params, account=args.account)
    print(f"job {job.id}: {adapter.display_name} {operation.label}")
    if args.no_wait:
        print("queued; `pixsim worker` or the app will run it (`pixsim jobs` shows where it stands)")
        return 0
    return await _wait_for(services, job.id)


async def _wait_for(services: Services, job_id: int) -> int:
    line = JobLine(job_id)
    unsubscribe = services.jobs.events.subscribe(line)
    services.transfers.events.subscribe(_TransferLine(job_id))
    stop = asyncio.Event()
    runner = asyncio.ensure_future(services.runner.run(stop))
    try:
        while True:
            job = await services.jobs.get(job_id)
            if job.status.is_terminal:
                break
            if runner.done():
                runner.result()  # re-raise what stopped it
            await asyncio.sleep(0.3)
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(
            f"\nstopped waiting; job {job_id} stays queued and resumes with `pixsim worker` or the app",
            file=sys.stderr,
        )
        return 130
    finally:
        unsubscribe()
        stop.set()
        await asyncio.gather(runner, return_exceptions=True)
    line.finish(job)
    if job.status.value == "succeeded":
        ids = ", ".join(str(a) for a in job.result_asset_ids)
        print(f"job {job_id} succeeded: new asset {ids}")
        return 0
    print(f"job {job_id} {job.status.value}: {job.error_message or ''}".rstrip(), file=sys.stderr)
    return 1


class JobLine:
    """One line per job that redraws on a terminal (status and progress), plain lines otherwise."""

    def __init__(self, job_id: int, stream: TextIO | None = None) -> None:
        self._job_id = job_id
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._last = ""
        self._started = time.monotonic()

    def __call__(self, event: JobEvent) -> None:
        if event.job_id != self._job_id:
            return
        filled = int(event.progress * 20)
        bar = "#" * filled + "." * (20 - filled)
        elapsed = time.monotonic() - self._started
        text = f"{event.status.value:<11} [{bar}] {event.progress * 100:3.0f}%  {elapsed:5.1f} s"
        if event.message:
            text += f"  {event.message}"
        if self._tty:
            self._stream.write("\r" + text[:110].ljust(len(self._last)))
        elif text.split("[")[0] != self._last.split("[")[0] or event.message:
            self._stream.write(text + "\n")
        self._stream.flush()
        self._last = text[:110]

    def finish(self, job: JobSummary) -> None:
        if self._tty and self._last:
            self._stream.write("\n")
            self._stream.flush()


class _TransferLine:
    """Byte progress of the uploads and downloads a job causes, through the shared progress bar."""

    def __init__(self, job_id: int) -> None:
        self._bar = ProgressBar()
        self._job_id = job_id

    def __call__(self, event: TransferEvent) -> None:
        if event.job_id in (None, self._job_id) and event.bytes_total and event.bytes_total > 1 << 20:
            self._bar(event)


# -- jobs, worker ----------------------------------------------------------------------------------


async def _jobs(args: argparse.Namespace, services: Services) -> int:
    if args.jobs_command is None:
        rows = await services.jobs.list(limit=args.limit, active_only=args.active)
        if not rows:
            print(
                "no jobs yet: try `pixsim generate --provider sandbox --op text_to_video --param prompt='a cat'`"
            )
            return 0
        print(f"{'ID':>5}  {'STATUS':<11} {'PROVIDER':<10} {'OPERATION':<16} {'PROG':>4}  RESULT / REASON")
        for job in rows:
            result = ", ".join(f"asset {a}" for a in job.result_asset_ids) or (job.error_message or "")
            print(
                f"{job.id:>5}  {job.status.value:<11} {job.provider_id:<10} {job.operation:<16} "
                f"{job.progress * 100:3.0f}%  {result[:70]}"
            )
        return 0
    if args.jobs_command == "show":
        job = await services.jobs.get(args.job_id)
        data = {
            "id": job.id,
            "provider": job.provider_id,
            "account_id": job.account_id,
            "operation": job.operation,
            "status": job.status.value,
            "progress": job.progress,
            "params": job.params,
            "provider_job_id": job.provider_job_id,
            "attempts": job.attempts,
            "error": {"code": job.error_code, "message": job.error_message} if job.error_message else None,
            "created_at": job.created_at.isoformat(),
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            "result_asset_ids": list(job.result_asset_ids),
        }
        print(json.dumps(data, indent=2))
        return 0
    if args.jobs_command == "cancel":
        job = await services.jobs.cancel(args.job_id)
        asked = await services.runner.cancel_at_provider(
            job.id, job.provider_id, job.account_id, job.provider_job_id, job.operation, job.params
        )
        print(f"job {job.id} cancelled" + (" (the provider was asked to stop it)" if asked else ""))
        return 0
    job = await services.jobs.retry(args.job_id)
    print(f"job {args.job_id} queued again as job {job.id}")
    return 0


async def _worker(args: argparse.Namespace, services: Services) -> int:
    if args.concurrency:
        services.runner.concurrency = args.concurrency

    def show(event: JobEvent) -> None:
        note = f"  {event.message}" if event.message else ""
        results = f"  assets {', '.join(map(str, event.result_asset_ids))}" if event.result_asset_ids else ""
        print(
            f"job {event.job_id}: {event.status.value} {event.progress * 100:3.0f}%{note}{results}",
            flush=True,
        )

    services.jobs.events.subscribe(show)
    print(f"worker {services.runner.worker_id} running jobs; Ctrl-C stops it", flush=True)
    with stop_on_signals() as stop:
        await services.runner.run(stop)
    print("worker stopped; unfinished jobs resume with the next worker or the app", flush=True)
    return 0


# -- accounts, providers ---------------------------------------------------------------------------


def _ask_key(provider_id: str) -> str | None:
    return getpass.getpass(f"API key for {provider_id} (not shown; empty for none): ").strip() or None


async def _account_id(services: Services, ref: str) -> int:
    if ref.isdigit():
        return int(ref)
    provider, sep, label = ref.partition("/")
    if not sep:
        raise ConfigError(f"Name an account by its id or as PROVIDER/NAME, not {ref!r}.")
    return (await services.accounts.find(provider, label)).id


def _account_line(info: AccountInfo) -> str:
    if info.last_check_ok is None:
        check = "not checked"
    else:
        check = ("ok: " if info.last_check_ok else "FAILED: ") + (info.last_check_message or "")
    key = "key in keyring" if info.has_key else "no key"
    state = "" if info.enabled else " (disabled)"
    base = f"  {info.base_url}" if info.base_url else ""
    return f"{info.id:>4}  {info.provider_id:<10} {info.label:<16} {key:<15} {check}{state}{base}"


async def _accounts(args: argparse.Namespace, services: Services, key: str | None) -> int:
    accounts = services.accounts
    command = args.accounts_command
    if command == "list":
        rows = await accounts.list()
        if not rows:
            print("no accounts yet: `pixsim accounts add PROVIDER NAME` (Sandbox needs none)")
        for info in rows:
            print(_account_line(info))
        return 0
    if command == "add":
        info = await accounts.add(args.provider, args.label, api_key=key, base_url=args.base_url)
        print(f"added {info.provider_id} account '{info.label}' (id {info.id})")
        if args.check:
            info = await accounts.check(info.id)
            print(_account_line(info))
            return 0 if info.last_check_ok else 1
        return 0
    account_id = await _account_id(services, args.account)
    if command == "edit":
        info = await accounts.edit(
            account_id, label=args.label, api_key=key, base_url=args.base_url, enabled=args.enabled
        )
        print(_account_line(info))
        return 0
    if command == "remove":
        info = await accounts.remove(account_id)
        print(f"removed {info.provider_id} account '{info.label}' and its key")
        return 0
    print(f"checking account {account_id}...", file=sys.stderr)
    info = await accounts.check(account_id)
    print(_account_line(info))
    return 0 if info.last_check_ok else 1


def _providers(args: argparse.Namespace) -> int:
    from app.services import builtin_providers
    from core.providers.base import SupportsGenerate

    registry = builtin_providers()
    if args.json:
        data = []
        for adapter in registry.all():
            ops = adapter.operations() if isinstance(adapter, SupportsGenerate) else []
            data.append(
                {
                    "id": adapter.provider_id,
                    "name": adapter.display_name,
                    "description": adapter.description,
                    "requires_account": adapter.requires_account,
                    "operations": [op.to_json() for op in ops],
                }
            )
        print(json.dumps(data, indent=2))
        return 0
    for adapter in registry.all():
        account = "needs an account" if adapter.requires_account else "no account needed"
        print(f"{adapter.provider_id} — {adapter.display_name} ({account})")
        print(f"    {adapter.description}")
        if isinstance(adapter, SupportsGenerate):
            for op in adapter.operations():
                params = ", ".join(
                    (p.name if p.required else f"[{p.name}]")
                    + ("" if p.kind is not ParamKind.CHOICE else f"={'|'.join(p.choices)}")
                    for p in op.params
                )
                print(f"    {op.id:<16} {params}")
    for failure in registry.failures:
        print(f"plugin failed to load: {failure.entry_point}: {failure.message}", file=sys.stderr)
    return 0
