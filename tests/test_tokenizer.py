"""CLIP BPE tokenizer: ids known from OpenAI CLIP, text cleaning, padding and truncation."""

from __future__ import annotations

import pytest
import torch

from centerclip.model.tokenizer import EOT_TOKEN, SOT_TOKEN, SimpleTokenizer, bytes_to_unicode, tokenize


@pytest.fixture(scope="module")
def tokenizer() -> SimpleTokenizer:
    return SimpleTokenizer()


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("a diagram", [320, 22697]),
        ("a dog", [320, 1929]),
        ("a cat", [320, 2368]),
        ("hello world", [3306, 1002]),
    ],
)
def test_known_ids_from_openai_clip(text: str, ids: list[int]) -> None:
    row = tokenize(text)[0]
    assert row[: len(ids) + 2].tolist() == [SOT_TOKEN, *ids, EOT_TOKEN]
    assert (row[len(ids) + 2 :] == 0).all()


def test_vocabulary(tokenizer: SimpleTokenizer) -> None:
    assert tokenizer.vocab_size == 49408
    assert tokenizer.encoder["<|startoftext|>"] == SOT_TOKEN == 49406
    assert tokenizer.encoder["<|endoftext|>"] == EOT_TOKEN == 49407
    byte_map = bytes_to_unicode()
    assert len(set(byte_map.values())) == 256
    assert not any(c.isspace() for c in byte_map.values())
    assert tokenizer.encoder[byte_map[ord("a")] + "</w>"] == 256 + tokenizer.encoder["a"]


def test_output_shape_and_dtype() -> None:
    tokens = tokenize(["a dog", "a cat", ""], context_length=32)
    assert tokens.shape == (3, 32)
    assert tokens.dtype == torch.long
    assert tokenize("a dog").shape == (1, 77)
    assert tokenize(("a dog", "a cat")).shape == (2, 77)


def test_empty_and_blank_text() -> None:
    expected = [SOT_TOKEN, EOT_TOKEN] + [0] * 75
    assert tokenize("")[0].tolist() == expected
    assert tokenize("  \n\t ")[0].tolist() == expected


def test_cleaning_html_whitespace_case() -> None:
    assert tokenize("fish &amp;amp; chips").equal(tokenize("fish & chips"))
    assert tokenize("fish &amp; chips").equal(tokenize("fish & chips"))
    assert tokenize("  A \n\t  DOG  ").equal(tokenize("a dog"))
    assert tokenize("Café").equal(tokenize("café"))
    # ftfy repairs UTF-8 text that was decoded as Latin-1.
    assert tokenize("cafÃ©").equal(tokenize("café"))


def test_pretokenisation(tokenizer: SimpleTokenizer) -> None:
    assert len(tokenizer.encode("123")) == 3  # digits are split one by one
    dont = tokenizer.encode("don't")
    assert tokenizer.decode(dont[-1:]) == "'t"
    # The special tokens are recognised in text, as in OpenAI CLIP.
    assert tokenizer.encode("<|endoftext|>") == [EOT_TOKEN]


def test_unicode_and_emoji(tokenizer: SimpleTokenizer) -> None:
    for text in ["naïve façade", "東京 タワー", "a dog 🐶 with a 🎾!", "ÿ¬®\u00a0x"]:
        ids = tokenizer.encode(text)
        assert ids and all(0 <= i < SOT_TOKEN for i in ids)
    assert "🐶" in tokenizer.decode(tokenizer.encode("a dog 🐶"))
    assert tokenizer.decode(tokenizer.encode("東京")) == "東京"


def test_truncation_keeps_end_token_last() -> None:
    tokens = tokenize("word " * 100)
    assert tokens.shape == (1, 77)
    assert tokens[0, 0] == SOT_TOKEN and tokens[0, -1] == EOT_TOKEN
    assert (tokens[0, 1:-1] != 0).all() and (tokens[0, 1:-1] != EOT_TOKEN).all()
    # The text encoder reads its feature at the largest id: that must be the end token.
    assert tokens[0].argmax().item() == 76


def test_exact_fit_is_not_truncated(tokenizer: SimpleTokenizer) -> None:
    fits = " ".join(["dog"] * 6)  # 6 tokens + start + end = 8
    assert len(tokenizer.encode(fits)) == 6
    assert tokenize(fits, context_length=8)[0].tolist() == [SOT_TOKEN] + [1929] * 6 + [EOT_TOKEN]
    assert tokenize(fits + " dog", context_length=8)[0].tolist() == [SOT_TOKEN] + [1929] * 6 + [EOT_TOKEN]
    with pytest.raises(ValueError, match="context_length"):
        tokenize("a dog", context_length=1)


@pytest.mark.parametrize(
    "text",
    ["a dog is running on the grass", "a man plays guitar in a kitchen", "zxqv supercalifragilistic"],
)
def test_decode_encode_round_trip(tokenizer: SimpleTokenizer, text: str) -> None:
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_bpe_cache(tokenizer: SimpleTokenizer) -> None:
    first = tokenizer.encode("photosynthesis")
    assert "photosynthesis" in tokenizer._cache
    assert tokenizer.encode("photosynthesis") == first


def test_html_unescaped_twice_as_openai_basic_clean(tokenizer: SimpleTokenizer) -> None:
    """OpenAI's ``basic_clean``: ``ftfy.fix_text``, then ``html.unescape`` twice, then strip.

    With a literal ``<`` in the text ftfy leaves entities alone, so these cases exercise the two
    unescapes themselves (without one, ftfy's own unescaping would hide a missing pass).
    """
    import ftfy

    assert ftfy.fix_text("x < y &amp;amp; z") == "x < y &amp;amp; z"  # ftfy does not unescape here
    plain = tokenize("x < y & z")
    assert tokenize("x < y &amp; z").equal(plain)
    assert tokenize("x < y &amp;amp; z").equal(plain)  # "&amp;amp;" -> "&amp;" -> "&"
    # a third level of escaping is left once-escaped, as in OpenAI CLIP: "&amp;amp;amp;" -> "&amp;"
    triple = tokenizer.encode("x < y &amp;amp;amp; z")
    assert [tokenizer.decoder[i] for i in triple] == ["x</w>", "<</w>", "y</w>", "&</w>", "amp</w>", ";</w>", "z</w>"]
    assert not tokenize("x < y &amp;amp;amp; z").equal(plain)
    # entities other than &amp; too, and leading/trailing whitespace left by unescaping is stripped
    assert tokenize("x < y &amp;lt; z").equal(tokenize("x < y < z"))
    assert tokenize("&amp;nbsp;x < y").equal(tokenize("x < y"))
