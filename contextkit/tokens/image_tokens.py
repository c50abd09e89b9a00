"""Image token accounting: what an `image_url` part costs in the prompt.

The provider bills an image by its size, not its bytes: `detail="low"` is a flat 85 tokens;
otherwise the image is shrunk to fit a 2048x2048 square (aspect kept, never enlarged) and
costs 85 + 170 per 512-pixel tile. Sizes come from the image header, read here with the
standard library only, so counting never needs an imaging library.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import Any

from attrs import field, frozen

from contextkit._dataurl import decode_payload, payload_head, payload_size, split_data_url
from contextkit._validators import at_least
from contextkit.errors import ImageError, ValidationError

__all__ = [
    "DEFAULT_IMAGE_LIMITS",
    "DETAILS",
    "ImageLimits",
    "image_part_tokens",
    "image_size",
    "image_tokens",
]

DETAILS = ("auto", "low", "high")
"""The `image_url.detail` values the API accepts."""

_positive = at_least(1)


def _formats(value: object) -> frozenset[str]:
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        raise ValidationError(f"formats must be a collection of names, got {value!r:.80}")
    return frozenset(str(f).upper() for f in value)


@frozen(kw_only=True)
class ImageLimits:
    """What a model accepts as an image, and the constants of its token formula.

    Defaults are DeepSeek's published limits: at most 20 MB (decimal), sides 32-4096 px,
    20 images a request, JPEG/PNG/GIF/WEBP/BMP; fit 2048, 512-px tiles, 85 + 170 per tile.
    """

    max_bytes: int = field(default=20_000_000, validator=_positive)
    min_side: int = field(default=32, validator=_positive)
    max_side: int = field(default=4096, validator=_positive)
    max_images: int = field(default=20, validator=_positive)
    formats: frozenset[str] = field(
        default=frozenset({"JPEG", "PNG", "GIF", "WEBP", "BMP"}), converter=_formats
    )
    fit: int = field(default=2048, validator=_positive)
    tile: int = field(default=512, validator=_positive)
    base_tokens: int = field(default=85, validator=at_least(0))
    tile_tokens: int = field(default=170, validator=at_least(0))

    def __attrs_post_init__(self) -> None:
        if self.min_side > self.max_side:
            raise ValidationError(
                f"min_side ({self.min_side}) must not exceed max_side ({self.max_side})"
            )

    @property
    def max_tokens(self) -> int:
        """The most one image can cost: a full `fit` x `fit` square of tiles."""
        per_side = math.ceil(self.fit / self.tile)
        return self.base_tokens + self.tile_tokens * per_side * per_side


DEFAULT_IMAGE_LIMITS = ImageLimits()


def image_tokens(
    width: int, height: int, detail: str = "auto", limits: ImageLimits = DEFAULT_IMAGE_LIMITS
) -> int:
    """Prompt tokens of one `width` x `height` image; ImageError if the size is out of limits.

    The shrink to fit keeps the longer side at exactly `limits.fit` and floors the other
    (integer arithmetic, so the result never depends on float rounding).
    """
    if detail not in DETAILS:
        raise ValidationError(f"image detail must be one of {DETAILS}, got {detail!r:.40}")
    for side, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ImageError(f"image {side} must be an integer, got {value!r:.40}")
        if value < limits.min_side:
            raise ImageError(
                f"image is {width}x{height} px; each side must be at least {limits.min_side} px"
            )
        if value > limits.max_side:
            raise ImageError(
                f"image is {width}x{height} px; each side must be at most {limits.max_side} px "
                "(resize it before sending)"
            )
    if detail == "low":
        return limits.base_tokens
    longest = max(width, height)
    if longest > limits.fit:
        width, height = width * limits.fit // longest, height * limits.fit // longest
    tiles = math.ceil(width / limits.tile) * math.ceil(height / limits.tile)
    return limits.base_tokens + limits.tile_tokens * tiles


def image_size(data: bytes) -> tuple[str, int, int]:
    """`(format, width, height)` from an image's header; ImageError if it is not readable."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return "PNG", width, height
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return "GIF", width, height
    if data.startswith(b"BM") and len(data) >= 26:
        return "BMP", *_bmp_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP", *_webp_size(data)
    if data.startswith(b"\xff\xd8"):
        return "JPEG", *_jpeg_size(data)
    raise ImageError("unrecognised image data: expected JPEG, PNG, GIF, WEBP or BMP")


def _bmp_size(data: bytes) -> tuple[int, int]:
    (header_size,) = struct.unpack("<I", data[14:18])
    if header_size == 12:
        width, height = struct.unpack("<HH", data[18:22])
        return width, height
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    raise ImageError("unreadable WEBP header")


_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ImageError("corrupt JPEG: expected a marker")
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF and pos + 9 <= len(data):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        if length < 2:
            break
        pos += 2 + length
    raise ImageError("corrupt JPEG: no frame header found")


_HEADER_CHARS = 65_536
"""Base64 characters decoded first: enough for every header but a JPEG with a large EXIF."""


def _data_url_image(url: str, max_bytes: int) -> tuple[str, int, int]:
    _, payload = split_data_url(url)
    size = payload_size(payload)
    if size > max_bytes:
        raise ImageError(f"image is {size:,} bytes; the limit is {max_bytes:,}")
    head = payload_head(payload, _HEADER_CHARS)
    try:
        return image_size(head)
    except ImageError:
        if len(payload) <= _HEADER_CHARS or not head.startswith(b"\xff\xd8"):
            raise
    return image_size(decode_payload(payload))


def image_part_tokens(part: Mapping[str, Any], limits: ImageLimits = DEFAULT_IMAGE_LIMITS) -> int:
    """Tokens of an OpenAI `{"type": "image_url", ...}` part.

    A `data:` URL is measured from its header. A remote URL is never fetched: unless its
    detail is "low" it counts as the largest image the formula allows, so a budget built on
    this count cannot be exceeded by the image.
    """
    image = part.get("image_url")
    if isinstance(image, str):
        image = {"url": image}
    if not isinstance(image, Mapping) or not isinstance(image.get("url"), str):
        raise ValidationError("an image_url part needs image_url.url (a string)")
    detail = image.get("detail") or "auto"
    if detail not in DETAILS:
        raise ValidationError(f"image detail must be one of {DETAILS}, got {detail!r:.40}")
    url: str = image["url"]
    if not url.startswith("data:"):
        return limits.base_tokens if detail == "low" else limits.max_tokens
    fmt, width, height = _data_url_image(url, limits.max_bytes)
    if fmt not in limits.formats:
        raise ImageError(f"{fmt} images are not accepted; use one of {sorted(limits.formats)}")
    return image_tokens(width, height, detail, limits)
