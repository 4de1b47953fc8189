"""Users: one local user by default; a shared server may hold several."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, TimestampMixin, id_column

LOCAL_USERNAME = "local"


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = id_column()
    username: Mapped[str] = mapped_column(String(120), unique=True)
    display_name: Mapped[str | None]
