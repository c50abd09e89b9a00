"""Image `data:` URLs, read in one place: `data:image/<type>;base64,<payload>`.

The header is matched case-insensitively and the MIME type is given back as written, so a
stored image resolves to the URL it came from. Whitespace in the payload (line-wrapped
base64) is ignored; anything else that is not base64 is refused. Errors are `ImageError`.
"""

from __future__ import annotations

import base64

from contextkit.errors import ImageError

__all__ = ["decode_payload", "parse_data_url", "payload_head", "payload_size", "split_data_url"]


def split_data_url(url: str) -> tuple[str, str]:
    """`(mime, base64 payload)` of an image data URL, the payload not yet decoded."""
    header, sep, payload = url.partition(",")
    lowered = header.lower()
    if not sep or not lowered.startswith("data:image/") or not lowered.endswith(";base64"):
        raise ImageError(
            f"an image data URL must be data:image/<type>;base64,<data>; got {url[:40]!r}"
        )
    return header[5:].split(";")[0], payload


def decode_payload(payload: str) -> bytes:
    """The bytes a base64 payload encodes."""
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except ValueError:
        raise ImageError("image data URL is not valid base64; re-encode the image") from None


def parse_data_url(url: str) -> tuple[str, bytes]:
    """`(mime, bytes)` of an image data URL."""
    mime, payload = split_data_url(url)
    return mime, decode_payload(payload)


def payload_head(payload: str, chars: int) -> bytes:
    """The leading bytes of a payload from at most its first `chars` characters (a multiple
    of 4), enough to read an image header without decoding a large image."""
    if len(payload) <= chars:
        return decode_payload(payload)
    head = "".join(payload[:chars].split())
    return decode_payload(head[: len(head) // 4 * 4])


def payload_size(payload: str) -> int:
    """The bytes a payload decodes to, from its length alone (over for wrapped base64)."""
    payload = payload.rstrip()
    return len(payload) * 3 // 4 - payload[-2:].count("=")
