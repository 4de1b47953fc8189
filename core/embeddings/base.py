"""The embedder plugin protocol.

An embedder turns frames (RGB images) and, if it can, text into L2-normalised vectors of a fixed
dimension. Its ``model_id`` names the model *and* its preprocessing: two embedders whose vectors are
not comparable must have different ids, because vectors are stored and searched per model id and
never mixed (core/db/models/embedding.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from PIL import Image

from core.errors import PixSimError

Vectors = npt.NDArray[np.float32]


class EmbeddingError(PixSimError):
    """An embedder could not load or run."""


class ModelNotInstalled(EmbeddingError):
    """The embedder's model files are not installed; the message says how to install them."""


@runtime_checkable
class Embedder(Protocol):
    @property
    def model_id(self) -> str:
        """Stable identity of the vectors, e.g. ``"pixsim/visual-signature@1"``."""
        ...

    @property
    def dimensions(self) -> int: ...

    @property
    def supports_text(self) -> bool: ...

    def embed_images(self, images: Sequence[Image.Image]) -> Vectors:
        """One L2-normalised row per image, shape ``(len(images), dimensions)``. CPU-bound: call
        from a worker thread, never the GUI thread."""
        ...


@runtime_checkable
class TextEmbedder(Embedder, Protocol):
    def embed_text(self, texts: Sequence[str]) -> Vectors:
        """One L2-normalised row per text, in the same space as ``embed_images``."""
        ...


def l2_normalise(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    normalised: Vectors = (vectors / norms).astype(np.float32)
    return normalised
