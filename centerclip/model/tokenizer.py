"""CLIP's byte-level BPE tokenizer (vocabulary of 49,408 symbols).

Reproduces OpenAI CLIP's text pipeline exactly, so captions map to the token ids the pretrained text
encoder was trained on: ``ftfy`` repair, HTML unescaping (twice), whitespace collapsing, lower-casing,
regex pre-tokenisation, byte-to-unicode mapping, then greedy lowest-rank BPE merges.

The merges file ``assets/bpe_simple_vocab_16e6.txt.gz`` comes from OpenAI CLIP (MIT licence).
"""

from __future__ import annotations

import functools
import gzip
import html
import importlib.resources
from collections.abc import Iterable, Sequence
from pathlib import Path

import ftfy
import regex
import torch

__all__ = ["SOT_TOKEN", "EOT_TOKEN", "SimpleTokenizer", "bytes_to_unicode", "tokenize"]

SOT_TOKEN = 49406  # <|startoftext|>
EOT_TOKEN = 49407  # <|endoftext|>

# The file's first line is a version header; CLIP uses exactly 49152 - 256 - 2 merges after it, so that
# 2 * 256 byte symbols + merges + 2 special tokens = 49408.
_N_MERGES = 49152 - 256 - 2

# The special tokens come first so that a literal "<|endoftext|>" in a caption maps to its id, as in
# OpenAI CLIP; the rest splits contractions, letter runs, single digits and runs of other symbols.
_PRETOKENIZE = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)
_WHITESPACE = regex.compile(r"\s+")


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """Map each of the 256 byte values to a printable unicode character.

    Printable Latin-1 bytes map to themselves; the others (control characters, space, ...) are moved to
    code points 256 and up, so that every BPE symbol is a visible, whitespace-free string.
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    mapping = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + shifted)
            shifted += 1
    # The vocabulary's first 256 ids follow this insertion order: printable bytes, then the shifted ones.
    return mapping


def _clean(text: str) -> str:
    text = ftfy.fix_text(text)
    # Scraped captions are sometimes escaped twice ("&amp;amp;"), hence two passes.
    text = html.unescape(html.unescape(text))
    return _WHITESPACE.sub(" ", text.strip()).strip().lower()


def _default_merges() -> bytes:
    resource = importlib.resources.files("centerclip.model") / "assets" / "bpe_simple_vocab_16e6.txt.gz"
    return resource.read_bytes()


class SimpleTokenizer:
    """CLIP's BPE tokenizer.

    Args:
        bpe_path: gzipped merges file; defaults to the copy shipped in ``centerclip/model/assets``.
    """

    def __init__(self, bpe_path: str | Path | None = None) -> None:
        raw = Path(bpe_path).read_bytes() if bpe_path is not None else _default_merges()
        lines = gzip.decompress(raw).decode("utf-8").split("\n")[1 : _N_MERGES + 1]
        merges = [tuple(line.split()) for line in lines]
        if len(merges) != _N_MERGES or any(len(m) != 2 for m in merges):
            raise ValueError(f"{bpe_path or 'bundled merges file'}: not a CLIP BPE merges file")

        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        symbols = list(self.byte_encoder.values())
        vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder: dict[str, int] = {tok: i for i, tok in enumerate(vocab)}
        self.decoder: dict[int, str] = dict(enumerate(vocab))
        self.bpe_ranks: dict[tuple[str, str], int] = {m: i for i, m in enumerate(merges)}
        # Captions repeat the same words endlessly; memoising the per-word merges makes encoding cheap.
        self._cache: dict[str, tuple[str, ...]] = {
            "<|startoftext|>": ("<|startoftext|>",),
            "<|endoftext|>": ("<|endoftext|>",),
        }

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def bpe(self, word: str) -> tuple[str, ...]:
        """Split one pre-token (already byte-mapped) into vocabulary symbols."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        # The end-of-word marker rides on the last character so that word-final merges are distinct.
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            ranked = [
                (self.bpe_ranks.get((a, b), _N_MERGES), a, b) for a, b in zip(parts, parts[1:])
            ]
            rank, first, second = min(ranked)
            if rank == _N_MERGES:
                break
            # Merge every non-overlapping occurrence of the best pair, scanning left to right.
            merged: list[str] = []
            i = 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == first and parts[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        result = tuple(parts)
        self._cache[word] = result
        return result

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without the start/end tokens."""
        ids: list[int] = []
        for piece in _PRETOKENIZE.findall(_clean(text)):
            mapped = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[symbol] for symbol in self.bpe(mapped))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of token ids; word ends become spaces (the trailing one is dropped).

        Decoding is lossy the way CLIP's is: case, repeated whitespace and the absence of a space
        before punctuation are not recovered.
        """
        symbols = "".join(self.decoder[int(i)] for i in ids)
        # Every symbol character, including those of "</w>" and the special tokens, is a byte image.
        raw = bytes(self.byte_decoder[c] for c in symbols)
        text = raw.decode("utf-8", errors="replace").replace("</w>", " ")
        return text.strip()


@functools.cache
def _default_tokenizer() -> SimpleTokenizer:
    return SimpleTokenizer()


def tokenize(texts: str | Sequence[str], context_length: int = 77) -> torch.Tensor:
    """Tokenize captions into CLIP's fixed-length input.

    Each row is ``[49406] + bpe ids + [49407]``, zero-padded. Text longer than ``context_length`` is
    truncated and its last kept position replaced by 49407, because the text encoder reads its feature
    at the end token (the largest id).

    Args:
        texts: one caption or a sequence of captions.
        context_length: tokens per row (77 for pretrained CLIP; 32 in CenterCLIP's short-video runs).

    Returns:
        LongTensor ``[n, context_length]``.
    """
    if context_length < 2:
        raise ValueError(f"context_length must be at least 2 (start and end token), got {context_length}")
    if isinstance(texts, str):
        texts = [texts]
    tokenizer = _default_tokenizer()
    result = torch.zeros(len(texts), context_length, dtype=torch.long)
    for row, text in enumerate(texts):
        ids = [SOT_TOKEN, *tokenizer.encode(text), EOT_TOKEN]
        if len(ids) > context_length:
            ids = ids[:context_length]
            ids[-1] = EOT_TOKEN
        result[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return result
