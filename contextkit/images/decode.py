"""Images opened and proven whole: Pillow parses only accepted formats, every frame decoded.

`verify_image` is what a store runs before it keeps an image; `open_image` is the decode
`prepare_image` starts from. Corrupt, truncated, mislabelled or unsupported data and
decompression bombs (over `PIL.Image.MAX_IMAGE_PIXELS` decoded pixels in all) raise
`ImageError` saying what was found and what to do.
"""

from __future__ import annotations

import hashlib
import io
import struct
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from contextkit.errors import ImageError
from contextkit.tokens.image_tokens import DEFAULT_IMAGE_LIMITS, ImageLimits, image_size

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["DECODE_ERRORS", "mime_type", "open_image", "verify_image"]

_INSTALL_HINT = "Pillow is needed to read images: pip install pillow"
_MIME = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
}
DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    ZeroDivisionError,
)
"""What Pillow raises on malformed input; it has no single exception type for it."""


_VERIFIED: OrderedDict[tuple[str, str, frozenset[str]], tuple[str, int, int]] = OrderedDict()
_VERIFIED_MAX = 256
_VERIFIED_LOCK = threading.Lock()
_MIME_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-ms-bmp": "image/bmp",
}


def verify_image(
    data: bytes,
    mime: str,
    limits: ImageLimits = DEFAULT_IMAGE_LIMITS,
    *,
    sha256: str | None = None,
) -> tuple[str, int, int]:
    """`(format, width, height)` of image bytes proven whole by a full decode.

    What a store keeps is replayed in every later prompt, so a truncated or corrupt body, a
    format outside `limits`, or bytes that are not the `mime` they are labelled as raise
    ImageError here rather than a 400 from the provider on every call after. A verified
    image is remembered by content (`sha256`, the hex digest of `data` if the caller has it),
    so an image resent on every step is decoded once.
    """
    label = _MIME_ALIASES.get(mime.lower(), mime.lower())
    key = (sha256 or hashlib.sha256(data).hexdigest(), label, limits.formats)
    with _VERIFIED_LOCK:
        found = _VERIFIED.get(key)
        if found is not None:
            _VERIFIED.move_to_end(key)
            return found
    image, fmt = open_image(data, limits)
    with image:
        width, height = image.size
    if mime_type(fmt) != label:
        raise ImageError(
            f"the image is labelled {mime[:40]!r} but its bytes are {fmt}; "
            f"label it {mime_type(fmt)!r} (or use prepare_image, which labels it for you)"
        )
    with _VERIFIED_LOCK:
        _VERIFIED[key] = (fmt, width, height)
        if len(_VERIFIED) > _VERIFIED_MAX:
            _VERIFIED.popitem(last=False)
    return fmt, width, height


def _require_pillow() -> None:
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        raise ImageError(_INSTALL_HINT) from None


def mime_type(fmt: str) -> str:
    """The MIME type of a Pillow format name ("JPEG" -> "image/jpeg")."""
    if fmt in _MIME:
        return _MIME[fmt]
    from PIL import Image

    return Image.MIME.get(fmt) or f"image/{fmt.lower()}"


def open_image(data: bytes, limits: ImageLimits) -> tuple[Image.Image, str]:
    """Open, fully decode and check `data`; the image is left at its first frame."""
    if not data:
        raise ImageError("image data is empty (0 bytes); check the file or the upload")
    _require_pillow()
    from PIL import Image, UnidentifiedImageError

    try:
        _, width, height = image_size(data)
    except ImageError:
        pass  # not one of the sniffable formats, or a bad header: Pillow will say which
    else:
        _check_pixels(width, height)
    allowed = tuple(sorted(limits.formats))
    magic = _magic_format(data)
    try:
        image = Image.open(io.BytesIO(data), formats=allowed)
    except UnidentifiedImageError:
        raise ImageError(_unidentified(data, magic, limits)) from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{exc} Downscale the image before sending it") from None
    except DECODE_ERRORS as exc:
        raise ImageError(_corrupt(magic, exc)) from None
    fmt = "JPEG" if image.format == "MPO" else str(image.format)
    try:
        _check_pixels(*image.size)
        image.load()
        _load_frames(image)
    except ImageError:
        image.close()
        raise
    except Image.DecompressionBombError as exc:
        image.close()
        raise ImageError(f"{exc} Downscale the image before sending it") from None
    except DECODE_ERRORS as exc:
        image.close()
        raise ImageError(_corrupt(fmt, exc)) from None
    return image, fmt


def _load_frames(image: Image.Image) -> None:
    """Decode the other frames of an animation, within the decompression-bomb pixel budget."""
    from PIL import Image

    frames = int(getattr(image, "n_frames", 1))
    if frames <= 1:
        return
    pixels = max(1, image.width * image.height)
    cap = Image.MAX_IMAGE_PIXELS
    checked = frames if cap is None else min(frames, max(1, int(cap) // pixels))
    for index in range(1, checked):
        image.seek(index)
        image.load()
    image.seek(0)
    image.load()


def _check_pixels(width: int, height: int) -> None:
    from PIL import Image

    cap = Image.MAX_IMAGE_PIXELS
    if cap is not None and width * height > cap:
        raise ImageError(
            f"image header claims {width}x{height} px ({width * height:,} pixels), over the "
            f"decompression-bomb limit of {int(cap):,} pixels (PIL.Image.MAX_IMAGE_PIXELS); "
            "downscale it before sending, or raise that limit if you trust the source"
        )


def _magic_format(data: bytes) -> str | None:
    """A name for what `data` looks like, from its first bytes, for error messages."""
    head = data[:32]
    signatures = (
        (b"\xff\xd8\xff", "JPEG"),
        (b"\x89PNG\r\n\x1a\n", "PNG"),
        (b"GIF87a", "GIF"),
        (b"GIF89a", "GIF"),
        (b"BM", "BMP"),
        (b"II*\x00", "TIFF"),
        (b"MM\x00*", "TIFF"),
        (b"\x00\x00\x01\x00", "ICO"),
        (b"\x00\x00\x02\x00", "CUR"),
        (b"%PDF", "PDF"),
        (b"8BPS", "PSD"),
        (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
        (b"\xffO\xffQ", "JPEG 2000"),
        (b"qoif", "QOI"),
    )
    for signature, name in signatures:
        if head.startswith(signature):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
            return "HEIC"
    text = data[:1024].lstrip().lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "SVG"
    return None


def _unidentified(data: bytes, magic: str | None, limits: ImageLimits) -> str:
    accepted = ", ".join(sorted(limits.formats))
    if magic in limits.formats:
        return f"corrupt or truncated {magic} image: its header is unreadable; re-export it"
    if magic is not None:
        return f"{magic} images are not accepted; convert it to one of {accepted}"
    try:
        data[:1024].decode("utf-8")
    except UnicodeDecodeError:
        return f"data is not a recognised image (it starts {data[:8]!r}); expected {accepted}"
    return f"data is text, not an image (it starts {data[:20]!r}); expected {accepted}"


def _corrupt(fmt: str | None, exc: BaseException) -> str:
    what = f"{fmt} image" if fmt else "image"
    return f"corrupt or truncated {what}: {exc}; re-export or re-download it"
