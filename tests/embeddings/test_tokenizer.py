"""CLIP's BPE tokenizer on a tiny vocabulary written the way CLIP's files are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.embeddings import clip
from core.embeddings.base import EmbeddingError
from core.embeddings.tokenizer import END, START, ClipTokenizer, bytes_to_unicode, clean
from tests.embeddings.tiny_clip import write_tokenizer


@pytest.fixture
def tokenizer(tmp_path: Path) -> tuple[ClipTokenizer, dict[str, int]]:
    vocab = write_tokenizer(tmp_path, ["cat", "photo", "dog"])
    return ClipTokenizer.load(tmp_path / clip.VOCAB, tmp_path / clip.MERGES), vocab


def test_byte_table_is_a_printable_bijection() -> None:
    table = bytes_to_unicode()
    assert len(table) == 256 and len(set(table.values())) == 256
    assert table[ord("a")] == "a" and table[ord(" ")] == "Ġ"  # space is shifted to a printable char
    assert all(not ch.isspace() for ch in table.values())


def test_clean_lowercases_unescapes_and_collapses_whitespace() -> None:
    assert clean("  A &amp;amp;\tPhoto\n\nOF  ") == "a & photo of"


def test_words_in_the_merges_become_one_token(tokenizer: tuple[ClipTokenizer, dict[str, int]]) -> None:
    tok, vocab = tokenizer
    assert tok.encode("Photo CAT") == [vocab["photo</w>"], vocab["cat</w>"]]


def test_unknown_words_fall_back_to_bytes_and_partial_merges(
    tokenizer: tuple[ClipTokenizer, dict[str, int]],
) -> None:
    tok, vocab = tokenizer
    # "cats": c+a -> ca; "cat</w>" needs t</w>, which this word does not end with.
    assert tok.encode("cats") == [vocab["ca"], vocab["t"], vocab["s</w>"]]
    # Punctuation runs are one pre-token; digits are single pre-tokens; contractions split off.
    assert tok.encode("dog's 42!?") == [
        vocab["dog</w>"],
        vocab["'"],
        vocab["s</w>"],
        vocab["4</w>"],
        vocab["2</w>"],
        vocab["!"],
        vocab["?</w>"],
    ]


def test_non_ascii_text_is_byte_encoded(tokenizer: tuple[ClipTokenizer, dict[str, int]]) -> None:
    tok, vocab = tokenizer
    table = bytes_to_unicode()
    first, second = "é".encode()
    assert tok.encode("É") == [vocab[table[first]], vocab[table[second] + "</w>"]]


def test_batch_has_start_end_and_zero_padding(tokenizer: tuple[ClipTokenizer, dict[str, int]]) -> None:
    tok, vocab = tokenizer
    ids = tok(["a photo of a cat", ""])
    assert ids.shape == (2, 77) and ids.dtype == np.int64
    expected = [vocab[START], vocab["a</w>"], vocab["photo</w>"], vocab["o"], vocab["f</w>"]]
    expected += [vocab["a</w>"], vocab["cat</w>"], vocab[END]]
    assert ids[0, : len(expected)].tolist() == expected
    assert not ids[0, len(expected) :].any()
    assert ids[1, :2].tolist() == [vocab[START], vocab[END]] and not ids[1, 2:].any()


def test_long_text_is_truncated_and_keeps_its_end_token(
    tokenizer: tuple[ClipTokenizer, dict[str, int]],
) -> None:
    tok, vocab = tokenizer
    ids = tok(["cat " * 200])
    assert ids.shape == (1, 77)
    assert ids[0, 0] == vocab[START] and ids[0, -1] == vocab[END]
    assert (ids[0, 1:-1] == vocab["cat</w>"]).all()


def test_damaged_files_give_clear_errors(tmp_path: Path) -> None:
    write_tokenizer(tmp_path, ["cat"])
    (tmp_path / clip.MERGES).write_text("#version: 0.2\nc a t\n", encoding="utf-8")
    with pytest.raises(EmbeddingError, match="line 2"):
        ClipTokenizer.load(tmp_path / clip.VOCAB, tmp_path / clip.MERGES)
    (tmp_path / clip.VOCAB).write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(EmbeddingError, match="not a CLIP vocabulary"):
        ClipTokenizer.load(tmp_path / clip.VOCAB, tmp_path / clip.MERGES)
    (tmp_path / clip.VOCAB).write_text('{"a": 0}', encoding="utf-8")
    (tmp_path / clip.MERGES).write_text("", encoding="utf-8")
    with pytest.raises(EmbeddingError, match="startoftext"):
        ClipTokenizer.load(tmp_path / clip.VOCAB, tmp_path / clip.MERGES)
