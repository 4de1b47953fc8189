"""Library search: saved searches, a full-text vector on assets, indexes for the grid's sorts.

Revision ID: 0004_library_search
Revises: 0003_cache_entries
Create Date: 2026-11-21

Full text is a *stored generated column* ``assets.search_vector`` with a GIN index, rather than an
expression index: queries name a column instead of repeating a long expression that must match the
index's exactly, and the vector is computed once per write instead of again for every row that a
query ranks or rechecks.

A generated column (like an index expression) may only call IMMUTABLE functions.
``to_tsvector(regconfig, text)`` with a constant configuration, ``setweight``, ``coalesce`` and
``||`` are immutable, but every built-in way to turn the ``tags`` array into text is only STABLE
(``array_to_string``, ``array_out`` behind ``tags::text``, ``to_jsonb``), because array output calls
the element type's output function, which for dates or numbers depends on settings.
``array_to_tsvector`` is immutable but raises on an empty or NULL element (an insert would fail) and
keeps ``"boss_intro"`` as one lexeme where the text parser makes ``boss`` and ``intro``. So a one-line
SQL function declares the join immutable; that is true for ``varchar[]``, whose output ignores every
setting. Its SQL-standard body (``RETURN``) is bound when created, so no ``search_path`` can change it.

The configuration is ``simple``: lower-cased words, no stemming and no stop words. Prompts mix
languages and names ("Kira", "the 'sunset' LoRA"), and the grid searches as the user types, with a
prefix match on the last word (``'sun':*``); English stemming would make prefixes of stems miss.
Weights (title and tags A/B, description C, prompt D) only serve the relevance sort.

Other indexes serve the library grid at 100k assets (checked with EXPLAIN in
tests/library/test_search.py). ``ix_assets_facets`` covers what the count and facet queries of the
default view read (the age gate closed: its condition is the index's predicate, so no other query
can pick it), including ``id`` for the "has a reference on" join: index-only scans, 10-20 ms
instead of 40-120 ms. The name, duration, size and recently-used sorts each have an index ending in
``id``, the tie-breaker that keeps paging stable (without them each sort is a 40-75 ms scan and
top-N sort). The newest/oldest sorts use the existing ``ix_assets_user_id_created_at`` and an
incremental sort on ``id``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pgvector.sqlalchemy  # noqa: F401  (autogenerate emits pgvector types)
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_library_search"
down_revision: str | None = "0003_cache_entries"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Must match core.db.models.asset.SEARCH_VECTOR_SQL (autogenerate warns when they differ).
SEARCH_VECTOR_SQL = (
    "setweight(to_tsvector('simple'::regconfig, (COALESCE(title, ''::character varying))::text), 'A'::\"char\")"
    " || setweight(to_tsvector('simple'::regconfig, pixsim_tags_text(tags)), 'B'::\"char\")"
    " || setweight(to_tsvector('simple'::regconfig, pixsim_tags_text(style_tags)), 'B'::\"char\")"
    " || setweight(to_tsvector('simple'::regconfig, (COALESCE(description, ''::character varying))::text), 'C'::\"char\")"
    " || setweight(to_tsvector('simple'::regconfig, (COALESCE(prompt, ''::character varying))::text), 'D'::\"char\")"
)

# Must match core.db.models.asset.SHOWN_BY_DEFAULT_SQL and NAME_SORT_SQL.
SHOWN_BY_DEFAULT_SQL = "NOT age_restricted AND content_rating IN ('general', 'mature')"
NAME_SORT_SQL = 'lower("left"(COALESCE(title, description)::text, 100))'


def upgrade() -> None:
    op.execute(
        "CREATE FUNCTION pixsim_tags_text(tags character varying[]) RETURNS text "
        "LANGUAGE sql IMMUTABLE PARALLEL SAFE "
        "RETURN COALESCE(array_to_string(tags, ' '), '')"
    )
    op.add_column(
        "assets",
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR(),
            sa.Computed(SEARCH_VECTOR_SQL, persisted=True),
            nullable=True,
        ),
    )
    op.create_index(
        "ix_assets_search_vector", "assets", ["search_vector"], unique=False, postgresql_using="gin"
    )
    op.create_index(
        "ix_assets_facets",
        "assets",
        ["user_id", "media_type", "provider_id"],
        unique=False,
        postgresql_include=["id"],
        postgresql_where=sa.text(SHOWN_BY_DEFAULT_SQL),
    )
    op.create_index(
        "ix_assets_sort_name",
        "assets",
        ["user_id", sa.literal_column(NAME_SORT_SQL), "id"],
        unique=False,
    )
    op.create_index(
        "ix_assets_sort_duration",
        "assets",
        ["user_id", sa.literal_column("duration_sec DESC NULLS LAST"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_index(
        "ix_assets_sort_size",
        "assets",
        ["user_id", sa.literal_column("file_size_bytes DESC NULLS LAST"), sa.literal_column("id DESC")],
        unique=False,
    )
    op.create_index(
        "ix_assets_sort_last_accessed_at",
        "assets",
        ["user_id", sa.literal_column("last_accessed_at DESC NULLS LAST"), sa.literal_column("id DESC")],
        unique=False,
    )

    op.create_table(
        "saved_searches",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "query",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_saved_searches_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_searches")),
        sa.UniqueConstraint("user_id", "name", name=op.f("uq_saved_searches_user_id_name")),
    )
    # The new column has no statistics, and adding it changed no row, so autovacuum would not
    # analyze the table for a long while. Without them the planner guesses every word's frequency
    # and can walk the whole library in date order looking for a rare one (150 ms at 100k assets).
    op.execute("ANALYZE assets")


def downgrade() -> None:
    op.drop_table("saved_searches")
    op.drop_index("ix_assets_sort_last_accessed_at", table_name="assets")
    op.drop_index("ix_assets_sort_size", table_name="assets")
    op.drop_index("ix_assets_sort_duration", table_name="assets")
    op.drop_index("ix_assets_sort_name", table_name="assets")
    op.drop_index("ix_assets_facets", table_name="assets")
    op.drop_index("ix_assets_search_vector", table_name="assets", postgresql_using="gin")
    op.drop_column("assets", "search_vector")
    op.execute("DROP FUNCTION pixsim_tags_text(character varying[])")
