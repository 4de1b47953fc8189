"""Which embedders exist, which are installed, and installing their model files on request.

Model files are never downloaded implicitly: the user asks (``pixsim models install clip`` or the
settings button). Each file is streamed through ``SafeHttp`` into a staging folder next to the
model's final folder (``core.transfer.download``: resumes within the run, hashes while streaming,
checks the size, fsyncs), verified against the sha256 recorded below, and only when every file is
there and verified does the staging folder become ``<data_dir>/models/<directory>/`` by one rename,
with ``manifest.json`` saying what was installed from where. A wrong hash, a network failure or a
cancel removes the staging folder: a model is either completely installed or not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fasteners

from core.cache.store import PartialFile
from core.embeddings import clip
from core.embeddings.base import Embedder, EmbeddingError
from core.embeddings.visual import VisualSignatureEmbedder
from core.errors import TransferCancelled
from core.net.http import SafeHttp
from core.net.retry import RetryPolicy
from core.transfer.download import DownloadSource, download

log = logging.getLogger(__name__)

MODELS_DIR = "models"


@dataclass(frozen=True)
class ModelFile:
    name: str  # the file's name in the model folder
    url: str
    # The published sha256 the download must match. None: no published hash could be found; the
    # file is then installed unverified and the hash it had is recorded in the manifest.
    sha256: str | None
    size: int | None


@dataclass(frozen=True)
class ModelSpec:
    name: str  # what the user types: ``pixsim models install clip``
    directory: str  # folder under <data_dir>/models/
    title: str
    model_id: str
    files: tuple[ModelFile, ...]

    @property
    def download_size(self) -> int:
        """Bytes to download, as far as known (files without a recorded size are small)."""
        return sum(f.size for f in self.files if f.size is not None)


# CLIP ViT-B/32 with OpenAI's original weights, exported to ONNX from OpenAI's ``clip`` package
# (``encode_image`` / ``encode_text``) by the openai-clip-js project, pinned to one commit of
# https://huggingface.co/rocca/openai-clip-js. Hashes and sizes as published in the Git LFS pointers
# of that repository (commits abdf78c7 and 7c2cbb26, shown on the files' Hugging Face pages):
#   clip-image-vit-32-float32.onnx        sha256 bd2ccde5…53201, 351468764 bytes
#   clip-text-vit-32-float32-int32.onnx   sha256 214c6c63…de0d7, 254069585 bytes
# Image graph: "input" float32 [N,3,224,224] -> "output" [N,512]; text graph: "input" int32 [N,77]
# -> "output" [N,512] (the features at the end token, projected).
#
# The tokenizer files come from OpenAI's own Hugging Face repository. They are small plain Git files,
# for which Hugging Face publishes no sha256, and no published hash could be found: they are NOT
# verified by hash (sha256=None). Their hash as downloaded is recorded in the manifest.
_ROCCA = "https://huggingface.co/rocca/openai-clip-js/resolve/a94bb74fd43beabd867ac3140318c5ef94432a00"
_OPENAI = "https://huggingface.co/openai/clip-vit-base-patch32/resolve/main"
CLIP_VIT_B32 = ModelSpec(
    name="clip",
    directory="clip-vit-b32",
    title="CLIP ViT-B/32 (OpenAI weights, ONNX)",
    model_id=clip.MODEL_ID,
    files=(
        ModelFile(
            clip.IMAGE_GRAPH,
            f"{_ROCCA}/clip-image-vit-32-float32.onnx",
            "bd2ccde5ba3e10a05d8276ac106f1d171c80d1be540a32f8febf602818f53201",
            351_468_764,
        ),
        ModelFile(
            clip.TEXT_GRAPH,
            f"{_ROCCA}/clip-text-vit-32-float32-int32.onnx",
            "214c6c6303c60edf26aec493cacea831e22d9137786991fc69c92242627de0d7",
            254_069_585,
        ),
        ModelFile(clip.VOCAB, f"{_OPENAI}/vocab.json", None, None),
        ModelFile(clip.MERGES, f"{_OPENAI}/merges.txt", None, None),
    ),
)

REGISTRY: dict[str, ModelSpec] = {CLIP_VIT_B32.name: CLIP_VIT_B32}


@dataclass(frozen=True)
class InstallProgress:
    model: str
    file: str
    file_index: int  # 1-based
    file_count: int
    bytes_done: int  # over all files
    bytes_total: int | None


@dataclass(frozen=True)
class ModelStatus:
    spec: ModelSpec
    installed: bool
    path: Path
    size_on_disk: int
    unverified_files: tuple[str, ...]  # installed without a published hash to check them against


ProgressFn = Callable[[InstallProgress], None]


def spec_for(name: str) -> ModelSpec:
    spec = REGISTRY.get(name.lower())
    if spec is None:
        known = ", ".join(sorted(REGISTRY))
        raise EmbeddingError(f"there is no model called {name!r}; installable models: {known}")
    return spec


def model_dir(data_dir: Path, spec: ModelSpec | str) -> Path:
    spec = spec_for(spec) if isinstance(spec, str) else spec
    return data_dir / MODELS_DIR / spec.directory


def is_installed(data_dir: Path, spec: ModelSpec | str) -> bool:
    """Every file present with the size the manifest recorded (cheap: no hashing)."""
    spec = spec_for(spec) if isinstance(spec, str) else spec
    folder = model_dir(data_dir, spec)
    manifest = clip.read_manifest(folder)
    recorded = {f.get("name"): f.get("size") for f in manifest.get("files", []) if isinstance(f, dict)}
    for file in spec.files:
        try:
            if (folder / file.name).stat().st_size != recorded.get(file.name):
                return False
        except FileNotFoundError:
            return False
    return True


def model_status(data_dir: Path) -> list[ModelStatus]:
    statuses = []
    for spec in REGISTRY.values():
        folder = model_dir(data_dir, spec)
        installed = is_installed(data_dir, spec)
        files = clip.read_manifest(folder).get("files", []) if installed else []
        statuses.append(
            ModelStatus(
                spec=spec,
                installed=installed,
                path=folder,
                size_on_disk=sum(int(f.get("size", 0)) for f in files if isinstance(f, dict)),
                unverified_files=tuple(
                    str(f.get("name")) for f in files if isinstance(f, dict) and not f.get("verified")
                ),
            )
        )
    return statuses


def installed_embedders(data_dir: Path) -> list[Embedder]:
    """The visual signature always, CLIP when it is installed. Loading CLIP reads ~600 MB and takes
    a second or two: call once and keep the result. A damaged CLIP install is logged and skipped
    (indexing goes on with the visual signature); ``ClipEmbedder.load`` says what is wrong."""
    embedders: list[Embedder] = [VisualSignatureEmbedder()]
    if is_installed(data_dir, CLIP_VIT_B32):
        try:
            embedders.append(clip.ClipEmbedder.load(model_dir(data_dir, CLIP_VIT_B32)))
        except EmbeddingError as exc:
            log.warning("CLIP is installed but cannot be used: %s", exc)
    return embedders


async def install_model(
    name: str,
    data_dir: Path,
    http: SafeHttp,
    progress: ProgressFn | None = None,
    cancel: asyncio.Event | None = None,
    *,
    spec: ModelSpec | None = None,
    retry: RetryPolicy | None = None,
) -> Path:
    """Download, verify and install model ``name``; returns its folder. ``spec`` replaces the
    registry's entry (tests serve files from a local server). Reinstalling replaces the old files
    only once the new ones are complete. Raises ``TransferCancelled`` when ``cancel`` is set,
    ``ContentMismatch`` for a wrong hash or size, ``NetworkError``/``ProviderError`` when the
    download fails, ``EmbeddingError`` when another install of the same model is running."""
    spec = spec or spec_for(name)
    root = data_dir / MODELS_DIR
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddingError(f"cannot create the models folder {root}: {exc.strerror}") from None
    with _install_lock(root, spec):
        _remove_leftovers(root, spec)
        staging = root / f".{spec.directory}.installing-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            work = asyncio.ensure_future(_download_all(spec, staging, http, progress, retry or RetryPolicy()))
            await _unless_cancelled(work, cancel, spec)
            final = root / spec.directory
            _swap_in(staging, final)
            return final
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def remove_model(name: str, data_dir: Path) -> bool:
    """Delete an installed model; False when it was not installed. The folder disappears at once
    (renamed away, then deleted), so a concurrent reader never sees half a model."""
    spec = spec_for(name)
    root = data_dir / MODELS_DIR
    folder = root / spec.directory
    if not folder.exists():
        return False
    with _install_lock(root, spec):
        trash = root / f".{spec.directory}.removing-{uuid.uuid4().hex[:8]}"
        try:
            folder.rename(trash)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise EmbeddingError(f"cannot remove {folder}: {exc.strerror}") from None
        shutil.rmtree(trash, ignore_errors=True)
    return True


@contextlib.contextmanager
def _install_lock(root: Path, spec: ModelSpec) -> Iterator[None]:
    lock = fasteners.InterProcessLock(str(root / f".{spec.directory}.lock"))
    if not lock.acquire(blocking=False):
        raise EmbeddingError(
            f"{spec.title} is being installed or removed by another PixSim; try again when it is done"
        )
    try:
        yield
    finally:
        lock.release()


def _remove_leftovers(root: Path, spec: ModelSpec) -> None:
    """Staging folders of an install that crashed (we hold the lock: none is in use)."""
    for pattern in (f".{spec.directory}.installing-*", f".{spec.directory}.removing-*"):
        for leftover in root.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)


async def _unless_cancelled(
    work: asyncio.Future[None], cancel: asyncio.Event | None, spec: ModelSpec
) -> None:
    if cancel is None:
        await work
        return
    waiter: asyncio.Future[Any] = asyncio.ensure_future(cancel.wait())
    pending: list[asyncio.Future[Any]] = [work, waiter]
    try:
        done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if work in done:
        work.result()
        return
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await work
    raise TransferCancelled(f"the installation of {spec.title} was cancelled; nothing was installed")


async def _download_all(
    spec: ModelSpec, staging: Path, http: SafeHttp, progress: ProgressFn | None, retry: RetryPolicy
) -> None:
    done_before = 0
    announced: dict[str, int] = {}  # sizes the server declared for files we had no size for

    def total() -> int | None:
        sizes = [f.size if f.size is not None else announced.get(f.name) for f in spec.files]
        known = [s for s in sizes if s is not None]
        return sum(known) if known else None

    records: list[dict[str, Any]] = []
    for index, file in enumerate(spec.files, start=1):
        partial = PartialFile(staging / f"{file.name}.part", staging / f"{file.name}.part.json")

        def report(
            done: int, limit: int | None, file: ModelFile = file, index: int = index, base: int = done_before
        ) -> None:
            if limit is not None and file.size is None:
                announced[file.name] = limit
            if progress is not None:
                progress(InstallProgress(spec.name, file.name, index, len(spec.files), base + done, total()))

        report(0, None)
        source = DownloadSource(url=file.url, expected_size=file.size, expected_sha256=file.sha256)
        result = await download(http, source, partial, retry=retry, progress=report)
        partial.path.replace(staging / file.name)
        partial.discard()
        done_before += result.size
        records.append(
            {
                "name": file.name,
                "url": file.url,
                "size": result.size,
                "sha256": result.sha256,
                "verified": file.sha256 is not None,
            }
        )
    manifest = {
        "name": spec.name,
        "title": spec.title,
        "model_id": spec.model_id,
        "installed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": records,
    }
    _write_synced(staging / clip.MANIFEST, json.dumps(manifest, indent=2).encode())
    _fsync_dir(staging)


def _swap_in(staging: Path, final: Path) -> None:
    old = final.with_name(f".{final.name}.removing-{uuid.uuid4().hex[:8]}")
    had_old = final.exists()
    if had_old:
        final.rename(old)
    try:
        staging.rename(final)
    except OSError:
        if had_old:
            old.rename(final)  # put the previous install back
        raise
    _fsync_dir(final.parent)
    if had_old:
        shutil.rmtree(old, ignore_errors=True)


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return  # directories cannot be opened for fsync on Windows
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def with_files(spec: ModelSpec, files: tuple[ModelFile, ...]) -> ModelSpec:
    """``spec`` with other files (tests point a real spec at a local server)."""
    return replace(spec, files=files)
