"""Kept for one release: this module moved to `contextkit.db.schema`."""

from contextkit.db.schema import *  # noqa: F403
from contextkit.db.schema import __all__  # noqa: F401
