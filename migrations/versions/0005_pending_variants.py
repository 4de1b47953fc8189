"""Branch editor fields: pending variants, a default variant, and game metadata on branch points.

A variant made by generating (an extend job from the branch time) is written with its job at once,
so the editor shows it as pending; the job runner fills in ``variant_asset_id`` in the transaction
that imports the result. A variant therefore names an asset, a job, or both.

A branch may mark one variant as its default (what a game plays when no condition holds), and carries
free-form game metadata (JSON) that the runtime export passes through untouched.

Revision ID: 0005_pending_variants
Revises: 0004_library_search
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_pending_variants"
down_revision: str | None = "0004_library_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("asset_branch_variants", "variant_asset_id", nullable=True)
    op.create_check_constraint(
        "asset_or_job", "asset_branch_variants", "variant_asset_id IS NOT NULL OR job_id IS NOT NULL"
    )
    op.add_column(
        "asset_branch_variants",
        sa.Column("is_default", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.create_index(
        "uq_asset_branch_variants_default",
        "asset_branch_variants",
        ["branch_id"],
        unique=True,
        postgresql_where=sa.text("is_default"),
    )
    op.add_column(
        "asset_branches",
        sa.Column(
            "game_metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("asset_branches", "game_metadata")
    op.drop_index("uq_asset_branch_variants_default", table_name="asset_branch_variants")
    op.drop_column("asset_branch_variants", "is_default")
    op.execute("DELETE FROM asset_branch_variants WHERE variant_asset_id IS NULL")
    op.drop_constraint("asset_or_job", "asset_branch_variants", type_="check")
    op.alter_column("asset_branch_variants", "variant_asset_id", nullable=False)
