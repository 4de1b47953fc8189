"""Near-duplicate groups: ``assets.duplicate_group_id``.

Revision ID: 0006_duplicate_groups
Revises: 0005_pending_variants
Create Date: 2026-11-22

Assets whose visual-signature vectors lie within a threshold of each other (core.embeddings.duplicates)
share a group label; the library grid may stack each group into one card. The label is the id of one
member but deliberately not a foreign key: deleting that member must not dissolve or cascade the group.
Nothing is ever deleted for being a duplicate. A partial index serves "the members of this stack"
(most assets are in no group, so it stays small).

Per-model HNSW indexes on ``embeddings`` are not created here: ``EmbeddingStore.ensure_model`` creates
them at run time (``ix_embeddings_model_<id>_hnsw``), and autogenerate ignores them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_duplicate_groups"
down_revision: str | None = "0005_pending_variants"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("assets", sa.Column("duplicate_group_id", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_assets_duplicate_group_id",
        "assets",
        ["duplicate_group_id"],
        unique=False,
        postgresql_where=sa.text("duplicate_group_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_assets_duplicate_group_id",
        table_name="assets",
        postgresql_where=sa.text("duplicate_group_id IS NOT NULL"),
    )
    op.drop_column("assets", "duplicate_group_id")
