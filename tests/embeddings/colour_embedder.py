"""A tiny real embedder for the store, search and indexer tests: the mean colour of a 4x4 grid.

It implements ``core.embeddings.base.TextEmbedder`` for real (no mock): images become their grid of
mean colours, and a colour *name* ("red", "#00ff00") becomes the vector of a frame of that colour,
so text search has a meaning the tests can check.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageColor

from core.embeddings.base import Vectors, l2_normalise

GRID = 4


class ColourGridEmbedder:
    def __init__(self, model_id: str = "tests/colour-grid@1") -> None:
        self._model_id = model_id
        self.calls = 0  # images embedded so far

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimensions(self) -> int:
        return GRID * GRID * 3

    @property
    def supports_text(self) -> bool:
        return True

    def embed_images(self, images: Sequence[Image.Image]) -> Vectors:
        rows = []
        for image in images:
            small = image.convert("RGB").resize((GRID, GRID), Image.Resampling.BOX)
            # Centred on grey, so black and white are not the same direction.
            rows.append(np.asarray(small, dtype=np.float32).reshape(-1) / 255.0 - 0.5)
        self.calls += len(images)
        return l2_normalise(np.stack(rows) if rows else np.zeros((0, self.dimensions), np.float32))

    def embed_text(self, texts: Sequence[str]) -> Vectors:
        return self.embed_images([Image.new("RGB", (8, 8), ImageColor.getrgb(t.strip())) for t in texts])
