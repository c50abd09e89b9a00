"""Kept for one release: this module moved to `contextkit.db.migrate`."""

from contextkit.db.migrate import *  # noqa: F403
from contextkit.db.migrate import __all__  # noqa: F401
