"""The visual signature finds re-encodes, resizes and small crops, and tells different pictures apart."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from core.embeddings.base import Embedder
from core.embeddings.visual import DIMENSIONS, MODEL_ID, VisualSignatureEmbedder


def scene(seed: int, size: tuple[int, int] = (512, 512)) -> Image.Image:
    """A picture with a background, shapes and strokes in random colours (smoothed like a photo)."""
    rng = random.Random(seed)
    width, height = size
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        box = (x0, y0, x0 + rng.randrange(20, width // 2), y0 + rng.randrange(20, height // 2))
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    for _ in range(30):
        points = [(rng.randrange(width), rng.randrange(height)) for _ in range(2)]
        draw.line(points, fill=tuple(rng.randrange(256) for _ in range(3)), width=rng.randrange(1, 6))
    return image.filter(ImageFilter.GaussianBlur(1))


def reencoded(image: Image.Image, fmt: str = "JPEG", quality: int = 50) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, fmt, quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


@pytest.fixture(scope="module")
def embedder() -> VisualSignatureEmbedder:
    return VisualSignatureEmbedder()


@pytest.fixture(scope="module")
def originals() -> list[Image.Image]:
    return [scene(seed) for seed in range(24)]


def test_is_an_offline_image_embedder(embedder: VisualSignatureEmbedder) -> None:
    assert isinstance(embedder, Embedder)
    assert embedder.model_id == MODEL_ID == "pixsim/visual-signature@1"
    assert embedder.dimensions == DIMENSIONS <= 512
    assert not embedder.supports_text


def test_vectors_are_normalised_and_deterministic(
    embedder: VisualSignatureEmbedder, originals: list[Image.Image]
) -> None:
    first = embedder.embed_images(originals[:5])
    again = VisualSignatureEmbedder().embed_images(originals[:5])
    assert first.shape == (5, DIMENSIONS) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(first, again)
    assert embedder.embed_images([]).shape == (0, DIMENSIONS)


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda im: reencoded(im, "JPEG", 40), id="jpeg-q40"),
        pytest.param(lambda im: reencoded(im, "WEBP", 50), id="webp-q50"),
        pytest.param(lambda im: im.resize((180, 180), Image.Resampling.LANCZOS), id="downscaled"),
        pytest.param(lambda im: im.resize((1024, 1024), Image.Resampling.BICUBIC), id="upscaled"),
        pytest.param(lambda im: im.crop((20, 20, 492, 492)), id="crop-4pct"),
        pytest.param(
            lambda im: reencoded(im.crop((0, 0, 512, 480)).resize((320, 300)), "JPEG", 60),
            id="cropped-resized-jpeg",
        ),
    ],
)
def test_a_copy_is_far_closer_than_any_other_picture(
    embedder: VisualSignatureEmbedder, originals: list[Image.Image], variant: object
) -> None:
    assert callable(variant)
    base = embedder.embed_images(originals)
    copies = embedder.embed_images([variant(im) for im in originals])
    similarity = copies @ base.T  # row i: the copy of picture i against every original
    own = np.diag(similarity)
    others = similarity.copy()
    np.fill_diagonal(others, -np.inf)
    assert own.min() > 0.93
    # Every copy finds its own original first, by a wide margin.
    assert (own - others.max(axis=1)).min() > 0.1


def test_different_pictures_are_not_near_duplicates(
    embedder: VisualSignatureEmbedder, originals: list[Image.Image]
) -> None:
    vectors = embedder.embed_images(originals)
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, np.nan)
    assert np.nanmax(similarity) < 0.85
    assert np.nanmean(similarity) < 0.5


def test_colour_alone_makes_frames_look_alike(embedder: VisualSignatureEmbedder) -> None:
    """Plain frames (no texture at all) compare by colour and layout; other modes are accepted."""
    red, dark_red, blue = (
        Image.new("RGB", (64, 64), c) for c in ((220, 30, 30), (170, 20, 20), (30, 30, 220))
    )
    grey_l = Image.new("L", (64, 64), 128)
    rgba = Image.new("RGBA", (64, 64), (220, 30, 30, 255))
    vectors = embedder.embed_images([red, dark_red, blue, grey_l, rgba])
    assert np.isfinite(vectors).all()
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    np.testing.assert_allclose(vectors[4], vectors[0], atol=1e-6)
