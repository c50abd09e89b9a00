"""Kept for one release: this module moved to `contextkit.db.engine`."""

from contextkit.db.engine import *  # noqa: F403
from contextkit.db.engine import __all__  # noqa: F401
