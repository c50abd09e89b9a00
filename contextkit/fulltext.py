"""The words of a message, as full-text search sees them: pure, no database.

One tokenizer serves the index (every message's document, written with the message), the
queries (`contextkit.recall` parses them into these words) and the snippets (which find the
words again in the original text, with their offsets). So a query matches exactly what was
indexed, on SQLite and PostgreSQL alike:

- a word is a run of letters, digits and combining marks; everything else separates words
  (`A-5531` is the two words `a 5531`, searched as a phrase);
- each CJK character (Han, kana, Hangul) is a word of its own, so a run of CJK text is
  found by any substring of it (searched as a phrase of characters);
- words are case-folded and lose their accents (`Café` → `cafe`), and are cut at
  `MAX_WORD` characters.

A document is its words joined by single spaces, cut into chunks of `CHUNK_WORDS` words (a
PostgreSQL tsvector holds at most 1 MB and positions up to 16,383), consecutive chunks
sharing `CHUNK_OVERLAP` words so a phrase across a cut is still found. The database's own
tokenizer (FTS5 `unicode61`, PostgreSQL's `simple` parser) then only splits on the spaces.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = [
    "CHUNK_OVERLAP",
    "CHUNK_WORDS",
    "MAX_WORD",
    "RECALL_MARK",
    "chunks",
    "document_text",
    "fold",
    "has_cjk",
    "spans",
    "words",
]

MAX_WORD = 64
"""Longer words (base64, hashes) are indexed and searched by their first 64 characters."""
CHUNK_WORDS = 16_000
CHUNK_OVERLAP = 16
RECALL_MARK = "[recall]"
"""How the recall tool's results begin (`contextkit.recall`). Their document is this mark
alone (found by searching "recall"): they quote other messages, which are indexed
themselves, and indexing the copies would answer every later recall with the earlier
recall's result."""

_CJK = (
    "\u1100-\u11ff\u2e80-\u2fdf\u3005-\u3007\u3040-\u30ff\u3100-\u312f\u3130-\u318f"
    "\u31a0-\u31bf\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af"
    "\ud7b0-\ud7ff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f"
)


def _marks() -> str:
    """The combining marks of the Basic Multilingual Plane as a character-class body."""
    ranges: list[list[int]] = []
    for code in range(0x300, 0x10000):
        if unicodedata.category(chr(code)).startswith("M"):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    return "".join(f"\\u{a:04x}-\\u{b:04x}" if a != b else f"\\u{a:04x}" for a, b in ranges)


@functools.cache
def _word() -> re.Pattern[str]:
    """A word: one CJK character, or a run of other letters, digits (any script) and
    combining marks (built on first use: scanning the marks takes some 30 ms)."""
    return re.compile(rf"[{_CJK}]|(?:[^\W_{_CJK}]|[{_marks()}])+")


_ASCII_WORD = re.compile(r"[a-z0-9]+")
_HAS_CJK = re.compile(f"[{_CJK}]")
_ACCENTS = re.compile("[\u0300-\u036f]")
"""Combining diacritical marks: what `fold` removes after decomposing (é → e + ◌́)."""


def fold(text: str) -> str:
    """Text as the index reads it: compatibility-decomposed (ﬁ → fi, ① → 1), accents
    removed, recomposed, case-folded (Straße → strasse)."""
    if text.isascii():
        return text.lower()
    decomposed = _ACCENTS.sub("", unicodedata.normalize("NFKD", text))
    return unicodedata.normalize("NFC", decomposed).casefold()


def has_cjk(text: str) -> bool:
    """Whether `text` holds a CJK character (Han, kana or Hangul)."""
    return _HAS_CJK.search(text) is not None


def _cut(found: list[str]) -> list[str]:
    if found and max(map(len, found)) > MAX_WORD:
        return [w[:MAX_WORD] for w in found]
    return found


def words(text: str) -> list[str]:
    """The words of `text`, folded, in order (see the module docstring)."""
    if text.isascii():
        return _cut(_ASCII_WORD.findall(text.lower()))
    return _cut(_word().findall(fold(text)))


def spans(text: str) -> Iterator[tuple[str, int, int]]:
    """Each word of `text` with the [start, end) of its characters in `text`, for snippets.

    The words are `words(text)`'s but for rare compatibility characters that only become
    letters once folded (㎏); a word whose folding splits it (½ → 1⁄2) yields each part with
    the word's span.
    """
    pattern = _ASCII_WORD if text.isascii() else _word()
    source = text.lower() if text.isascii() else text
    for match in pattern.finditer(source):
        word = match.group()
        if word.isascii():
            yield word.lower()[:MAX_WORD], match.start(), match.end()
            continue
        for part in words(word):
            yield part, match.start(), match.end()


def chunks(text: str) -> list[str]:
    """The index bodies of a document: its words, space-joined, in overlapping chunks.

    Always at least one (an empty string for a text without words), so every message has
    a document.
    """
    found = words(text)
    if len(found) <= CHUNK_WORDS:
        return [" ".join(found)]
    step = CHUNK_WORDS - CHUNK_OVERLAP
    return [
        " ".join(found[i : i + CHUNK_WORDS]) for i in range(0, len(found) - CHUNK_OVERLAP, step)
    ]


def document_text(
    role: str,
    content: str | None,
    parts: Sequence[Mapping[str, Any]] | None,
    tool_calls: Sequence[Mapping[str, Any]] | None,
) -> str:
    """The searchable text of a stored message, from its columns.

    Its content (or text parts), then each tool call's function name and arguments.
    Reasoning is not indexed: it is the model's scratch work, often longer than the answer,
    and what it concluded is in the answer. A recall result indexes its mark only (see
    `RECALL_MARK`).
    """
    texts: list[str] = []
    if content:
        if role == "tool" and content.startswith(RECALL_MARK):
            return RECALL_MARK
        texts.append(content)
    for part in parts or ():
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
    for call in tool_calls or ():
        function = call.get("function") or {}
        texts.append(f"{function.get('name', '')} {function.get('arguments', '')}")
    return "\n".join(texts)
