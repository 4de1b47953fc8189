"""CLIP's text tokenizer: byte-level BPE over lower-cased, whitespace-cleaned text.

It reads the installed model's ``vocab.json`` (token -> id) and ``merges.txt`` (one merge per line,
by rank; a ``#version`` header line is skipped), as published with every CLIP checkpoint. A text
becomes ``<|startoftext|> tokens... <|endoftext|>`` padded with 0 to the context length (77); a text
longer than that is truncated and still ends with ``<|endoftext|>`` (the text model reads its
embedding at that token).

Differences from OpenAI's reference tokenizer, both deliberate: ``ftfy`` (mojibake repair) is not
applied, and the pre-tokenising pattern uses Python's ``re`` classes (``[^\\W\\d_]`` for letters,
``\\d`` for digits) instead of Unicode property classes, which agree on everything but rare scripts.
"""

from __future__ import annotations

import functools
import html
import itertools
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from core.embeddings.base import EmbeddingError

CONTEXT_LENGTH = 77
START = "<|startoftext|>"
END = "<|endoftext|>"
END_OF_WORD = "</w>"

# Special tokens, English contractions, runs of letters, single digits, runs of anything else.
_PATTERN = re.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+""",
    re.IGNORECASE,
)
_SPACES = re.compile(r"\s+")


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """Each byte as a printable character: bytes that are printable stand for themselves, the others
    (controls, space, ...) are shifted past U+0100. BPE then works on strings with no whitespace."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    mapping: dict[int, str] = {b: chr(b) for b in printable}
    shift = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + shift)
            shift += 1
    return mapping


def clean(text: str) -> str:
    """Unescape HTML entities (twice, as CLIP does), collapse whitespace, lower-case."""
    text = html.unescape(html.unescape(text))
    return _SPACES.sub(" ", text).strip().lower()


class ClipTokenizer:
    def __init__(self, vocab: dict[str, int], merges: Sequence[tuple[str, str]]) -> None:
        for special in (START, END):
            if special not in vocab:
                raise EmbeddingError(
                    f"the CLIP vocabulary has no {special} token: the model files are damaged"
                )
        self.vocab = vocab
        self.ranks = {pair: rank for rank, pair in enumerate(merges)}
        self.start_id = vocab[START]
        self.end_id = vocab[END]
        self._byte_chars = bytes_to_unicode()
        self._cache: dict[str, tuple[str, ...]] = {}

    @classmethod
    def load(cls, vocab_path: Path, merges_path: Path) -> ClipTokenizer:
        try:
            vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
            lines = merges_path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise EmbeddingError(
                f"cannot read the CLIP tokenizer files in {vocab_path.parent}: {exc}"
            ) from None
        if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
            raise EmbeddingError(f"{vocab_path} is not a CLIP vocabulary (token -> id)")
        merges: list[tuple[str, str]] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip() or (number == 1 and line.startswith("#version")):
                continue
            parts = line.split()
            if len(parts) != 2:
                raise EmbeddingError(f"{merges_path}, line {number}: expected two symbols, got {line!r}")
            merges.append((parts[0], parts[1]))
        return cls(vocab, merges)

    def bpe(self, word: str) -> tuple[str, ...]:
        """The BPE symbols of one pre-token (already mapped to byte characters)."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        symbols = [*word[:-1], word[-1] + END_OF_WORD]
        while len(symbols) > 1:
            pairs = {(a, b) for a, b in itertools.pairwise(symbols)}
            best = min(pairs, key=lambda pair: self.ranks.get(pair, len(self.ranks)))
            if best not in self.ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        result = tuple(symbols)
        if len(self._cache) < 50_000:
            self._cache[word] = result
        return result

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without start/end tokens. Symbols missing from the vocabulary (a
        vocabulary that does not match its merges) are an error, not silently dropped."""
        ids: list[int] = []
        for piece in _PATTERN.findall(clean(text)):
            word = "".join(self._byte_chars[b] for b in piece.encode("utf-8"))
            for symbol in self.bpe(word):
                token = self.vocab.get(symbol)
                if token is None:
                    raise EmbeddingError(
                        f"the CLIP vocabulary lacks the token {symbol!r}: the model files do not match"
                    )
                ids.append(token)
        return ids

    def __call__(self, texts: Sequence[str], context_length: int = CONTEXT_LENGTH) -> npt.NDArray[np.int64]:
        """``(len(texts), context_length)`` ids: start, tokens, end, then 0 padding; truncated texts
        keep their end token."""
        out = np.zeros((len(texts), context_length), dtype=np.int64)
        for row, text in enumerate(texts):
            tokens = [self.start_id, *self.encode(text), self.end_id]
            if len(tokens) > context_length:
                tokens = tokens[:context_length]
                tokens[-1] = self.end_id
            out[row, : len(tokens)] = tokens
        return out
