"""The content-addressed local store (files) and its index (database): cache and library storage."""
