"""Embeddings: embedder plugins, their storage on pgvector, indexing and similarity search."""
