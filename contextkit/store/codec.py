"""Kept for one release: this module moved to `contextkit.db.codec`."""

from contextkit.db.codec import *  # noqa: F403
from contextkit.db.codec import __all__  # noqa: F401
