"""The built-in visual signature: colour, texture and layout of a frame, with no model weights.

It finds near-duplicates (re-encodes, resizes, small crops, light colour changes) and pictures that
*look* alike; it knows nothing about what is in them (that is CLIP's job). Three blocks, each
L2-normalised and weighted, then the whole vector L2-normalised, so that cosine similarity weighs
the blocks by their weights:

- colour: a joint HSV histogram (8 hues x 4 saturations x 4 values), square-rooted (Hellinger), so
  that one dominant colour does not drown the rest;
- texture: gradient-orientation histograms (8 unsigned orientations, magnitude-weighted) over the
  whole frame and its four quadrants, plus the edge energy of a 4x4 grid;
- layout: the mean colour (YCbCr, centred on grey) of an 8x8 grid.

Every frame is first reduced to 64x64 (aspect ignored: a small crop or letterbox moves the grid
only slightly), which makes the features insensitive to resolution and compression noise and fast.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from core.embeddings.base import Vectors, l2_normalise

MODEL_ID = "pixsim/visual-signature@1"
SIDE = 64
HUE_BINS, SAT_BINS, VAL_BINS = 8, 4, 4
ORIENTATIONS = 8
EDGE_GRID = 4
LAYOUT_GRID = 8
# Layout carries the most near-duplicate signal, colour the most "looks like this" signal.
WEIGHTS = {"colour": 1.0, "texture": 0.8, "layout": 1.2}

COLOUR_DIMS = HUE_BINS * SAT_BINS * VAL_BINS
TEXTURE_DIMS = ORIENTATIONS * 5 + EDGE_GRID * EDGE_GRID
LAYOUT_DIMS = LAYOUT_GRID * LAYOUT_GRID * 3
DIMENSIONS = COLOUR_DIMS + TEXTURE_DIMS + LAYOUT_DIMS  # 128 + 56 + 192 = 376


class VisualSignatureEmbedder:
    """Offline, deterministic, CPU-cheap. Implements ``core.embeddings.base.Embedder``."""

    @property
    def model_id(self) -> str:
        return MODEL_ID

    @property
    def dimensions(self) -> int:
        return DIMENSIONS

    @property
    def supports_text(self) -> bool:
        return False

    def embed_images(self, images: Sequence[Image.Image]) -> Vectors:
        out = np.empty((len(images), DIMENSIONS), dtype=np.float32)
        for row, image in enumerate(images):
            out[row] = signature(image)
        return out


def _small(image: Image.Image) -> Image.Image:
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    # reducing_gap: PIL first shrinks by an integer factor (box filter, fast), then resamples.
    return rgb.resize((SIDE, SIDE), Image.Resampling.BILINEAR, reducing_gap=2.0)


def signature(image: Image.Image) -> Vectors:
    """The L2-normalised signature of one frame, shape ``(DIMENSIONS,)``."""
    small = _small(image)
    hsv = np.asarray(small.convert("HSV"), dtype=np.uint8)
    ycc = np.asarray(small.convert("YCbCr"), dtype=np.float32)
    blocks = (
        (_colour(hsv), WEIGHTS["colour"]),
        (_texture(ycc[:, :, 0]), WEIGHTS["texture"]),
        (_layout(ycc), WEIGHTS["layout"]),
    )
    parts = [_unit(block) * weight for block, weight in blocks]
    vector: Vectors = np.concatenate(parts).astype(np.float32)[None, :]
    normalised: Vectors = l2_normalise(vector)[0]
    return normalised


def _unit(block: Vectors) -> Vectors:
    norm = float(np.linalg.norm(block))
    return block / np.float32(norm) if norm > 0 else block


def _colour(hsv: np.ndarray) -> Vectors:
    h = hsv[:, :, 0].astype(np.intp) * HUE_BINS >> 8
    s = hsv[:, :, 1].astype(np.intp) * SAT_BINS >> 8
    v = hsv[:, :, 2].astype(np.intp) * VAL_BINS >> 8
    # Hue is meaningless for greys: they all go to hue bin 0, where saturation bin 0 keeps them apart.
    index = (h * SAT_BINS + s) * VAL_BINS + v
    counts = np.bincount(index.ravel(), minlength=COLOUR_DIMS).astype(np.float32)
    colour: Vectors = np.sqrt(counts / counts.sum())
    return colour


def _texture(luma: np.ndarray) -> Vectors:
    gy, gx = np.gradient(luma)
    magnitude = np.hypot(gx, gy)
    angle = np.mod(np.arctan2(gy, gx), np.pi)  # unsigned: an edge and its mirror are the same edge
    bins = np.minimum((angle * (ORIENTATIONS / np.pi)).astype(np.intp), ORIENTATIONS - 1)
    half = SIDE // 2
    # Cell index per pixel: 0..3 for the quadrants; each pixel also counts for the whole frame.
    quadrant = (np.arange(SIDE)[:, None] // half) * 2 + (np.arange(SIDE)[None, :] // half)
    per_quadrant = np.bincount(
        (quadrant * ORIENTATIONS + bins).ravel(),
        weights=magnitude.ravel(),
        minlength=4 * ORIENTATIONS,
    ).reshape(4, ORIENTATIONS)
    whole = per_quadrant.sum(axis=0, keepdims=True)
    cell = SIDE // EDGE_GRID
    energy = magnitude.reshape(EDGE_GRID, cell, EDGE_GRID, cell).mean(axis=(1, 3))
    orientations = np.concatenate([whole, per_quadrant]).ravel()
    total = orientations.sum()
    if total > 0:
        orientations = orientations / total
    texture: Vectors = np.concatenate([np.sqrt(orientations), energy.ravel() / 255.0]).astype(np.float32)
    return texture


def _layout(ycc: np.ndarray) -> Vectors:
    cell = SIDE // LAYOUT_GRID
    means = ycc.reshape(LAYOUT_GRID, cell, LAYOUT_GRID, cell, 3).mean(axis=(1, 3))
    # Centred on mid-grey so that cosine compares where things are light/dark and which hue they
    # lean to, not merely that all pixel values are positive.
    layout: Vectors = ((means - 128.0) / 128.0).ravel().astype(np.float32)
    return layout
