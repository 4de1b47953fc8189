"""Live progress of ComfyUI jobs from ComfyUI's WebSocket, through the runner, against the fake ComfyUI on
127.0.0.1 (a real WebSocket on the wire) with a real database. The socket only adds progress: without it,
or when it drops, jobs finish by polling as before; it never connects anywhere but the configured server."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from app.services import Services
from core.db.enums import JobStatus, MediaType
from core.jobs.service import JobEvent, JobSummary
from core.net.http import SafeHttp
from core.net.policy import UrlPolicy
from core.providers.comfyui import ComfyUIAdapter
from core.providers.comfyui_progress import MAX_RUNNING_FRACTION, ProgressListener, PromptProgress
from tests.fakes.comfyui import FakeComfyUI
from tests.fakes.http_server import FakeHttpServer, Request, Response
from tests.jobs.conftest import JobsEnv

# Four nodes: the text encoder comes from ComfyUI's cache, the latent runs at once, the sampler takes ten
# steps, the save node writes the image. At sampler step s: (2 done + s/10) / 4.
GRAPH: dict[str, Any] = {
    "1": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{prompt}}"}},
    "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "3": {
        "class_type": "KSampler",
        "inputs": {"seed": "{{seed}}", "steps": 10, "positive": ["1", 0], "latent_image": ["2", 0]},
    },
    "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "pixsim"}},
}
AT_STEP_2 = (2 + 2 / 10) / 4
AT_STEP_5 = (2 + 5 / 10) / 4


def adapter_of(services: Services) -> ComfyUIAdapter:
    adapter = services.registry.get("comfyui")
    assert isinstance(adapter, ComfyUIAdapter)
    return adapter


def listener_of(env: JobsEnv) -> ProgressListener:
    listener = adapter_of(env.services).progress.get(env.server.base_url)
    assert listener is not None
    return listener


async def start_job(env: JobsEnv, graph: dict[str, Any] = GRAPH) -> tuple[int, asyncio.Task[JobSummary]]:
    await env.services.accounts.add("comfyui", "workstation", base_url=env.server.base_url)
    job = await env.services.jobs.create(
        "comfyui", "text_to_image", {"prompt": "a lighthouse", "workflow": graph}
    )
    return job.id, asyncio.ensure_future(env.run_until_done(job.id))


async def wait_for_progress(env: JobsEnv, job_id: int, expected: float, limit_s: float = 15.0) -> JobSummary:
    seen: list[tuple[JobStatus, float]] = []
    deadline = asyncio.get_running_loop().time() + limit_s
    while asyncio.get_running_loop().time() < deadline:
        job = await env.services.jobs.get(job_id)
        assert not job.status.is_terminal, job.error_message
        if job.status is JobStatus.RUNNING and job.progress == pytest.approx(expected):
            return job
        if not seen or seen[-1] != (job.status, job.progress):
            seen.append((job.status, job.progress))
        await asyncio.sleep(0.05)
    raise AssertionError(f"the job never showed {expected:.3f}; it showed {seen}")


async def until(condition: Any, limit_s: float = 10.0) -> None:
    async with asyncio.timeout(limit_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


def record_events(env: JobsEnv, job_id: int) -> list[JobEvent]:
    events: list[JobEvent] = []
    env.services.jobs.events.subscribe(lambda e: events.append(e) if e.job_id == job_id else None)
    return events


async def test_a_running_job_shows_growing_progress_then_imports_the_result(
    comfy_env: JobsEnv, server: FakeHttpServer
) -> None:
    comfy = FakeComfyUI(server)
    comfy.cached_nodes = {"1"}
    comfy.hold_at(2)
    job_id, done = await start_job(comfy_env)
    events = record_events(comfy_env, job_id)

    await wait_for_progress(comfy_env, job_id, AT_STEP_2)
    comfy.hold_at(5)
    await wait_for_progress(comfy_env, job_id, AT_STEP_5)
    comfy.release()
    finished = await done

    assert finished.status is JobStatus.SUCCEEDED and finished.progress == 1.0
    (asset_id,) = finished.result_asset_ids
    assert (await comfy_env.asset(asset_id)).media_type is MediaType.IMAGE
    running = [e.progress for e in events if e.status is JobStatus.RUNNING]
    assert running == sorted(running) and AT_STEP_2 in running and AT_STEP_5 in running
    assert all(0.0 <= p < 1.0 for p in running)
    # The prompt went out with the adapter's client id, the one the socket listens with.
    (prompt,) = comfy.prompts.values()
    assert prompt.client_id == adapter_of(comfy_env.services).client_id == comfy.socket_clients[0]


async def test_another_clients_prompt_does_not_move_the_jobs_progress(
    comfy_env: JobsEnv, server: FakeHttpServer
) -> None:
    comfy = FakeComfyUI(server)
    comfy.hold_at(2)
    job_id, done = await start_job(comfy_env)
    await wait_for_progress(comfy_env, job_id, AT_STEP_2)
    (ours,) = comfy.prompts
    comfy.hold_at(2, prompt_id=ours)
    comfy.hold_at(None)

    # A script queues a prompt without a client id: ComfyUI sends its whole run to every socket, ours too.
    other_graph = {**GRAPH, "1": {"class_type": "CLIPTextEncode", "inputs": {"text": "someone else"}}}
    other_graph["3"] = {**GRAPH["3"], "inputs": {**GRAPH["3"]["inputs"], "seed": 1}}
    async with httpx.AsyncClient(timeout=5) as client:
        answer = await client.post(server.url("/prompt"), json={"prompt": other_graph})
        other = answer.json()["prompt_id"]
        while not (await client.get(server.url(f"/history/{other}"))).json():
            pass
    assert "executing" in [kind for client_id, kind, data in comfy.sent if data.get("prompt_id") == other]
    assert all(client_id is None for client_id, _, data in comfy.sent if data.get("prompt_id") == other)

    # Our own messages come after the other prompt's on the same socket: this is what they alone say.
    comfy.hold_at(5, prompt_id=ours)
    await wait_for_progress(comfy_env, job_id, AT_STEP_5)
    comfy.release()
    assert (await done).status is JobStatus.SUCCEEDED


async def test_a_server_without_a_websocket_still_finishes_the_job_by_polling(
    comfy_env: JobsEnv, server: FakeHttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    comfy = FakeComfyUI(server, websocket=False, running_polls=2)
    caplog.set_level(logging.INFO)
    _, done = await start_job(comfy_env)
    finished = await done
    assert finished.status is JobStatus.SUCCEEDED and finished.error_message is None
    assert len(finished.result_asset_ids) == 1
    assert listener_of(comfy_env).unsupported == "HTTP 404" and comfy.socket_clients == []
    assert server.count("GET", "/ws") >= 1
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_the_socket_dropping_mid_run_reconnects_and_the_job_finishes(
    comfy_env: JobsEnv, server: FakeHttpServer
) -> None:
    comfy = FakeComfyUI(server)
    comfy.cached_nodes = {"1"}
    comfy.hold_at(2)
    job_id, done = await start_job(comfy_env)
    await wait_for_progress(comfy_env, job_id, AT_STEP_2)

    comfy.drop_sockets()
    await until(lambda: len(comfy.sockets) == 1 and len(comfy.socket_clients) == 2)
    assert comfy.socket_clients[0] == comfy.socket_clients[1]  # the same client id: ComfyUI's session resumes
    comfy.hold_at(5)
    await wait_for_progress(comfy_env, job_id, AT_STEP_5)
    comfy.release()
    finished = await done
    assert finished.status is JobStatus.SUCCEEDED and len(finished.result_asset_ids) == 1
    assert listener_of(comfy_env).connections == 2


async def test_a_redirect_on_the_websocket_is_never_followed(
    comfy_env: JobsEnv, server: FakeHttpServer
) -> None:
    async with FakeHttpServer() as elsewhere:
        FakeComfyUI(elsewhere)  # a WebSocket that would answer, were the redirect followed

        async def redirect(request: Request) -> Response:
            return Response(302, {"Location": elsewhere.url("/ws?" + request.target.partition("?")[2])})

        FakeComfyUI(server, websocket=False)
        server.add_route("GET", "/ws", redirect)
        _, done = await start_job(comfy_env)
        finished = await done
        assert finished.status is JobStatus.SUCCEEDED
        assert listener_of(comfy_env).unsupported == "HTTP 302"
        assert elsewhere.connections == 0 and elsewhere.websockets == []


async def test_the_listener_connects_only_where_the_url_policy_allows(server: FakeHttpServer) -> None:
    FakeComfyUI(server)
    # The default policy: a plain-http loopback address is allowed only when configured by the user.
    refused = ProgressListener(server.base_url, "abc", UrlPolicy(), retry_base_s=0.01)
    refused.track("p", ["1"])
    assert await refused.wait_settled(5.0) is False
    await until(lambda: not refused.running)
    assert refused.refused is not None and "only https" in refused.refused
    assert server.connections == 0
    refused.track("p", ["1"])  # asking again does not retry a refused address
    assert not refused.running and server.connections == 0

    allowed = ProgressListener(server.base_url, "abc", UrlPolicy.trusting([server.base_url]))
    allowed.track("p", ["1"])
    try:
        assert await allowed.wait_settled(5.0) is True
        assert allowed.url == f"ws://{server.base_url.removeprefix('http://')}/ws?clientId=abc"
        assert [r.target for r in server.requests] == ["/ws?clientId=abc"]
    finally:
        await allowed.aclose()
    assert not allowed.running


async def test_a_comfyui_behind_https_is_listened_to_with_the_same_trust_as_its_requests() -> None:
    """wss trusts what SafeHttp trusts (certifi's bundle, or here a local CA), not the system's store."""
    import ssl

    import trustme

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with FakeHttpServer(tls=server_ctx) as server:
        FakeComfyUI(server)
        policy = UrlPolicy.trusting([server.base_url])
        http = SafeHttp(policy, tls=client_ctx)
        assert http.tls is client_ctx
        trusting = ProgressListener(server.base_url, "abc", policy, tls=http.tls)
        trusting.track("p", ["1"])
        stranger = ProgressListener(server.base_url, "xyz", policy, retry_base_s=5.0)  # system trust only
        stranger.track("p", ["1"])
        try:
            assert trusting.url.startswith("wss://127.0.0.1:")
            assert await trusting.wait_settled(5.0) is True
            assert await stranger.wait_settled(5.0) is False and stranger.connections == 0
        finally:
            await trusting.aclose()
            await stranger.aclose()
            await http.aclose()


async def test_an_idle_listener_closes_its_socket_and_stops(server: FakeHttpServer) -> None:
    comfy = FakeComfyUI(server)
    listener = ProgressListener(server.base_url, "abc", UrlPolicy.trusting([server.base_url]), idle_s=0.2)
    listener.track("p", ["1"])
    assert await listener.wait_settled(5.0)
    listener.forget("p")
    await until(lambda: not listener.running, 5.0)
    (peer,) = server.websockets
    await until(lambda: peer.closed.is_set())
    assert peer.close_code == 1000 and comfy.sockets["abc"] is peer and not peer.open


def test_fraction_counts_cached_done_and_current_nodes_and_never_goes_back() -> None:
    progress = PromptProgress(nodes=frozenset({"1", "2", "3", "4"}))
    assert progress.fraction() is None  # nothing heard yet: the job shows no progress, as before
    progress.apply("execution_start", {"prompt_id": "p"})
    assert progress.fraction() == 0.0
    progress.apply("execution_cached", {"nodes": ["1"]})
    progress.apply("executing", {"node": "2"})
    assert progress.fraction() == 0.25
    progress.apply("progress", {"value": 3, "max": 10, "node": "3"})  # the sampler started
    assert progress.fraction() == pytest.approx(2.3 / 4)
    progress.apply("progress", {"value": 1, "max": 10, "node": "3"})  # a second pass restarts the bar
    assert progress.fraction() == pytest.approx(2.3 / 4)
    # A node a custom node expanded into (5.0.1 style) counts as the graph node it belongs to.
    progress.apply("executing", {"node": "4.0.1", "display_node": "4"})
    assert progress.fraction() == 0.75
    progress.apply("executing", {"node": None})
    assert progress.fraction() == MAX_RUNNING_FRACTION  # only the history says it finished


def test_fraction_from_progress_state_of_newer_comfyui() -> None:
    progress = PromptProgress(nodes=frozenset({"1", "2"}))
    progress.apply(
        "progress_state",
        {
            "prompt_id": "p",
            "nodes": {
                "1": {"state": "finished", "value": 1, "max": 1, "display_node_id": "1"},
                "2": {"state": "running", "value": 4, "max": 8, "display_node_id": "2"},
            },
        },
    )
    assert progress.fraction() == pytest.approx(1.5 / 2)


async def test_the_fake_websocket_answers_pings_and_echoes_the_close(server: FakeHttpServer) -> None:
    comfy = FakeComfyUI(server)
    async with connect(server.url("/ws?clientId=me").replace("http", "ws", 1), proxy=None) as ws:
        hello = await ws.recv()
        assert '"status"' in str(hello) and '"sid": "me"' in str(hello)
        pong = await ws.ping(b"x")
        await asyncio.wait_for(pong, 5)
        await ws.send("hello")
    (peer,) = server.websockets
    await until(lambda: peer.closed.is_set())
    assert (peer.pings, peer.received, peer.close_code) == (1, ["hello"], 1000)
    assert comfy.socket_clients == ["me"]
