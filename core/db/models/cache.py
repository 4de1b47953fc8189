"""The index of the local content store: one row per stored file, for LRU eviction and leases."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base


class CacheEntry(Base):
    __tablename__ = "cache_entries"
    __table_args__ = (
        CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="sha256_hex"),
        CheckConstraint("size_bytes >= 0", name="size_non_negative"),
        Index("ix_cache_entries_last_accessed_at", "last_accessed_at"),
    )

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    last_accessed_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    # A process using the file (player, upload, export) holds it until then; eviction skips it.
    leased_until: Mapped[datetime | None]
