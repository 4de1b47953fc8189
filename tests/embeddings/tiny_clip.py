"""Tiny CLIP model files, built for real with the ``onnx`` package and loaded by the real code path.

Same interface as the published export (core/embeddings/models.py): an image graph ``input`` float32
[N,3,224,224] -> ``output`` [N,D] and a text graph ``input`` int32 [N,77] -> ``output`` [N,D], plus
a CLIP-style ``vocab.json`` / ``merges.txt``.

- image graph: the mean of each normalised channel, times a 3xD matrix -> a vector chosen by colour;
- text graph: the sum of the token embeddings (row 0, the padding, is zero) -> with a vocabulary in
  which whole words are single tokens, a text's vector is the sum of its words' rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from core.embeddings import clip
from core.embeddings.tokenizer import END, END_OF_WORD, START, bytes_to_unicode

OPSET = 17


def byte_vocab() -> list[str]:
    chars = list(bytes_to_unicode().values())
    return chars + [c + END_OF_WORD for c in chars]


def word_merges(words: Iterable[str]) -> list[tuple[str, str]]:
    """Merges that build each (lower-case ASCII) word left to right into one token ``word</w>``."""
    merges: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for word in words:
        if len(word) < 2:
            continue
        left = word[0]
        for i, char in enumerate(word[1:], start=1):
            right = char + (END_OF_WORD if i == len(word) - 1 else "")
            pair = (left, right)
            if pair not in seen:
                seen.add(pair)
                merges.append(pair)
            left = left + right
    return merges


def write_tokenizer(folder: Path, words: Iterable[str]) -> dict[str, int]:
    """vocab.json (bytes, bytes+</w>, merges, specials, as CLIP builds it) and merges.txt."""
    merges = word_merges(words)
    tokens = byte_vocab() + ["".join(pair) for pair in merges] + [START, END]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    (folder / clip.VOCAB).write_text(json.dumps(vocab), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / clip.MERGES).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return vocab


def _save(graph: onnx.GraphProto, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def image_graph(path: Path, projection: np.ndarray, *, batch: int | str = "batch") -> None:
    """``output = mean_hw(input) @ projection`` (projection: 3xD)."""
    dims = projection.shape[1]
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["channel_means"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["channel_means", "projection"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_clip_image",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 224, 224])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, dims])],
        initializer=[numpy_helper.from_array(projection.astype(np.float32), "projection")],
    )
    _save(graph, path)


def text_graph(path: Path, table: np.ndarray, *, id_type: int = TensorProto.INT32) -> None:
    """``output = sum_t table[input[:, t]]`` (table: vocab x D; row 0 should be zero)."""
    dims = table.shape[1]
    nodes = [
        helper.make_node("Gather", ["table", "input"], ["embedded"], axis=0),
        helper.make_node("ReduceSum", ["embedded", "axes"], ["output"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_clip_text",
        [helper.make_tensor_value_info("input", id_type, ["batch", 77])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", dims])],
        initializer=[
            numpy_helper.from_array(table.astype(np.float32), "table"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
        ],
    )
    _save(graph, path)


def channel_means(rgb: Sequence[int]) -> np.ndarray:
    """What the image graph's ReduceMean yields for a frame of one colour (CLIP-normalised)."""
    return (np.asarray(rgb, dtype=np.float32) / 255.0 - clip.MEAN) / clip.STD


def write_model(
    folder: Path,
    *,
    words: Iterable[str] = (),
    word_vectors: dict[str, np.ndarray] | None = None,
    projection: np.ndarray | None = None,
    dims: int = 8,
    seed: int = 0,
    image_batch: int | str = "batch",
    id_type: int = TensorProto.INT32,
) -> dict[str, int]:
    """A complete installed-looking model folder (graphs, tokenizer, manifest). Tokens not given a
    vector get a small random one; ``word_vectors`` set the row of each whole-word token."""
    folder.mkdir(parents=True, exist_ok=True)
    word_vectors = word_vectors or {}
    vocab = write_tokenizer(folder, [*words, *word_vectors])
    rng = np.random.default_rng(seed)
    table = rng.normal(0, 0.01, size=(len(vocab), dims)).astype(np.float32)
    table[0] = 0.0  # the padding id contributes nothing
    for word, vector in word_vectors.items():
        table[vocab[word + END_OF_WORD]] = vector
    text_graph(folder / clip.TEXT_GRAPH, table, id_type=id_type)
    if projection is None:
        projection = rng.normal(0, 1, size=(3, dims)).astype(np.float32)
    image_graph(folder / clip.IMAGE_GRAPH, projection, batch=image_batch)
    manifest = {"name": "clip", "files": [{"name": n, "size": (folder / n).stat().st_size} for n in _FILES]}
    (folder / clip.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return vocab


_FILES = (clip.IMAGE_GRAPH, clip.TEXT_GRAPH, clip.VOCAB, clip.MERGES)
