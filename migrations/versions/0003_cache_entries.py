"""Index of the local content store: size, last access and lease per stored file (LRU eviction).

Revision ID: 0003_cache_entries
Revises: 0002_initial_schema
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import pgvector.sqlalchemy  # noqa: F401  (autogenerate emits pgvector types)
import sqlalchemy as sa
from alembic import op

revision: str = "0003_cache_entries"
down_revision: str | None = "0002_initial_schema"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cache_entries",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "last_accessed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name=op.f("ck_cache_entries_sha256_hex")),
        sa.CheckConstraint("size_bytes >= 0", name=op.f("ck_cache_entries_size_non_negative")),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_cache_entries")),
    )
    op.create_index("ix_cache_entries_last_accessed_at", "cache_entries", ["last_accessed_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_cache_entries_last_accessed_at", table_name="cache_entries")
    op.drop_table("cache_entries")
