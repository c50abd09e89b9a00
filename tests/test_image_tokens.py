"""Image token formula, size limits and header sniffing."""

from __future__ import annotations

import base64
import struct
import zlib

import pytest

from contextkit.errors import ImageError, ValidationError
from contextkit.tokens import image_tokens
from contextkit.tokens.images import ImageLimits, image_part_tokens, image_size


def png(width: int, height: int) -> bytes:
    """A real (tiny-payload) PNG of the given size: valid chunks and CRCs."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = b"".join(b"\x00" + b"\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("width", "height", "detail", "expected"),
    [
        (2048, 2048, "auto", 85 + 170 * 16),
        (2049, 2049, "auto", 85 + 170 * 16),
        (4096, 1024, "auto", 85 + 170 * 4),
        (1024, 4096, "high", 85 + 170 * 4),
        (4096, 4096, "auto", 85 + 170 * 16),
        (512, 512, "auto", 85 + 170),
        (513, 512, "auto", 85 + 170 * 2),
        (512, 513, "high", 85 + 170 * 2),
        (32, 32, "auto", 85 + 170),
        (1024, 768, "auto", 85 + 170 * 4),
        (3000, 1000, "auto", 85 + 170 * 4 * 2),
        (4095, 1025, "auto", 85 + 170 * 4),
        (4095, 1026, "auto", 85 + 170 * 4 * 2),
        (4096, 4096, "low", 85),
        (32, 32, "low", 85),
    ],
)
def test_image_token_table(width: int, height: int, detail: str, expected: int) -> None:
    # 4095x1025 shrinks to 2048x512.6, floored to 512: one tile row, not two.
    assert image_tokens(width, height, detail) == expected


@pytest.mark.parametrize(
    ("width", "height"), [(31, 32), (32, 31), (1, 1), (4097, 32), (32, 4097), (5000, 5000)]
)
@pytest.mark.parametrize("detail", ["auto", "low", "high"])
def test_out_of_limit_sizes_raise(width: int, height: int, detail: str) -> None:
    with pytest.raises(ImageError, match=f"{width}x{height}"):
        image_tokens(width, height, detail)


def test_bad_arguments() -> None:
    with pytest.raises(ValidationError, match="detail"):
        image_tokens(512, 512, "medium")
    with pytest.raises(ImageError, match="integer"):
        image_tokens(512.0, 512)  # type: ignore[arg-type]
    with pytest.raises(ImageError):
        image_tokens(True, 512)  # type: ignore[arg-type]


def test_limits_are_configurable() -> None:
    limits = ImageLimits(fit=1024, tile=256, base_tokens=10, tile_tokens=20, max_side=8192)
    assert image_tokens(8192, 2048, limits=limits) == 10 + 20 * 4 * 1
    assert limits.max_tokens == 10 + 20 * 16
    assert ImageLimits().max_tokens == 2805
    with pytest.raises(ValidationError):
        ImageLimits(min_side=100, max_side=50)


def test_image_size_reads_headers() -> None:
    assert image_size(png(640, 480)) == ("PNG", 640, 480)
    assert image_size(b"GIF89a" + struct.pack("<HH", 320, 200) + b"\x00" * 8) == ("GIF", 320, 200)
    bmp = b"BM" + b"\x00" * 12 + struct.pack("<Iii", 40, 800, -600) + b"\x00" * 24
    assert image_size(bmp) == ("BMP", 800, 600)
    core_bmp = b"BM" + b"\x00" * 12 + struct.pack("<IHH", 12, 33, 44) + b"\x00" * 8
    assert image_size(core_bmp) == ("BMP", 33, 44)
    vp8x = b"RIFF\x00\x00\x00\x00WEBPVP8X" + b"\x00" * 8 + (1999).to_bytes(3, "little")
    vp8x += (999).to_bytes(3, "little")
    assert image_size(vp8x) == ("WEBP", 2000, 1000)
    bits = (300 - 1) | ((150 - 1) << 14)
    vp8l = b"RIFF\x00\x00\x00\x00WEBPVP8L\x00\x00\x00\x00\x2f" + bits.to_bytes(4, "little")
    assert image_size(vp8l) == ("WEBP", 300, 150)
    vp8 = b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 7 + b"\x9d\x01\x2a"
    vp8 += struct.pack("<HH", 640, 360)
    assert image_size(vp8) == ("WEBP", 640, 360)
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 720, 1280, 1) + b"\x00" * 3
    assert image_size(b"\xff\xd8" + app0 + sof + b"\xff\xd9") == ("JPEG", 1280, 720)
    with pytest.raises(ImageError):
        image_size(b"not an image at all")
    with pytest.raises(ImageError):
        image_size(b"\xff\xd8\xff\xe0\x00")


def test_image_part_tokens_from_data_url() -> None:
    part = {"type": "image_url", "image_url": {"url": data_url(png(1000, 600))}}
    assert image_part_tokens(part) == 85 + 170 * 2 * 2
    low = {"type": "image_url", "image_url": {"url": data_url(png(1000, 600)), "detail": "low"}}
    assert image_part_tokens(low) == 85
    with pytest.raises(ImageError, match="at least 32"):
        image_part_tokens({"type": "image_url", "image_url": {"url": data_url(png(8, 8))}})


def test_jpeg_header_after_a_large_exif_block() -> None:
    exif = b"\xff\xe1" + struct.pack(">H", 65_000) + b"\x00" * 64_998
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 1500, 1100, 1) + b"\x00" * 3
    url = data_url(b"\xff\xd8" + exif + sof + b"\xff\xd9", "image/jpeg")
    part = {"type": "image_url", "image_url": {"url": url}}
    assert image_part_tokens(part) == 85 + 170 * 3 * 3


def test_remote_images_count_as_the_largest_possible() -> None:
    remote = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    assert image_part_tokens(remote) == 2805
    remote_low = {"type": "image_url", "image_url": {"url": "https://x.test/a", "detail": "low"}}
    assert image_part_tokens(remote_low) == 85


def test_image_part_errors() -> None:
    no_gif = ImageLimits(formats={"PNG"})
    gif = b"GIF89a" + struct.pack("<HH", 64, 64) + b"\x00" * 8
    part = {"type": "image_url", "image_url": {"url": data_url(gif, "image/gif")}}
    with pytest.raises(ImageError, match="GIF"):
        image_part_tokens(part, no_gif)
    tiny = ImageLimits(max_bytes=50)
    with pytest.raises(ImageError, match="bytes"):
        image_part_tokens({"type": "image_url", "image_url": {"url": data_url(png(64, 64))}}, tiny)
    with pytest.raises(ImageError, match="base64"):
        image_part_tokens({"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@@"}})
    with pytest.raises(ImageError, match="data URL"):
        image_part_tokens({"type": "image_url", "image_url": {"url": "data:text/plain,hi"}})
    with pytest.raises(ValidationError):
        image_part_tokens({"type": "image_url", "image_url": {}})
    with pytest.raises(ValidationError, match="detail"):
        image_part_tokens({"type": "image_url", "image_url": {"url": "https://x", "detail": "x"}})
