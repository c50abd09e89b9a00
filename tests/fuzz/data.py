"""The seeded database's ids, owners and contents, and hostile values shared by the cases."""

from __future__ import annotations

import base64
import reprlib
import struct
import zlib
from typing import Any

MODEL = "deepseek-v4-flash"

ALICE = "alice-1"
BOB = "bob-1"
SQLISH = (
    "'; DROP TABLE threads; --",
    "%",
    "_",
    "\\",
    "' OR '1'='1",
    '" OR 1=1 --',
    "alice%",
    "ali_e-1",
    "%%",
    "*",
    "NULL",
    "null",
    "1; DELETE FROM messages",
    "$1",
    ":owner",
    "?",
    "alice' --",
    "Robert'); DROP TABLE messages;--",
    "\\'",
    "alice-1' AND owner LIKE '%",
)
SQL_THREADS = (("'; DROP TABLE threads; --", "%"), ("%", "_"), ("_", "\\"))
"""Seeded threads whose ids and owners look like SQL or LIKE patterns."""
EXISTING = ((ALICE, "alice"), (BOB, "bob"), ("carol-1", "carol"), *SQL_THREADS)
OTHER_OWNERS = (*SQLISH, "", "ALICE", "alice ", " alice", "Alice", "alice\u200b", "bob", "mallory")
HUGE = ("The quick brown fox jumps over the lazy dog. " * 22_223)[:1_000_000]
"""1 MB of text (a 1 MB run of one letter takes the tokenizer ~1 s: 15x slower)."""
DEEP: list[Any] = []
_cursor = DEEP
for _ in range(5_000):
    _cursor.append([])
    _cursor = _cursor[0]
del _cursor


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


PNG64 = _png(64, 64)
PNG1 = _png(1, 1)
PNG_TRUNCATED = PNG64[:40]
PNG_GARBAGE_BODY = PNG64[:33] + b"\x00\x01garbage" * 20
PNG_HUGE = PNG64[:16] + struct.pack(">II", 100_000, 100_000) + PNG64[24:]
MAGIC = (b"\x89PNG", b"\xff\xd8", b"GIF8", b"RIFF", b"BM")
CORRUPT_IMAGE_URLS = (
    "data:image/png;base64,!!!not-base64!!!",
    "data:image/png;base64,",
    "data:image/png;base64,=",
    "data:image/png,rawbytes",
    "data:image/png;base64," + base64.b64encode(b"II*\x00" + b"\x00" * 64).decode(),  # TIFF
    "data:image/x-icon;base64," + base64.b64encode(b"\x00\x00\x01\x00" + b"\x00" * 60).decode(),
    "data:image/svg+xml;base64," + base64.b64encode(b"<svg xmlns='x'></svg>").decode(),
    "data:image/heic;base64," + base64.b64encode(b"\x00\x00\x00\x18ftypheic" + bytes(32)).decode(),
    data_url(PNG1),  # 1x1: below the minimum side
    data_url(PNG_HUGE),  # 100000x100000 header
    data_url(PNG64) + "\x00",
    data_url(PNG64)[:-8] + "!!!!!!!!",
    "data:text/plain;base64," + base64.b64encode(PNG64).decode(),
    "data:;base64," + base64.b64encode(PNG64).decode(),
    "ftp://example.com/cat.png",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "//example.com/cat.png",
    "data:image/png;base64," + "A" * 8_000_000,  # over max_bytes
)
"""Image URLs a user message must refuse (each raises ImageError or ValidationError)."""

SEED_RESPONSE = {
    "id": "resp-seed",
    "object": "chat.completion",
    "model": MODEL,
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "You're welcome, Alice."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 120, "completion_tokens": 7, "prompt_cache_hit_tokens": 64},
}


def tool_call(id: Any, name: Any = "get_weather", arguments: Any = '{"city":"Paris"}') -> Any:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


_short = reprlib.Repr()
_short.maxstring = 70
_short.maxother = 70
_short.maxlist = 6
_short.maxtuple = 6
_short.maxdict = 6
_short.maxlevel = 4
short_repr = _short.repr
"""A value's repr, cut short (an input can be 1 MB long or 5,000 lists deep)."""
