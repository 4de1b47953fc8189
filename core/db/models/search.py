"""Saved searches ("smart collections"): a named library query, kept per user."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, TimestampMixin, id_column


class SavedSearch(TimestampMixin, Base):
    __tablename__ = "saved_searches"
    # The unique constraint's index also serves "this user's saved searches by name".
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = id_column()
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    # ``core.library.LibraryQuery.to_json()``: versioned, without the age-gate switch.
    query: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
