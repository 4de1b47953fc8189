"""Embeddings keyed by (subject, embedding model), so several models can coexist.

Vectors are ``halfvec`` without a fixed dimension (512-d float4 rows would be TOASTed; see
notes/PLATFORM.md). Each model gets its own partial HNSW index on ``embedding::halfvec(dims)``,
created when the model is registered; those indexes are named ``ix_embeddings_model_<id>_hnsw``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import HALFVEC
from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, id_column

DYNAMIC_INDEX_PREFIX = "ix_embeddings_model_"


class EmbeddingModel(Base):
    __tablename__ = "embedding_models"
    __table_args__ = (
        CheckConstraint("dimensions > 0 AND dimensions <= 4000", name="dimensions_range"),
        CheckConstraint("distance IN ('cosine', 'l2', 'inner_product')", name="distance_known"),
    )

    id: Mapped[int] = id_column()
    # e.g. "open_clip/ViT-B-32@laion2b_s34b_b79k"
    name: Mapped[str] = mapped_column(String(255), unique=True)
    dimensions: Mapped[int]
    distance: Mapped[str] = mapped_column(String(16), server_default=text("'cosine'"))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class Embedding(Base):
    """A vector for exactly one subject: a whole asset, or one temporal segment of it."""

    __tablename__ = "embeddings"
    __table_args__ = (
        CheckConstraint("num_nonnulls(asset_id, segment_id) = 1", name="one_subject"),
        Index(
            "uq_embeddings_asset_id_model_id",
            "asset_id",
            "model_id",
            unique=True,
            postgresql_where=text("asset_id IS NOT NULL"),
        ),
        Index(
            "uq_embeddings_segment_id_model_id",
            "segment_id",
            "model_id",
            unique=True,
            postgresql_where=text("segment_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = id_column()
    model_id: Mapped[int] = mapped_column(ForeignKey("embedding_models.id", ondelete="CASCADE"), index=True)
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"))
    segment_id: Mapped[int | None] = mapped_column(
        ForeignKey("asset_temporal_segments.id", ondelete="CASCADE")
    )
    embedding: Mapped[Any] = mapped_column(HALFVEC())
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
