"""Kept for one release: import from `contextkit.tokens.image_tokens` (or `contextkit.tokens`).

The module was renamed so it is not confused with `contextkit.images` (image preparation).
"""

from contextkit.tokens.image_tokens import (
    DEFAULT_IMAGE_LIMITS,
    DETAILS,
    ImageLimits,
    image_part_tokens,
    image_size,
    image_tokens,
)

__all__ = [
    "DEFAULT_IMAGE_LIMITS",
    "DETAILS",
    "ImageLimits",
    "image_part_tokens",
    "image_size",
    "image_tokens",
]
