"""The CLIP embedder through the real path: files on disk, onnxruntime sessions, CLIP preprocessing and
the BPE tokenizer, with tiny graphs that have the published export's interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto
from PIL import Image

from core.embeddings import clip
from core.embeddings.base import EmbeddingError, ModelNotInstalled, TextEmbedder
from tests.embeddings.tiny_clip import channel_means, write_model

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def test_resize_and_crop_geometry_follow_torchvision() -> None:
    assert clip.resize_geometry(640, 480) == (298, 224)  # 224 * 640/480 = 298.67, truncated
    assert clip.resize_geometry(480, 640) == (224, 298)
    assert clip.resize_geometry(100, 100) == (224, 224)
    assert clip.crop_box(298, 224) == (37, 0, 261, 224)  # (298-224)/2 = 37
    assert clip.crop_box(225, 224) == (0, 0, 224, 224)  # 0.5 rounds half to even -> 0
    assert clip.crop_box(227, 224) == (2, 0, 226, 224)  # 1.5 -> 2


def test_preprocessing_keeps_the_centre_and_normalises_with_clips_statistics() -> None:
    # 400x200: left quarter red, middle half green, right quarter blue. Resized to 448x224 and
    # centre-cropped to 224 wide, only the green middle remains.
    image = Image.new("RGB", (400, 200), RED)
    image.paste(Image.new("RGB", (200, 200), GREEN), (100, 0))
    image.paste(Image.new("RGB", (100, 200), BLUE), (300, 0))
    pixels = clip.preprocess(image)
    assert pixels.shape == (3, 224, 224) and pixels.dtype == np.float32
    assert pixels.flags["C_CONTIGUOUS"]
    expected = channel_means(GREEN)  # ((0,1,0) - mean) / std
    np.testing.assert_allclose(pixels[:, 112, 112], expected, rtol=1e-6)
    np.testing.assert_allclose(pixels[:, 1, 1], expected, atol=0.02)  # the crop edge is still green
    np.testing.assert_allclose(expected, [-1.7922626, 2.0748837, -1.4802197], rtol=1e-6)


def test_preprocessing_converts_other_modes_to_rgb() -> None:
    grey = Image.new("L", (300, 300), 255)
    np.testing.assert_allclose(clip.preprocess(grey)[:, 5, 5], channel_means((255, 255, 255)), rtol=1e-6)


def test_loads_and_embeds_images_normalised_and_in_order(tmp_path: Path) -> None:
    projection = np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32)
    write_model(tmp_path, projection=projection)
    embedder = clip.ClipEmbedder.load(tmp_path)
    assert isinstance(embedder, TextEmbedder)
    assert embedder.dimensions == 8 and embedder.supports_text
    images = [Image.new("RGB", (320, 240), colour) for colour in (RED, GREEN, BLUE, RED)]
    vectors = embedder.embed_images(images)
    assert vectors.shape == (4, 8) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    for row, colour in enumerate((RED, GREEN, BLUE)):
        raw = channel_means(colour) @ projection
        np.testing.assert_allclose(vectors[row], raw / np.linalg.norm(raw), atol=1e-4)  # float32 sums
    np.testing.assert_allclose(vectors[0], vectors[3], atol=1e-6)
    assert embedder.embed_images([]).shape == (0, 8)


def test_a_graph_with_a_fixed_batch_of_one_is_fed_image_by_image(tmp_path: Path) -> None:
    write_model(tmp_path / "fixed", image_batch=1, seed=3)
    write_model(tmp_path / "dynamic", seed=3)
    images = [Image.new("RGB", (64, 64), c) for c in (RED, GREEN, BLUE)]
    fixed = clip.ClipEmbedder.load(tmp_path / "fixed").embed_images(images)
    dynamic = clip.ClipEmbedder.load(tmp_path / "dynamic").embed_images(images)
    np.testing.assert_allclose(fixed, dynamic, atol=1e-6)


@pytest.mark.parametrize("id_type", [TensorProto.INT32, TensorProto.INT64])
def test_text_goes_through_the_tokenizer_into_the_text_graph(tmp_path: Path, id_type: int) -> None:
    axes = np.eye(4, dtype=np.float32)
    write_model(tmp_path, word_vectors={"cat": axes[0] * 5, "dog": axes[1] * 5}, dims=4, id_type=id_type)
    embedder = clip.ClipEmbedder.load(tmp_path)
    vectors = embedder.embed_text(["A CAT", "a dog", "cat dog"])
    assert vectors.shape == (3, 4)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert np.argmax(vectors[0]) == 0 and vectors[0][0] > 0.99
    assert np.argmax(vectors[1]) == 1 and vectors[1][1] > 0.99
    np.testing.assert_allclose(vectors[2][:2], [2**-0.5, 2**-0.5], atol=0.01)
    assert embedder.embed_text([]).shape == (0, 4)


def test_batches_give_the_same_vectors_as_single_calls(tmp_path: Path) -> None:
    write_model(tmp_path, words=["sunset", "beach"], seed=7)
    embedder = clip.ClipEmbedder.load(tmp_path)
    texts = ["sunset", "a beach at sunset", "beach"]
    together = embedder.embed_text(texts)
    for row, text in enumerate(texts):
        np.testing.assert_allclose(together[row], embedder.embed_text([text])[0], atol=1e-6)


def test_missing_model_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(ModelNotInstalled, match="pixsim models install clip"):
        clip.ClipEmbedder.load(tmp_path / "nothing-here")


def test_a_damaged_graph_is_a_clear_error(tmp_path: Path) -> None:
    write_model(tmp_path)
    (tmp_path / clip.IMAGE_GRAPH).write_bytes(b"not an onnx file")
    with pytest.raises(EmbeddingError, match=r"image\.onnx.*Reinstall"):
        clip.ClipEmbedder.load(tmp_path)
