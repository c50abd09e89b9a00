"""Images ready to send: validated, fitted to the provider's limits, content-addressed.

`prepare_image` turns a path, bytes, a PIL image, a `data:` URL or an http(s) URL into a
`PreparedImage`: the exact bytes to send, their MIME type and pixel size, their sha256 (the
content address a store keys blobs by) and the prompt tokens they cost (the formula lives in
`contextkit.tokens.image_tokens`, decoding in `contextkit.images.decode`; this module only
measures and reshapes).

Policy, for the limits in an `ImageLimits` (DeepSeek's by default):

- Formats are the limits' (JPEG, PNG, GIF, WEBP, BMP). Anything else (TIFF, ICO, SVG, HEIC,
  text, random bytes), and corrupt or truncated data, raises `ImageError` saying what was
  found and what to do. Pillow only ever parses the accepted formats. Every frame of an
  animation is decoded to prove the file whole, up to `PIL.Image.MAX_IMAGE_PIXELS` decoded
  pixels in all; an image above that many pixels is refused as a possible decompression bomb.
- An image within the limits is sent as given: its exact original bytes (metadata included),
  so the same file always has the same content address. Animated GIF and WEBP stay animated.
- An image that is too large (a side over `max_side`, or over `max_bytes`) is reduced rather
  than refused: fitted within `max_side` (aspect kept, never enlarged), turned upright from
  its EXIF orientation, re-encoded without metadata, and shrunk further until it fits
  `max_bytes`. Images with transparency, a palette or 16-bit samples become PNG; a PNG source
  tries PNG first; everything else becomes JPEG at quality 90 (then 80, 70 before pixels are
  dropped). Only the first frame of an animation survives this. `resized` is then True.
- An image with a side under `min_side` is refused: enlarging it would invent pixels, and
  padding would change what the model sees; the caller decides which, if either, is right.
- A PIL image has no original bytes: it is encoded as PNG (lossless) at its own size, and
  reduced as above only if the limits require it.
- An http(s) URL is not downloaded (no network I/O, no SSRF surface): it is kept as is, with
  unknown size, and costs the worst case (`limits.max_tokens`, or `base_tokens` for
  `detail="low"`), the same count `image_part_tokens` gives, so a budget cannot be exceeded.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import os
import re
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from attrs import field, frozen

from contextkit._dataurl import parse_data_url
from contextkit.errors import ImageError, ValidationError
from contextkit.images.decode import DECODE_ERRORS, mime_type, open_image
from contextkit.tokens.image_tokens import DEFAULT_IMAGE_LIMITS, DETAILS, ImageLimits, image_tokens

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["PreparedImage", "check_image_count", "prepare_image"]

_JPEG_QUALITIES = (90, 80, 70)
_MAX_SHRINKS = 12
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@frozen(kw_only=True)
class PreparedImage:
    """An image as it will be sent: bytes (or a remote URL), size, content address, tokens.

    `data` is None exactly when the image is a remote `url`; then `mime`, `width` and
    `height` are unknown (None) and `sha256` is the hash of the URL string.
    """

    data: bytes | None = field(repr=False)
    mime: str | None
    width: int | None
    height: int | None
    sha256: str
    detail: str
    tokens: int
    url: str | None = None
    resized: bool = False

    def __attrs_post_init__(self) -> None:
        if (self.data is None) == (self.url is None):
            raise ValidationError("a PreparedImage needs exactly one of data and a remote url")
        if self.data is not None and self.mime is None:
            raise ValidationError("a PreparedImage with data needs its mime type")

    def data_url(self) -> str:
        """The image as a base64 `data:` URL; ImageError for a remote image (it has no data)."""
        if self.data is None or self.mime is None:
            raise ImageError(
                f"a remote image has no data to encode as a data URL; send its URL "
                f"({str(self.url)[:60]!r}) as is, or download it and prepare the bytes"
            )
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"

    def to_part(self) -> dict[str, Any]:
        """The OpenAI `image_url` content part for this image (data URL, or the remote URL)."""
        url = self.data_url() if self.data is not None else str(self.url)
        return {"type": "image_url", "image_url": {"url": url, "detail": self.detail}}


def check_image_count(n: int, limits: ImageLimits = DEFAULT_IMAGE_LIMITS) -> None:
    """ImageError when one request would carry more than `limits.max_images` images."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValidationError(f"image count must be an integer >= 0, got {n!r:.40}")
    if n > limits.max_images:
        raise ImageError(
            f"{n} images in one request; the limit is {limits.max_images}. "
            "Send fewer images per message, or split them over several turns"
        )


def prepare_image(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview | Image.Image,
    *,
    detail: str = "auto",
    limits: ImageLimits = DEFAULT_IMAGE_LIMITS,
) -> PreparedImage:
    """Validate `source` and return it ready to send within `limits` (see the module doc).

    A `str` is a `data:image/...;base64,` URL, an http(s) URL, or else a filesystem path.
    Raises ImageError for unreadable, unsupported, corrupt or too-small images and
    ValidationError for a bad `detail` or source type.
    """
    if detail not in DETAILS:
        raise ValidationError(f"image detail must be one of {DETAILS}, got {detail!r:.40}")
    if isinstance(source, str):
        lowered = source[:16].lower()
        if lowered.startswith("data:"):
            return _from_bytes(parse_data_url(source)[1], detail, limits)
        if lowered.startswith(("https://", "http://")):
            return _remote(source, detail, limits)
        if _SCHEME_RE.match(source):
            raise ImageError(
                f"unsupported image URL {source[:40]!r}: use an https:// URL, a "
                "data:image/...;base64, URL, a file path, bytes or a PIL image"
            )
        return _from_bytes(_read(source), detail, limits)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(source), detail, limits)
    if isinstance(source, os.PathLike):
        return _from_bytes(_read(source), detail, limits)
    pil = sys.modules.get("PIL.Image")  # a PIL image exists only if Pillow was imported
    if pil is not None and isinstance(source, pil.Image):
        return _from_pil(source, detail, limits)
    raise ValidationError(
        "an image must be a file path, bytes, a PIL image, a data:image/...;base64, URL "
        f"or an http(s) URL; got {type(source).__name__}"
    )


def _remote(url: str, detail: str, limits: ImageLimits) -> PreparedImage:
    parts = urlsplit(url)
    if not parts.netloc or any(c.isspace() or ord(c) < 32 for c in url):
        raise ImageError(f"malformed image URL {url[:60]!r}: it needs a host and no spaces")
    url = parts.scheme.lower() + url[len(parts.scheme) :]  # the API wants a lowercase scheme
    try:
        digest = hashlib.sha256(url.encode("utf-8")).hexdigest()
    except UnicodeEncodeError:
        raise ImageError("image URL is not valid Unicode (it has a lone surrogate)") from None
    tokens = limits.base_tokens if detail == "low" else limits.max_tokens
    return PreparedImage(
        data=None,
        mime=None,
        width=None,
        height=None,
        sha256=digest,
        detail=detail,
        tokens=tokens,
        url=url,
    )


def _read(path: str | os.PathLike[str]) -> bytes:
    name = os.fspath(path)
    try:
        with open(name, "rb") as file:
            return file.read()
    except FileNotFoundError:
        raise ImageError(f"image file not found: {name!r}") from None
    except IsADirectoryError:
        raise ImageError(f"{name!r} is a directory, not an image file") from None
    except OSError as exc:
        raise ImageError(f"cannot read image file {name!r}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeError):
        raise ImageError(f"{name!r:.80} is not a usable file path") from None


def _from_bytes(data: bytes, detail: str, limits: ImageLimits) -> PreparedImage:
    image, fmt = open_image(data, limits)
    with image:
        width, height = image.size
        _check_min_side(width, height, limits)
        if len(data) <= limits.max_bytes and max(width, height) <= limits.max_side:
            return _prepared(data, fmt, width, height, detail, limits, resized=False)
        out, out_fmt, width, height, _ = _reencode(image, limits, prefer_png=fmt == "PNG")
    return _prepared(out, out_fmt, width, height, detail, limits, resized=True)


def _from_pil(image: Image.Image, detail: str, limits: ImageLimits) -> PreparedImage:
    from PIL import Image

    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{exc} Downscale the image before sending it") from None
    except DECODE_ERRORS as exc:
        raise ImageError(f"the PIL image could not be loaded: {exc}") from None
    width, height = image.size
    _check_min_side(width, height, limits)
    out, fmt, width, height, changed = _reencode(image, limits, prefer_png=True)
    return _prepared(out, fmt, width, height, detail, limits, resized=changed)


def _prepared(
    data: bytes,
    fmt: str,
    width: int,
    height: int,
    detail: str,
    limits: ImageLimits,
    *,
    resized: bool,
) -> PreparedImage:
    return PreparedImage(
        data=data,
        mime=mime_type(fmt),
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
        detail=detail,
        tokens=image_tokens(width, height, detail, limits),
        resized=resized,
    )


def _check_min_side(width: int, height: int, limits: ImageLimits) -> None:
    if min(width, height) < limits.min_side:
        raise ImageError(
            f"image is {width}x{height} px; each side must be at least {limits.min_side} px. "
            "Upscale or pad it yourself if that suits the image (contextkit will not)"
        )


def _reencode(
    image: Image.Image, limits: ImageLimits, *, prefer_png: bool
) -> tuple[bytes, str, int, int, bool]:
    """Encode the first frame within `limits`: `(data, format, width, height, changed)`.

    `changed` is False only when the first attempt (lossless PNG at full size, if preferred)
    already fits, i.e. the limits forced no loss (no shrink, no lower quality, no flattening).
    """
    from PIL import ImageOps

    try:
        upright = ImageOps.exif_transpose(image)
    except DECODE_ERRORS:  # a broken EXIF block should not stop the pixels being sent
        upright = image.copy()
    needs_png = (
        _has_alpha(upright)
        or upright.mode in ("1", "P", "PA")
        or upright.mode.startswith(("I", "F"))
    )
    png_ok, jpeg_ok = "PNG" in limits.formats, "JPEG" in limits.formats
    if not (png_ok or jpeg_ok):
        raise ImageError(
            "the image must be re-encoded to fit the limits, but they accept neither PNG nor JPEG"
        )
    use_png = png_ok and (needs_png or prefer_png or not jpeg_ok)
    attempts: list[tuple[str, int]] = [("PNG", 0)] if use_png else []
    if jpeg_ok and not (use_png and needs_png):
        attempts += [("JPEG", quality) for quality in _JPEG_QUALITIES]
    icc = upright.info.get("icc_profile") if upright.mode in ("RGB", "RGBA", "L", "LA") else None
    try:
        base = _convert(upright, attempts[0][0])
    except DECODE_ERRORS as exc:
        raise ImageError(f"cannot convert a {upright.mode} image for sending: {exc}") from None

    full = base.size
    width, height = _fit(*full, limits.max_side)
    if min(width, height) < limits.min_side:
        raise ImageError(
            f"image is {full[0]}x{full[1]} px; fitting it within {limits.max_side} px makes it "
            f"{width}x{height}, under the {limits.min_side} px minimum. Crop it first"
        )
    for _ in range(_MAX_SHRINKS):
        sized = base if (width, height) == full else _resize(base, width, height)
        smallest = 0
        for number, (fmt, quality) in enumerate(attempts):
            out = _encode(sized, fmt, quality, icc)
            if len(out) <= limits.max_bytes:
                changed = number > 0 or (width, height) != full or (needs_png and fmt == "JPEG")
                return out, fmt, width, height, changed
            smallest = len(out) if not smallest else min(smallest, len(out))
        factor = min(0.9, 0.95 * math.sqrt(limits.max_bytes / smallest))
        smaller = max(1, int(width * factor)), max(1, int(height * factor))
        if min(smaller) < limits.min_side:
            break
        width, height = smaller
    raise ImageError(
        f"cannot make the image fit {limits.max_bytes:,} bytes without a side under "
        f"{limits.min_side} px; simplify or crop it"
    )


def _has_alpha(image: Image.Image) -> bool:
    """Alpha channel, palette alpha or a transparent colour (Pillow 10.0 lacks a helper)."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        return True
    return image.mode == "P" and image.palette is not None and image.palette.mode.endswith("A")


def _fit(width: int, height: int, side: int) -> tuple[int, int]:
    """Fit within `side` x `side`: aspect kept (floored), never enlarged."""
    longest = max(width, height)
    if longest <= side:
        return width, height
    return max(1, width * side // longest), max(1, height * side // longest)


def _resize(image: Image.Image, width: int, height: int) -> Image.Image:
    from PIL import Image

    return image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)


def _convert(image: Image.Image, fmt: str) -> Image.Image:
    """`image` in a mode `fmt` can store: alpha kept for PNG, flattened on white for JPEG."""
    from PIL import Image

    gray = image.mode in ("1", "L", "LA", "La") or image.mode.startswith(("I", "F"))
    if _has_alpha(image):
        rgba = image.convert("LA" if gray else "RGBA")
        if fmt == "PNG":
            return rgba
        flat = Image.new(rgba.mode[:-1], rgba.size, 255 if gray else (255, 255, 255))
        flat.paste(rgba.convert(rgba.mode[:-1]), mask=rgba.getchannel("A"))
        return flat
    if image.mode.startswith(("I", "F")):
        if fmt == "PNG":
            return image if image.mode == "I;16" else image.convert("I").convert("I;16")
        return image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if image.mode == "1" and fmt == "PNG":
        return image
    return image.convert("L" if gray else "RGB")


def _encode(image: Image.Image, fmt: str, quality: int, icc: bytes | None) -> bytes:
    params: dict[str, Any] = {}
    if icc:
        params["icc_profile"] = icc
    if fmt == "JPEG":
        params.update(quality=quality, optimize=True)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()
