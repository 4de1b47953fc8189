"""Installing model files from a real HTTP server on 127.0.0.1: verified, complete or not at all."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from app import models_cli
from app.progress import ProgressBar
from app.settings import Settings
from core.embeddings import clip, models
from core.embeddings.base import EmbeddingError
from core.embeddings.models import CLIP_VIT_B32, InstallProgress, ModelFile, install_model
from core.embeddings.visual import VisualSignatureEmbedder
from core.errors import ContentMismatch, TransferCancelled
from core.net.http import SafeHttp
from core.net.policy import UrlPolicy
from core.net.retry import RetryPolicy
from core.text import human_bytes
from tests.embeddings.tiny_clip import write_model
from tests.fakes.http_server import FakeHttpServer, Slow

RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02)
TIMEOUT = httpx.Timeout(connect=2.0, read=2.0, write=2.0, pool=10.0)


@pytest.fixture
async def server() -> AsyncIterator[FakeHttpServer]:
    async with FakeHttpServer() as fake:
        yield fake


@pytest.fixture
async def http(server: FakeHttpServer) -> AsyncIterator[SafeHttp]:
    client = SafeHttp(UrlPolicy.trusting([server.base_url]), timeout=TIMEOUT)
    yield client
    await client.aclose()


@pytest.fixture
def published(tmp_path: Path) -> dict[str, bytes]:
    """The bytes of a tiny but working CLIP, as a server would publish them."""
    source = tmp_path / "published"
    write_model(source, words=["cat"])
    return {
        name: (source / name).read_bytes()
        for name in (clip.IMAGE_GRAPH, clip.TEXT_GRAPH, clip.VOCAB, clip.MERGES)
    }


def serve(server: FakeHttpServer, files: dict[str, bytes], *, hashes: bool = True) -> models.ModelSpec:
    """The real CLIP spec pointed at the fake server; the tokenizer files without a hash, like the real ones."""
    entries = []
    for name, body in files.items():
        server.add_file(f"/clip/{name}", body)
        known = hashes and name.endswith(".onnx")
        entries.append(
            ModelFile(
                name,
                server.url(f"/clip/{name}"),
                hashlib.sha256(body).hexdigest() if known else None,
                len(body) if known else None,
            )
        )
    return models.with_files(CLIP_VIT_B32, tuple(entries))


def leftovers(data_dir: Path) -> list[str]:
    root = data_dir / "models"
    return sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock")) if root.exists() else []


async def test_install_downloads_verifies_and_loads(
    tmp_path: Path, server: FakeHttpServer, http: SafeHttp, published: dict[str, bytes]
) -> None:
    data_dir = tmp_path / "data"
    spec = serve(server, published)
    events: list[InstallProgress] = []
    assert [type(e) for e in models.installed_embedders(data_dir)] == [VisualSignatureEmbedder]

    folder = await install_model("clip", data_dir, http, events.append, spec=spec, retry=RETRY)

    assert folder == data_dir / "models" / "clip-vit-b32"
    for name, body in published.items():
        assert (folder / name).read_bytes() == body
    manifest = json.loads((folder / clip.MANIFEST).read_text())
    assert manifest["model_id"] == clip.MODEL_ID
    by_name = {f["name"]: f for f in manifest["files"]}
    assert by_name[clip.IMAGE_GRAPH]["verified"] and not by_name[clip.VOCAB]["verified"]
    assert by_name[clip.VOCAB]["sha256"] == hashlib.sha256(published[clip.VOCAB]).hexdigest()
    assert leftovers(data_dir) == ["clip-vit-b32"]  # no staging folder, no partial file

    # Progress covers every file and ends at the total.
    assert [e.file_index for e in events][-1] == 4 and events[-1].bytes_done == sum(
        map(len, published.values())
    )
    assert events[-1].bytes_total == events[-1].bytes_done
    assert all(a.bytes_done <= b.bytes_done for a, b in itertools.pairwise(events))

    status = {s.spec.name: s for s in models.model_status(data_dir)}["clip"]
    assert status.installed and set(status.unverified_files) == {clip.VOCAB, clip.MERGES}
    embedders = models.installed_embedders(data_dir)
    assert [e.model_id for e in embedders] == [VisualSignatureEmbedder().model_id, clip.MODEL_ID]
    vectors = embedders[1].embed_images([Image.new("RGB", (50, 50), (9, 99, 199))])
    np.testing.assert_allclose(np.linalg.norm(vectors), 1.0, rtol=1e-5)


async def test_wrong_hash_installs_nothing(
    tmp_path: Path, server: FakeHttpServer, http: SafeHttp, published: dict[str, bytes]
) -> None:
    data_dir = tmp_path / "data"
    spec = serve(server, published)
    tampered = published[clip.TEXT_GRAPH][:-1] + b"\x00"
    server.add_file(f"/clip/{clip.TEXT_GRAPH}", tampered)  # same size, different bytes
    with pytest.raises(ContentMismatch, match="does not match"):
        await install_model("clip", data_dir, http, spec=spec, retry=RETRY)
    assert leftovers(data_dir) == []
    assert not models.is_installed(data_dir, "clip")
    assert len(models.installed_embedders(data_dir)) == 1


async def test_failed_reinstall_keeps_the_working_install(
    tmp_path: Path, server: FakeHttpServer, http: SafeHttp, published: dict[str, bytes]
) -> None:
    data_dir = tmp_path / "data"
    spec = serve(server, published)
    await install_model("clip", data_dir, http, spec=spec, retry=RETRY)
    server.remove_file(f"/clip/{clip.MERGES}")  # 404: permanent
    with pytest.raises(Exception, match="404"):
        await install_model("clip", data_dir, http, spec=spec, retry=RETRY)
    assert models.is_installed(data_dir, "clip")
    assert leftovers(data_dir) == ["clip-vit-b32"]


async def test_cancel_leaves_nothing(
    tmp_path: Path, server: FakeHttpServer, http: SafeHttp, published: dict[str, bytes]
) -> None:
    data_dir = tmp_path / "data"
    spec = serve(server, published)
    server.fail("GET", f"/clip/{clip.TEXT_GRAPH}", Slow(chunk_size=64, interval_s=0.05))
    cancel = asyncio.Event()
    started = asyncio.Event()

    def on_progress(event: InstallProgress) -> None:
        if event.file == clip.TEXT_GRAPH and event.bytes_done > len(published[clip.IMAGE_GRAPH]):
            started.set()

    install = asyncio.create_task(
        install_model("clip", data_dir, http, on_progress, cancel, spec=spec, retry=RETRY)
    )
    await asyncio.wait_for(started.wait(), 10)
    partials = list((data_dir / "models").glob(".clip-vit-b32.installing-*/*.part"))
    assert [p.name for p in partials] == [f"{clip.TEXT_GRAPH}.part"]  # it really was mid-file
    cancel.set()
    with pytest.raises(TransferCancelled, match="nothing was installed"):
        await asyncio.wait_for(install, 10)
    assert leftovers(data_dir) == []


async def test_remove_and_unknown_names(
    tmp_path: Path, server: FakeHttpServer, http: SafeHttp, published: dict[str, bytes]
) -> None:
    data_dir = tmp_path / "data"
    await install_model("clip", data_dir, http, spec=serve(server, published), retry=RETRY)
    assert models.remove_model("CLIP", data_dir)
    assert leftovers(data_dir) == [] and not models.is_installed(data_dir, "clip")
    assert not models.remove_model("clip", data_dir)
    with pytest.raises(EmbeddingError, match="installable models: clip"):
        await install_model("dall-e", data_dir, http)


def test_a_truncated_install_is_not_installed(tmp_path: Path) -> None:
    folder = tmp_path / "models" / "clip-vit-b32"
    write_model(folder)
    assert models.is_installed(tmp_path, "clip")
    graph = folder / clip.TEXT_GRAPH
    graph.write_bytes(graph.read_bytes()[:100])
    assert not models.is_installed(tmp_path, "clip")


def test_the_published_clip_files_are_pinned_and_hashed() -> None:
    """The real registry entry: pinned revision, https, and a sha256 for each graph."""
    graphs = [f for f in CLIP_VIT_B32.files if f.name.endswith(".onnx")]
    assert len(graphs) == 2
    for file in graphs:
        assert file.url.startswith("https://huggingface.co/rocca/openai-clip-js/resolve/a94bb74fd43b")
        assert file.sha256 is not None and len(file.sha256) == 64 and file.size
    assert all(f.url.startswith("https://") for f in CLIP_VIT_B32.files)


async def test_cli_installs_with_a_progress_bar_lists_and_removes(
    tmp_path: Path,
    server: FakeHttpServer,
    http: SafeHttp,
    published: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(data_dir=tmp_path / "data", config_dir=tmp_path / "config")
    out, bar_stream = io.StringIO(), io.StringIO()
    code = await models_cli.install(serve(server, published), settings, ProgressBar(bar_stream), out, http)
    assert code == 0
    bar = bar_stream.getvalue()
    assert "downloading" in bar and "done" in bar
    assert "installed in" in bar and "vocab.json, merges.txt have no published hash" in out.getvalue()

    models_cli.print_models(settings, out := io.StringIO())
    listing = out.getvalue()
    assert "visual-signature  built in" in listing and "clip" in listing and "installed," in listing
    assert "not verified by a published hash: vocab.json, merges.txt" in listing

    args = argparse.Namespace(models_command="remove", name="clip")
    assert models_cli.run_models_command(args, settings) == 0
    assert models_cli.run_models_command(args, settings) == 1
    models_cli.print_models(settings, out := io.StringIO())
    size = human_bytes(351_468_764 + 254_069_585)
    assert f"not installed (about {size} to download); run `pixsim models install clip`" in out.getvalue()


async def test_cli_reports_a_failed_install(
    tmp_path: Path, server: FakeHttpServer, http: SafeHttp, published: dict[str, bytes]
) -> None:
    settings = Settings(data_dir=tmp_path / "data", config_dir=tmp_path / "config")
    spec = serve(server, published)
    server.add_file(f"/clip/{clip.IMAGE_GRAPH}", b"x" * len(published[clip.IMAGE_GRAPH]))
    bar_stream = io.StringIO()
    assert await models_cli.install(spec, settings, ProgressBar(bar_stream), io.StringIO(), http) == 2
    assert "failed" in bar_stream.getvalue() and "does not match" in bar_stream.getvalue()
    assert not models.is_installed(settings.data_dir, "clip")
