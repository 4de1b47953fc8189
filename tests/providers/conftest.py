"""Adapter contract tests: each adapter against a local fake of its provider's documented API.

No database here: ``FakeInputs`` plays the job runner's InputResolver with files on disk and preset
references, and records what the adapter asked for.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from core.db.enums import MediaType
from core.net.http import SafeHttp
from core.net.policy import UrlPolicy
from core.providers.base import LocalInput, ProviderReference
from tests.fakes.http_server import FakeHttpServer

TEST_TIMEOUT = httpx.Timeout(connect=2.0, read=2.0, write=2.0, pool=10.0)


@pytest.fixture
async def server() -> AsyncIterator[FakeHttpServer]:
    async with FakeHttpServer() as srv:
        yield srv


@pytest.fixture
async def http(server: FakeHttpServer) -> AsyncIterator[SafeHttp]:
    client = SafeHttp(UrlPolicy.trusting([server.base_url]), timeout=TEST_TIMEOUT)
    yield client
    await client.aclose()


@dataclass
class FakeInputs:
    """An InputResolver over local files and preset references; ``calls`` records every request."""

    root: Path
    files: dict[int, LocalInput] = field(default_factory=dict)
    refs: dict[int, ProviderReference] = field(default_factory=dict)
    calls: list[tuple[str, int]] = field(default_factory=list)

    def add_file(
        self,
        asset_id: int,
        data: bytes,
        media_type: MediaType,
        mime_type: str,
        **facts: float | int | None,
    ) -> LocalInput:
        sha = hashlib.sha256(data).hexdigest()
        path = self.root / sha
        path.write_bytes(data)
        local = LocalInput(
            asset_id=asset_id,
            path=path,
            sha256=sha,
            size=len(data),
            media_type=media_type,
            mime_type=mime_type,
            **facts,  # type: ignore[arg-type]
        )
        self.files[asset_id] = local
        return local

    def add_path(self, asset_id: int, path: Path, media_type: MediaType, mime_type: str) -> LocalInput:
        return self.add_file(asset_id, path.read_bytes(), media_type, mime_type)

    async def reference(self, asset_id: int) -> ProviderReference:
        self.calls.append(("reference", asset_id))
        try:
            return self.refs[asset_id]
        except KeyError:
            raise AssertionError(f"the test gave no reference for asset {asset_id}") from None

    async def existing_reference(self, asset_id: int) -> ProviderReference | None:
        self.calls.append(("existing_reference", asset_id))
        return self.refs.get(asset_id)

    async def local_file(self, asset_id: int) -> LocalInput:
        self.calls.append(("local_file", asset_id))
        try:
            return self.files[asset_id]
        except KeyError:
            raise AssertionError(f"the test gave no file for asset {asset_id}") from None


@pytest.fixture
def inputs(tmp_path: Path) -> FakeInputs:
    root = tmp_path / "inputs"
    root.mkdir()
    return FakeInputs(root)
