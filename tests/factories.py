"""Small builders for rows the tests need; every default is a realistic value."""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.enums import MediaType, UploadMethod
from core.db.models import LOCAL_USERNAME, Asset, User

_seq = itertools.count(1)


async def local_user_id(session: AsyncSession) -> int:
    user_id = await session.scalar(select(User.id).where(User.username == LOCAL_USERNAME))
    assert user_id is not None, "the initial migration seeds the local user"
    return user_id


async def add_asset(session: AsyncSession, **fields: Any) -> Asset:
    n = next(_seq)
    defaults: dict[str, Any] = {
        "user_id": await local_user_id(session),
        "media_type": MediaType.VIDEO,
        "provider_id": "pixverse",
        "provider_asset_id": f"video_{n}",
        "remote_url": f"https://media.example.test/{n}.mp4",
        "sha256": hashlib.sha256(f"asset-{n}".encode()).hexdigest(),
        "file_size_bytes": 1_000_000 + n,
        "mime_type": "video/mp4",
        "width": 1280,
        "height": 720,
        "duration_sec": 5.0,
        "fps": 30.0,
        "upload_method": UploadMethod.GENERATED,
    }
    defaults.update(fields)
    asset = Asset(**defaults)
    session.add(asset)
    await session.flush()
    return asset
