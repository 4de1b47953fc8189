"""Zero-shot suggestions through the real CLIP path (tiny graphs), where the right answer is provable."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.db.enums import ContentDomain, ContentRating
from core.embeddings import classify, clip
from core.embeddings.base import EmbeddingError, Vectors
from core.embeddings.classify import PromptSets, ZeroShotClassifier
from core.embeddings.visual import VisualSignatureEmbedder
from tests.embeddings.tiny_clip import channel_means, write_model

RED, GREEN, BLUE = (230, 20, 20), (20, 230, 20), (20, 20, 230)


def projection_sending(colours: list[tuple[int, int, int]], targets: np.ndarray) -> np.ndarray:
    """The 3xD matrix with which the tiny image graph maps frames of ``colours`` onto ``targets``."""
    means = np.stack([channel_means(c) for c in colours])  # 3x3, invertible for these colours
    projection: np.ndarray = np.linalg.solve(means, targets)
    return projection


def prompt_sets(tmp_path: Path) -> PromptSets:
    """Fields whose labels are told apart by one word each ("forest", "pizza", "guitar", ...)."""
    domains = {d.value: [f"{d.value}word"] for d in ContentDomain}
    domains.update({"nature": ["forest"], "food": ["pizza"], "music": ["guitar"]})
    ratings = {r.value: [f"{r.value}word"] for r in ContentRating}
    data = {
        "templates": ["a photo of {}", "an image of {}"],
        "content_domain": domains,
        "category": {"landscape": ["forest"], "meal": ["pizza"], "concert": ["guitar"]},
        "content_rating": ratings,
    }
    path = tmp_path / "categories.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return PromptSets.load(path)


@pytest.fixture
def embedder(tmp_path: Path) -> clip.ClipEmbedder:
    axes = np.eye(6, dtype=np.float32) * 4
    words = {"forest": axes[0], "pizza": axes[1], "guitar": axes[2], "generalword": axes[3]}
    words.update({f"{d.value}word": axes[4] * 0.1 for d in ContentDomain if d.value != "general"})
    words.update(
        {"generalword": axes[3], "matureword": axes[5], "adultword": -axes[5], "explicitword": -axes[3]}
    )
    # Red frames land on "forest", green on "pizza", blue on "guitar" (+ a little of "general").
    targets = np.stack([axes[0] + 0.2 * axes[3], axes[1] + 0.2 * axes[3], axes[2] + 0.2 * axes[3]])
    write_model(
        tmp_path / "clip",
        word_vectors=words,
        projection=projection_sending([RED, GREEN, BLUE], targets),
        dims=6,
    )
    return clip.ClipEmbedder.load(tmp_path / "clip")


def test_each_image_gets_the_label_its_content_matches(tmp_path: Path, embedder: clip.ClipEmbedder) -> None:
    classifier = ZeroShotClassifier(embedder, prompt_sets(tmp_path))
    frames = [Image.new("RGB", (300, 200), c) for c in (RED, GREEN, BLUE)]
    results = classifier.suggest_many(embedder.embed_images(frames))
    assert [r.domain.value for r in results] == ["nature", "food", "music"]
    assert [r.category.value for r in results] == ["landscape", "meal", "concert"]
    assert all(r.rating.value == "general" for r in results)
    assert (
        results[0].domain_value is ContentDomain.NATURE and results[0].rating_value is ContentRating.GENERAL
    )
    for result in results:
        assert 0.9 < result.domain.score <= 1.0 + 1e-6
        assert result.domain.confidence > 0.99  # x100 logit scale: a clear winner is near-certain


def test_confidence_is_a_softmax_over_the_fields_labels(tmp_path: Path, embedder: clip.ClipEmbedder) -> None:
    classifier = ZeroShotClassifier(embedder, prompt_sets(tmp_path))
    # Halfway between "forest" and "pizza": the two share the probability, in order of score.
    labels, vectors = classifier.label_vectors("category")
    between = vectors[labels.index("landscape")] + 0.98 * vectors[labels.index("meal")]
    ranked = classifier.rank(between, "category")
    assert [s.value for s in ranked] == ["landscape", "meal", "concert"]
    assert sum(s.confidence for s in ranked) == pytest.approx(1.0)
    expected = np.exp(100 * np.array([s.score for s in ranked]))
    np.testing.assert_allclose([s.confidence for s in ranked], expected / expected.sum(), rtol=1e-6)
    assert 0.5 < ranked[0].confidence < 0.9 and ranked[1].confidence > 0.1


def test_prompt_vectors_are_computed_once_per_embedder(embedder: clip.ClipEmbedder) -> None:
    calls: list[int] = []
    original = embedder.embed_text

    def counting(texts: Sequence[str]) -> Vectors:
        calls.append(len(texts))
        return original(texts)

    embedder.embed_text = counting  # type: ignore[method-assign]
    image = embedder.embed_images([Image.new("RGB", (64, 64), RED)])[0]
    first = classify.suggest(image, embedder)
    second = classify.suggest(image, embedder)
    assert first == second
    sets = PromptSets.load()
    expected = [len(sets.templates) * sum(map(len, sets.fields[f].values())) for f in classify.FIELDS]
    assert calls == expected  # one batch per field, the first time only
    assert classify.classifier_for(embedder) is classify.classifier_for(embedder)


def test_default_prompts_cover_every_domain_and_rating_and_work_end_to_end(
    embedder: clip.ClipEmbedder,
) -> None:
    sets = PromptSets.load()
    assert set(sets.fields["content_domain"]) == {d.value for d in ContentDomain}
    assert set(sets.fields["content_rating"]) == {r.value for r in ContentRating}
    assert 5 <= len(sets.fields["category"]) <= 30
    classifier = ZeroShotClassifier(embedder, sets)
    labels, vectors = classifier.label_vectors("content_domain")
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    # An image whose vector is a label's prompt ensemble is suggested that label.
    for label in ("food", "sports", "adult"):
        assert classifier.rank(vectors[labels.index(label)], "content_domain")[0].value == label


def test_bad_inputs_are_clear_errors(tmp_path: Path, embedder: clip.ClipEmbedder) -> None:
    with pytest.raises(EmbeddingError, match="cannot embed text"):
        ZeroShotClassifier(VisualSignatureEmbedder())  # type: ignore[arg-type]
    classifier = ZeroShotClassifier(embedder, prompt_sets(tmp_path))
    with pytest.raises(EmbeddingError, match="same model"):
        classifier.suggest(np.ones(376, dtype=np.float32))
    broken = tmp_path / "broken.json"
    broken.write_text(
        json.dumps(
            {
                "templates": ["{}"],
                "content_domain": {"nature": ["x"]},
                "category": {"a": ["b"]},
                "content_rating": {"general": ["g"]},
            }
        )
    )
    with pytest.raises(EmbeddingError, match="content_domain prompts must describe exactly"):
        PromptSets.load(broken)
    broken.write_text("{")
    with pytest.raises(EmbeddingError, match="unreadable"):
        PromptSets.load(broken)
