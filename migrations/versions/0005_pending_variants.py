"""Pending branch variants: a "continue from here" variant exists while its job runs.

A variant made by generating (an extend job from the branch time) is written with its job at once,
so the editor shows it as pending; the job runner fills in ``variant_asset_id`` in the transaction
that imports the result. A variant therefore names an asset, a job, or both.

Revision ID: 0005_pending_variants
Revises: 0004_library_search
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005_pending_variants"
down_revision: str | None = "0004_library_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("asset_branch_variants", "variant_asset_id", nullable=True)
    op.create_check_constraint(
        "asset_or_job", "asset_branch_variants", "variant_asset_id IS NOT NULL OR job_id IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DELETE FROM asset_branch_variants WHERE variant_asset_id IS NULL")
    op.drop_constraint("asset_or_job", "asset_branch_variants", type_="check")
    op.alter_column("asset_branch_variants", "variant_asset_id", nullable=False)
