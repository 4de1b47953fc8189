"""Unconfirmed submissions: ``jobs.submit_started_at``.

Revision ID: 0007_submit_marker
Revises: 0006_duplicate_groups
Create Date: 2026-11-21

Set (and committed) just before the request that makes a provider start a paid generation, cleared
when the provider's answer is recorded. A job found queued with it set was interrupted while that
request was in flight: the provider may have accepted it. The runner then fails the job with
``submit_unconfirmed`` instead of sending it again (Pixverse and Sora have no idempotency key, so a
second request could make, and charge, a second generation). The user checks the provider and
retries if nothing was made.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_submit_marker"
down_revision: str | None = "0006_duplicate_groups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("submit_started_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "submit_started_at")
