"""prepare_image: validation, normalisation to the provider's limits, content addresses."""

from __future__ import annotations

import base64
import hashlib
import io
import random
import sys
from pathlib import Path

import pytest
from PIL import Image

from contextkit.errors import ImageError, ValidationError
from contextkit.images import PreparedImage, check_image_count, prepare_image
from contextkit.tokens.images import DEFAULT_IMAGE_LIMITS, ImageLimits, image_tokens

LIMITS = DEFAULT_IMAGE_LIMITS


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def noise(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    """Incompressible pixels, so encoded sizes are predictable and large."""
    data = random.Random(seed).randbytes(width * height * len(mode))
    return Image.frombytes(mode, (width, height), data)


def decode(data: bytes | None) -> Image.Image:
    assert data is not None
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def animated_gif(width: int = 64, height: int = 48, frames: int = 4) -> bytes:
    colours = [(index * 60, 255 - index * 60, 0) for index in range(frames)]
    images = [Image.new("RGB", (width, height), colour).convert("P") for colour in colours]
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=100)
    return buffer.getvalue()


SAMPLES = {
    "JPEG": lambda: encode(noise(120, 80), "JPEG", quality=85),
    "PNG": lambda: encode(noise(120, 80, "RGBA"), "PNG"),
    "WEBP": lambda: encode(noise(120, 80), "WEBP"),
    "GIF": lambda: encode(noise(120, 80).convert("P"), "GIF"),
    "BMP": lambda: encode(noise(120, 80), "BMP"),
}


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_image_within_limits_keeps_its_exact_bytes(fmt: str) -> None:
    data = SAMPLES[fmt]()
    prepared = prepare_image(data)
    assert prepared.data == data
    assert prepared.sha256 == hashlib.sha256(data).hexdigest()
    assert prepared.mime == f"image/{fmt.lower()}"
    assert (prepared.width, prepared.height) == (120, 80)
    assert prepared.tokens == 85 + 170 * 1
    assert not prepared.resized
    assert prepared.url is None


def test_path_str_pathlike_data_url_and_bytes_agree(tmp_path: Path) -> None:
    data = SAMPLES["PNG"]()
    path = tmp_path / "photo.png"
    path.write_bytes(data)
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    results = [prepare_image(s) for s in (data, bytearray(data), str(path), path, url)]
    assert all(r == results[0] for r in results)
    assert results[0].data == data


def test_data_url_may_be_wrapped_and_its_declared_type_is_not_trusted() -> None:
    data = SAMPLES["JPEG"]()
    encoded = base64.b64encode(data).decode()
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    prepared = prepare_image("data:image/png;base64," + wrapped)
    assert prepared.data == data
    assert prepared.mime == "image/jpeg"


def test_pil_image_is_encoded_losslessly() -> None:
    image = noise(100, 60, "RGBA")
    prepared = prepare_image(image)
    assert prepared.mime == "image/png"
    assert not prepared.resized
    assert (prepared.width, prepared.height) == (100, 60)
    assert decode(prepared.data).tobytes() == image.tobytes()
    assert prepare_image(image).sha256 == prepared.sha256


@pytest.mark.parametrize(
    ("size", "detail", "expected"),
    [
        ((1024, 1024), "auto", 85 + 170 * 4),
        ((1024, 1024), "low", 85),
        ((512, 512), "high", 85 + 170 * 1),
        ((513, 512), "auto", 85 + 170 * 2),
        ((4000, 1000), "auto", 85 + 170 * 4),  # fits 2048x512: 4x1 tiles
        ((2048, 2048), "auto", 85 + 170 * 16),
    ],
)
def test_tokens_follow_the_formula(size: tuple[int, int], detail: str, expected: int) -> None:
    prepared = prepare_image(encode(Image.new("RGB", size, "teal"), "PNG"), detail=detail)
    assert prepared.tokens == expected
    assert not prepared.resized
    assert prepared.detail == detail


def test_oversize_image_is_fitted_within_max_side() -> None:
    data = encode(Image.new("RGB", (5000, 3000), (10, 120, 200)), "JPEG")
    prepared = prepare_image(data)
    assert prepared.resized
    assert prepared.width == 4096
    assert prepared.height is not None
    assert abs(prepared.height - 3000 * 4096 / 5000) <= 1
    assert prepared.mime == "image/jpeg"
    image = decode(prepared.data)
    assert image.size == (prepared.width, prepared.height)
    assert image.format == "JPEG"
    # 4096x2457 fits 2048 as 2048x1228: 4x3 tiles.
    assert prepared.tokens == 85 + 170 * 12 == image_tokens(4096, 2457)
    assert prepared.sha256 == hashlib.sha256(prepared.data or b"").hexdigest()
    assert prepare_image(data).data == prepared.data  # deterministic: a stable address


def test_oversize_wide_image_and_its_tokens() -> None:
    prepared = prepare_image(encode(Image.new("L", (5000, 1000), 128), "PNG"))
    assert (prepared.width, prepared.height) == (4096, 819)
    assert prepared.mime == "image/png"  # a PNG source stays PNG while it fits
    assert prepared.tokens == 85 + 170 * 4  # 2048x409


def test_oversize_keeps_alpha_as_png() -> None:
    image = Image.new("RGBA", (4200, 100), (255, 0, 0, 0))
    image.putpixel((0, 0), (0, 0, 255, 128))
    prepared = prepare_image(encode(image, "PNG"))
    assert prepared.resized
    assert prepared.mime == "image/png"
    assert (prepared.width, prepared.height) == (4096, 97)
    assert decode(prepared.data).mode == "RGBA"


def test_oversize_16_bit_png_stays_16_bit() -> None:
    prepared = prepare_image(encode(Image.new("I;16", (4200, 100), 60_000), "PNG"))
    image = decode(prepared.data)
    assert image.format == "PNG"
    assert image.mode.startswith("I")
    assert image.getpixel((10, 10)) == 60_000


def test_oversize_palette_gif_becomes_png() -> None:
    prepared = prepare_image(encode(Image.new("P", (4200, 64), 3), "GIF"))
    assert prepared.mime == "image/png"
    assert (prepared.width, prepared.height) == (4096, 62)


def test_oversize_cmyk_jpeg_becomes_rgb_jpeg() -> None:
    prepared = prepare_image(encode(Image.new("CMYK", (4200, 64), (0, 255, 0, 0)), "JPEG"))
    assert decode(prepared.data).mode == "RGB"


def test_resize_applies_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to display
    data = encode(Image.new("RGB", (5000, 3000), "white"), "JPEG", exif=exif)
    prepared = prepare_image(data)
    assert (prepared.width, prepared.height) == (2457, 4096)
    assert decode(prepared.data).getexif().get(0x0112) is None


def test_over_max_bytes_is_shrunk_under_the_limit() -> None:
    limits = ImageLimits(max_bytes=30_000)
    data = encode(noise(300, 200), "PNG")
    assert len(data) > limits.max_bytes
    prepared = prepare_image(data, limits=limits)
    assert prepared.resized
    assert prepared.data is not None
    assert len(prepared.data) <= limits.max_bytes
    assert prepared.mime == "image/jpeg"  # no alpha: lossy is allowed once PNG does not fit
    assert prepared.width is not None and prepared.height is not None
    assert abs(prepared.width / prepared.height - 1.5) < 0.02
    assert decode(prepared.data).size == (prepared.width, prepared.height)
    assert prepared.tokens == image_tokens(prepared.width, prepared.height, limits=limits)


def test_over_max_bytes_with_alpha_shrinks_as_png() -> None:
    limits = ImageLimits(max_bytes=40_000)
    prepared = prepare_image(encode(noise(200, 200, "RGBA"), "PNG"), limits=limits)
    assert prepared.mime == "image/png"
    assert prepared.data is not None and len(prepared.data) <= limits.max_bytes
    assert prepared.width is not None and prepared.width < 200


def test_pil_image_over_max_bytes_falls_back_to_jpeg() -> None:
    prepared = prepare_image(noise(200, 200), limits=ImageLimits(max_bytes=60_000))
    assert prepared.resized
    assert prepared.mime == "image/jpeg"


def test_cannot_shrink_under_max_bytes_without_going_below_min_side() -> None:
    with pytest.raises(ImageError, match="cannot make the image fit 100 bytes"):
        prepare_image(encode(noise(64, 64), "PNG"), limits=ImageLimits(max_bytes=100))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (random.Random(1).randbytes(4096), "not a recognised image"),
        (b"hello, this is a text file\n" * 20, "text, not an image"),
        (encode(Image.new("RGB", (64, 64)), "TIFF"), "TIFF images are not accepted"),
        (encode(Image.new("RGB", (64, 64)), "ICO"), "ICO images are not accepted"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"/>', "SVG images"),
        (encode(noise(64, 64), "PNG")[:20], "corrupt or truncated PNG"),
    ],
)
def test_unsupported_or_corrupt_data_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        prepare_image(data)


def test_truncated_jpeg_is_refused() -> None:
    data = encode(noise(200, 200), "JPEG")
    with pytest.raises(ImageError, match="truncated JPEG"):
        prepare_image(data[: len(data) // 2])


def test_animated_gif_within_limits_is_kept_animated() -> None:
    data = animated_gif()
    prepared = prepare_image(data)
    assert prepared.data == data
    assert not prepared.resized
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 4


def test_animated_gif_truncated_in_a_later_frame_is_refused() -> None:
    frames = [noise(100, 100, "L", seed).convert("P") for seed in range(4)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    data = buffer.getvalue()
    with pytest.raises(ImageError, match="truncated GIF"):
        prepare_image(data[: int(len(data) * 0.8)])


def test_text_file_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("not really a PNG")
    with pytest.raises(ImageError, match="text, not an image"):
        prepare_image(path)


def test_missing_file_and_directory_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not found"):
        prepare_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="directory"):
        prepare_image(str(tmp_path))


def test_too_small_is_refused_not_upscaled() -> None:
    with pytest.raises(ImageError, match="at least 32 px"):
        prepare_image(encode(Image.new("RGB", (16, 16)), "PNG"))
    with pytest.raises(ImageError, match="at least 32 px"):
        prepare_image(Image.new("RGB", (100, 16)))


def test_extreme_aspect_that_would_fall_under_min_side_is_refused() -> None:
    with pytest.raises(ImageError, match="under the 32 px minimum"):
        prepare_image(encode(Image.new("L", (8192, 40)), "PNG"))


def test_format_outside_the_limits_is_refused() -> None:
    limits = ImageLimits(formats={"JPEG"})
    with pytest.raises(ImageError, match="PNG images are not accepted; convert it to one of JPEG"):
        prepare_image(SAMPLES["PNG"](), limits=limits)


def test_decompression_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    header_only = encode(Image.new("L", (40_000, 1)), "PNG")
    header_only = header_only[:16] + (40_000).to_bytes(4, "big") * 2 + header_only[24:]
    with pytest.raises(ImageError, match="decompression-bomb"):
        prepare_image(header_only)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    with pytest.raises(ImageError, match="decompression-bomb"):
        prepare_image(SAMPLES["WEBP"]())


def test_to_part_and_data_url() -> None:
    data = SAMPLES["JPEG"]()
    prepared = prepare_image(data, detail="high")
    part = prepared.to_part()
    assert list(part) == ["type", "image_url"]
    assert part["type"] == "image_url"
    assert part["image_url"] == {"url": prepared.data_url(), "detail": "high"}
    header, _, payload = prepared.data_url().partition(",")
    assert header == "data:image/jpeg;base64"
    assert base64.b64decode(payload) == data
    assert "data=" not in repr(prepared)


@pytest.mark.parametrize(("detail", "tokens"), [("auto", LIMITS.max_tokens), ("low", 85)])
def test_remote_url_is_not_downloaded(detail: str, tokens: int) -> None:
    assert LIMITS.max_tokens == 85 + 170 * 16
    url = "https://example.com/cat.png?size=large"
    prepared = prepare_image(url, detail=detail)
    assert prepared.data is None
    assert prepared.url == url
    assert (prepared.mime, prepared.width, prepared.height) == (None, None, None)
    assert prepared.tokens == tokens
    assert prepared.sha256 == hashlib.sha256(url.encode()).hexdigest()
    assert not prepared.resized
    assert prepared.to_part() == {"type": "image_url", "image_url": {"url": url, "detail": detail}}
    with pytest.raises(ImageError, match="remote image"):
        prepared.data_url()


def test_remote_url_scheme_is_lowercased_and_bad_urls_refused() -> None:
    assert prepare_image("HTTP://example.com/a.png").url == "http://example.com/a.png"
    with pytest.raises(ImageError, match="needs a host"):
        prepare_image("https:///a.png")
    with pytest.raises(ImageError, match="needs a host"):
        prepare_image("https://example.com/a b.png")
    with pytest.raises(ImageError, match="unsupported image URL"):
        prepare_image("ftp://example.com/a.png")


@pytest.mark.parametrize(
    "url",
    ["data:text/plain;base64,aGVsbG8=", "data:image/png,rawdata", "data:image/png;base64,!!!"],
)
def test_bad_data_urls_are_refused(url: str) -> None:
    with pytest.raises(ImageError, match="data URL"):
        prepare_image(url)


def test_bad_arguments() -> None:
    with pytest.raises(ValidationError, match="detail"):
        prepare_image(SAMPLES["PNG"](), detail="medium")
    with pytest.raises(ValidationError, match="got int"):
        prepare_image(42)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="exactly one of data and a remote url"):
        PreparedImage(
            data=None, mime=None, width=None, height=None, sha256="", detail="auto", tokens=0
        )


def test_image_count_limit() -> None:
    check_image_count(0)
    check_image_count(20)
    with pytest.raises(ImageError, match="21 images in one request; the limit is 20"):
        check_image_count(21)
    with pytest.raises(ImageError, match="limit is 2"):
        check_image_count(3, ImageLimits(max_images=2))
    with pytest.raises(ValidationError):
        check_image_count(-1)


def test_missing_pillow_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    data = SAMPLES["PNG"]()
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    with pytest.raises(ImageError, match=r"pip install pillow"):
        prepare_image(data)
    assert prepare_image("https://example.com/a.png").tokens == LIMITS.max_tokens
