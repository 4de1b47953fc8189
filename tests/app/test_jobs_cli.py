"""``pixsim generate``, ``jobs``, ``worker``, ``accounts`` and ``providers`` in real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from tests.app.test_cli import REPO, pixsim


@pytest.fixture
def env(tmp_path: Path, db_url: URL) -> dict[str, str]:
    return {
        "PIXSIM_DATA_DIR": str(tmp_path / "data"),
        "PIXSIM_CONFIG_DIR": str(tmp_path / "config"),
        "PIXSIM_DATABASE_URL": db_url.render_as_string(hide_password=False),
        # Never touch the developer's real keyring from tests.
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }


def test_providers_lists_every_builtin_with_its_operations() -> None:
    result = pixsim({}, "providers")
    assert result.returncode == 0, result.stderr
    for expected in ("sandbox — Sandbox (no account needed)", "pixverse", "sora", "comfyui", "video_extend"):
        assert expected in result.stdout
    assert "2026-09-24" in result.stdout  # Sora's announced shutdown is shown
    spec = json.loads(pixsim({}, "providers", "--json").stdout)
    sandbox = next(p for p in spec if p["id"] == "sandbox")
    extend = next(op for op in sandbox["operations"] if op["id"] == "video_extend")
    assert extend["params"][0]["kind"] == "asset" and extend["params"][0]["media_types"] == ["video"]


def test_generate_waits_with_progress_and_jobs_lists_the_result(env: dict[str, str]) -> None:
    result = pixsim(
        env, "generate", "--provider", "sandbox", "--op", "text_to_image", "--param", "prompt=a red fox"
    )
    assert result.returncode == 0, result.stderr
    assert "succeeded: new asset" in result.stdout
    assert "succeeded" in result.stderr  # the job's progress line
    asset_id = int(result.stdout.strip().rsplit(" ", 1)[-1])

    listed = pixsim(env, "jobs")
    assert listed.returncode == 0 and f"asset {asset_id}" in listed.stdout
    shown = json.loads(pixsim(env, "jobs", "show", "1").stdout)
    assert shown["status"] == "succeeded" and shown["result_asset_ids"] == [asset_id]
    assert shown["params"]["prompt"] == "a red fox"

    extend = pixsim(
        env,
        "generate",
        "--provider",
        "sandbox",
        "--op",
        "image_to_video",
        "--input",
        str(asset_id),
        "--param",
        "duration=1",
    )
    assert extend.returncode == 0, extend.stderr


def test_bad_parameters_are_explained_and_queue_nothing(env: dict[str, str]) -> None:
    result = pixsim(
        env,
        "generate",
        "--provider",
        "sandbox",
        "--op",
        "text_to_video",
        "--param",
        "duration=99",
        "--param",
        "colour=red",
    )
    assert result.returncode == 2
    assert "unknown parameter 'colour'" in result.stderr and "'prompt' is required" in result.stderr
    assert "Traceback" not in result.stderr
    assert "no jobs yet" in pixsim(env, "jobs").stdout
    unknown = pixsim(env, "generate", "--provider", "nope", "--op", "x")
    assert unknown.returncode == 2 and "Unknown provider 'nope'" in unknown.stderr


def test_a_queued_job_is_run_by_a_worker_that_stops_cleanly(env: dict[str, str]) -> None:
    queued = pixsim(
        env,
        "generate",
        "--provider",
        "sandbox",
        "--op",
        "text_to_image",
        "--param",
        "prompt=queued",
        "--no-wait",
    )
    assert queued.returncode == 0 and "queued" in queued.stdout
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PIXSIM_")} | env
    worker = subprocess.Popen(
        [sys.executable, "-m", "app", "worker"],
        cwd=REPO,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if json.loads(pixsim(env, "jobs", "show", "1").stdout)["status"] == "succeeded":
                break
            time.sleep(0.3)
        else:
            pytest.fail("the worker did not run the job")
    finally:
        worker.send_signal(signal.SIGINT)
        out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert "job 1: succeeded" in out and "worker stopped" in out


def test_accounts_add_check_list_remove_and_no_keyring(env: dict[str, str]) -> None:
    added = pixsim(env, "accounts", "add", "sandbox", "offline", "--check")
    assert added.returncode == 0, added.stderr
    assert "ok: Sandbox" in added.stdout
    assert "offline" in pixsim(env, "accounts", "list").stdout
    removed = pixsim(env, "accounts", "remove", "sandbox/offline")
    assert removed.returncode == 0 and "removed sandbox account 'offline'" in removed.stdout
    # A key needs the OS keyring; without a usable one, nothing is stored anywhere.
    refused = subprocess.run(
        [sys.executable, "-m", "app", "accounts", "add", "pixverse", "main", "--key-stdin"],
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if not k.startswith("PIXSIM_")} | env,
        input="pv-secret-key\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "No usable OS keyring" in refused.stderr
    assert "pv-secret-key" not in refused.stderr + refused.stdout
    assert "no accounts yet" in pixsim(env, "accounts", "list").stdout
