"""Images ready to send: validated, fitted to the provider's limits, content-addressed.

`prepare_image` (`contextkit.images.prepare`) turns a path, bytes, a PIL image or a URL into
a `PreparedImage`; `verify_image` (`contextkit.images.decode`) proves stored bytes whole.
"""

from __future__ import annotations

from contextkit.images.decode import verify_image
from contextkit.images.prepare import PreparedImage, check_image_count, prepare_image

__all__ = ["PreparedImage", "check_image_count", "prepare_image", "verify_image"]
