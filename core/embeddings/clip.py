"""CLIP ViT-B/32 on onnxruntime (no PyTorch): image and text in one 512-d space.

The model files are installed by the user (``pixsim models install clip``, see
core/embeddings/models.py) into ``<data_dir>/models/clip-vit-b32/``: an image graph, a text graph and
the tokenizer's ``vocab.json``/``merges.txt``. The graphs are exports of OpenAI's original
``encode_image``/``encode_text``; their input and output names and the integer type of the text
input are read from the graphs, so an export naming them differently (Hugging Face's
``pixel_values``/``input_ids`` -> ``image_embeds``/``text_embeds``) loads too. A graph with a fixed
batch dimension is fed in chunks of that size.

Preprocessing is CLIP's own: shortest side resized to 224 (bicubic), centre crop 224x224, RGB scaled
to [0, 1], normalised with CLIP's mean and standard deviation, NCHW float32.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from core.embeddings.base import EmbeddingError, ModelNotInstalled, Vectors, l2_normalise
from core.embeddings.tokenizer import CONTEXT_LENGTH, ClipTokenizer

MODEL_ID = "openai/clip-vit-base-patch32@1"
INPUT_SIZE = 224
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
# CLIP's learned temperature, exp(logit_scale): cosine similarities x 100 are its logits.
LOGIT_SCALE = 100.0

IMAGE_GRAPH = "image.onnx"
TEXT_GRAPH = "text.onnx"
VOCAB = "vocab.json"
MERGES = "merges.txt"
MANIFEST = "manifest.json"
INSTALL_HINT = "run `pixsim models install clip` (or Settings -> Models -> Install CLIP)"

_INT_TYPES: dict[str, type[np.integer[Any]]] = {"tensor(int32)": np.int32, "tensor(int64)": np.int64}


def resize_geometry(width: int, height: int, size: int = INPUT_SIZE) -> tuple[int, int]:
    """The size after resizing the shortest side to ``size`` (the long side truncated, as
    torchvision's Resize does)."""
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


def crop_box(width: int, height: int, size: int = INPUT_SIZE) -> tuple[int, int, int, int]:
    """torchvision's CenterCrop: offsets rounded half to even from the centred position."""
    left = round((width - size) / 2.0)
    top = round((height - size) / 2.0)
    return left, top, left + size, top + size


def preprocess(image: Image.Image, size: int = INPUT_SIZE) -> npt.NDArray[np.float32]:
    """One image as CLIP's ``(3, size, size)`` float32 input."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    resized = rgb.resize(resize_geometry(*rgb.size, size), Image.Resampling.BICUBIC)
    cropped = resized.crop(crop_box(*resized.size, size))
    pixels = np.asarray(cropped, dtype=np.float32) / 255.0
    normalised: npt.NDArray[np.float32] = ((pixels - MEAN) / STD).transpose(2, 0, 1)
    return np.ascontiguousarray(normalised, dtype=np.float32)


def preprocess_batch(images: Sequence[Image.Image], size: int = INPUT_SIZE) -> npt.NDArray[np.float32]:
    batch = np.empty((len(images), 3, size, size), dtype=np.float32)
    for row, image in enumerate(images):
        batch[row] = preprocess(image, size)
    return batch


@dataclass
class _Graph:
    """One ONNX graph with its feed names, and the batch size it requires (None: any)."""

    session: Any  # onnxruntime.InferenceSession (untyped)
    inputs: list[Any]
    output: str
    fixed_batch: int | None

    @classmethod
    def open(cls, path: Path, wanted_outputs: tuple[str, ...], threads: int) -> _Graph:
        import onnxruntime as ort  # a heavy import: only when CLIP is actually used

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors for damaged files
            raise EmbeddingError(
                f"cannot load the CLIP model {path.name}: {exc}. Reinstall it: {INSTALL_HINT}."
            ) from None
        outputs = [o.name for o in session.get_outputs()]
        output = next((name for name in wanted_outputs if name in outputs), outputs[0])
        inputs = list(session.get_inputs())
        first_dim = inputs[0].shape[0] if inputs[0].shape else None
        return cls(
            session, inputs, output, first_dim if isinstance(first_dim, int) and first_dim > 0 else None
        )

    def run(self, first: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> npt.NDArray[np.float32]:
        step = self.fixed_batch or max(len(first), 1)
        chunks = []
        for start in range(0, len(first), step):
            part = first[start : start + step]
            count = len(part)
            feeds = {self.inputs[0].name: part}
            for name, value in (extra or {}).items():
                feeds[name] = value[start : start + step]
            if self.fixed_batch and count < self.fixed_batch:
                feeds = {k: _pad(v, self.fixed_batch) for k, v in feeds.items()}
            result = self.session.run([self.output], feeds)[0]
            chunks.append(np.asarray(result, dtype=np.float32).reshape(len(result), -1)[:count])
        return np.concatenate(chunks) if chunks else np.empty((0, 0), dtype=np.float32)


def _pad(array: np.ndarray, rows: int) -> np.ndarray:
    padding = np.zeros((rows - len(array), *array.shape[1:]), dtype=array.dtype)
    return np.concatenate([array, padding])


class ClipEmbedder:
    """Implements ``core.embeddings.base.TextEmbedder``. ``embed_*`` are CPU-bound and thread-safe."""

    def __init__(self, image: _Graph, text: _Graph, tokenizer: ClipTokenizer, dimensions: int) -> None:
        self._image = image
        self._text = text
        self._tokenizer = tokenizer
        self._dimensions = dimensions
        self._text_type = _INT_TYPES.get(text.inputs[0].type, np.int64)

    @classmethod
    def load(cls, model_dir: Path, *, threads: int | None = None) -> ClipEmbedder:
        """Open the installed model; ``ModelNotInstalled`` (saying how to install it) when it is not."""
        files = [model_dir / name for name in (IMAGE_GRAPH, TEXT_GRAPH, VOCAB, MERGES, MANIFEST)]
        missing = [path.name for path in files if not path.is_file()]
        if missing:
            raise ModelNotInstalled(
                f"CLIP is not installed (missing in {model_dir}: {', '.join(missing)}). "
                f"To enable text search and classification suggestions, {INSTALL_HINT}."
            )
        threads = threads or max(1, min(4, (os.cpu_count() or 2) - 1))
        image = _Graph.open(model_dir / IMAGE_GRAPH, ("image_embeds", "output"), threads)
        text = _Graph.open(model_dir / TEXT_GRAPH, ("text_embeds", "output"), threads)
        tokenizer = ClipTokenizer.load(model_dir / VOCAB, model_dir / MERGES)
        embedder = cls(image, text, tokenizer, dimensions=0)
        probe = embedder._embed_raw_text(["a photo"])
        embedder._dimensions = probe.shape[1]
        return embedder

    @property
    def model_id(self) -> str:
        return MODEL_ID

    @property
    def dimensions(self) -> int:
        return self._dimensions

    @property
    def supports_text(self) -> bool:
        return True

    @property
    def tokenizer(self) -> ClipTokenizer:
        return self._tokenizer

    def embed_images(self, images: Sequence[Image.Image]) -> Vectors:
        if not images:
            return np.empty((0, self._dimensions), dtype=np.float32)
        return l2_normalise(self._image.run(preprocess_batch(images)))

    def embed_text(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.empty((0, self._dimensions), dtype=np.float32)
        return l2_normalise(self._embed_raw_text(texts))

    def _embed_raw_text(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        ids = self._tokenizer(texts, CONTEXT_LENGTH)
        extra: dict[str, np.ndarray] = {}
        for graph_input in self._text.inputs[1:]:
            if graph_input.name == "attention_mask":
                # 1 up to and including the end token (exports that take a mask ignore the padding).
                ends = np.argmax(ids == self._tokenizer.end_id, axis=1)
                mask = np.arange(ids.shape[1])[None, :] <= ends[:, None]
                extra[graph_input.name] = mask.astype(_INT_TYPES.get(graph_input.type, np.int64))
            else:
                raise EmbeddingError(
                    f"the CLIP text model wants an input PixSim does not know: {graph_input.name}"
                )
        return self._text.run(ids.astype(self._text_type), extra)


def read_manifest(model_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((model_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
