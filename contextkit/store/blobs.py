"""Kept for one release: this module moved to `contextkit.db.blobs`."""

from contextkit.db.blobs import *  # noqa: F403
from contextkit.db.blobs import __all__  # noqa: F401
