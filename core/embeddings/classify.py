"""Zero-shot suggestions of content domain, category and rating from CLIP vectors.

Each label of each field is described by a few phrases (resources/embeddings/categories.json); every
phrase is put into every template ("a photo of {}.") and the label's vector is the normalised mean
of those prompts' text vectors (CLIP's prompt ensembling). An image's suggestion for a field is the
label whose vector is most similar; its confidence is the softmax over the field's labels of the
cosine similarities times CLIP's logit scale (100). Suggestions are only suggestions: the user
confirms them. Prompt vectors are computed once per text embedder and kept.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.db.enums import ContentDomain, ContentRating
from core.embeddings.base import EmbeddingError, TextEmbedder, Vectors, l2_normalise
from core.embeddings.clip import LOGIT_SCALE

FIELDS = ("content_domain", "category", "content_rating")


def categories_file() -> Path:
    """``resources/embeddings/categories.json``: beside ``core`` in a checkout and in a wheel."""
    return Path(__file__).resolve().parents[2] / "resources" / "embeddings" / "categories.json"


@dataclass(frozen=True)
class PromptSets:
    templates: tuple[str, ...]
    # field -> label -> descriptions
    fields: Mapping[str, Mapping[str, tuple[str, ...]]]

    def prompts(self, field: str, label: str) -> list[str]:
        return [t.format(d) for d in self.fields[field][label] for t in self.templates]

    @classmethod
    def load(cls, path: Path | None = None) -> PromptSets:
        path = path or categories_file()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            templates = tuple(str(t) for t in data["templates"])
            fields = {
                field: {
                    str(label): tuple(str(d) for d in descriptions)
                    for label, descriptions in data[field].items()
                }
                for field in FIELDS
            }
        except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
            raise EmbeddingError(f"the classification prompts in {path} are unreadable: {exc!r}") from None
        sets = cls(templates, fields)
        sets.check()
        return sets

    def check(self) -> None:
        if not self.templates or not all("{}" in t for t in self.templates):
            raise EmbeddingError("every classification template needs a {} for the description")
        expected: dict[str, set[str]] = {
            "content_domain": {str(v) for v in ContentDomain},
            "content_rating": {str(v) for v in ContentRating},
        }
        for field in FIELDS:
            labels = self.fields.get(field, {})
            if not labels or not all(labels.values()):
                raise EmbeddingError(f"the classification prompts have no descriptions for some {field}")
            if field in expected and set(labels) != expected[field]:
                raise EmbeddingError(f"the {field} prompts must describe exactly {sorted(expected[field])}")


@dataclass(frozen=True)
class Suggestion:
    value: str
    score: float  # cosine similarity of the image to the label's prompts
    confidence: float  # softmax probability among the field's labels (CLIP's logit scale)


@dataclass(frozen=True)
class Suggestions:
    domain: Suggestion
    category: Suggestion
    rating: Suggestion

    @property
    def domain_value(self) -> ContentDomain:
        return ContentDomain(self.domain.value)

    @property
    def rating_value(self) -> ContentRating:
        return ContentRating(self.rating.value)


class ZeroShotClassifier:
    def __init__(self, text_embedder: TextEmbedder, prompts: PromptSets | None = None) -> None:
        if not text_embedder.supports_text:
            raise EmbeddingError(f"{text_embedder.model_id} cannot embed text: suggestions need CLIP")
        self._embedder = text_embedder
        self._prompts = prompts or PromptSets.load()
        self._labels: dict[str, tuple[list[str], Vectors]] = {}
        self._lock = threading.Lock()

    def label_vectors(self, field: str) -> tuple[list[str], Vectors]:
        """The field's labels and their (normalised, ensembled) prompt vectors, computed once."""
        with self._lock:
            cached = self._labels.get(field)
            if cached is None:
                labels = list(self._prompts.fields[field])
                prompts = [self._prompts.prompts(field, label) for label in labels]
                flat = self._embedder.embed_text([p for group in prompts for p in group])
                means, start = [], 0
                for group in prompts:
                    means.append(flat[start : start + len(group)].mean(axis=0))
                    start += len(group)
                cached = (labels, l2_normalise(np.stack(means).astype(np.float32)))
                self._labels[field] = cached
            return cached

    def rank(self, image_vector: Vectors, field: str) -> list[Suggestion]:
        """Every label of ``field``, most likely first."""
        labels, vectors = self.label_vectors(field)
        vector = np.asarray(image_vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != vectors.shape[1]:
            raise EmbeddingError(
                f"this image vector has {vector.shape[0]} dimensions, {self._embedder.model_id} has "
                f"{vectors.shape[1]}: suggestions need the image's vector from the same model"
            )
        norm = float(np.linalg.norm(vector))
        scores = vectors @ (vector / norm if norm > 0 else vector)
        logits = LOGIT_SCALE * scores.astype(np.float64)
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        order = np.argsort(-scores, kind="stable")
        return [Suggestion(labels[i], float(scores[i]), float(probabilities[i])) for i in order]

    def suggest(self, image_vector: Vectors) -> Suggestions:
        return Suggestions(
            domain=self.rank(image_vector, "content_domain")[0],
            category=self.rank(image_vector, "category")[0],
            rating=self.rank(image_vector, "content_rating")[0],
        )

    def suggest_many(self, image_vectors: Sequence[Vectors] | Vectors) -> list[Suggestions]:
        return [self.suggest(v) for v in image_vectors]


_classifiers: weakref.WeakKeyDictionary[TextEmbedder, ZeroShotClassifier] = weakref.WeakKeyDictionary()
_classifiers_lock = threading.Lock()


def classifier_for(text_embedder: TextEmbedder) -> ZeroShotClassifier:
    """One classifier (and one set of prompt vectors) per text embedder, for as long as it lives."""
    with _classifiers_lock:
        classifier = _classifiers.get(text_embedder)
        if classifier is None:
            classifier = ZeroShotClassifier(text_embedder)
            _classifiers[text_embedder] = classifier
        return classifier


def suggest(image_vector: Vectors, text_embedder: TextEmbedder) -> Suggestions:
    """Domain, category and rating suggestions for an image's vector from ``text_embedder``'s model.
    CPU-bound the first time (the prompts are embedded): call from a worker thread."""
    return classifier_for(text_embedder).suggest(image_vector)
