"""Kept for one release: this module moved to `contextkit.db.records`."""

from contextkit.db.records import *  # noqa: F403
from contextkit.db.records import __all__  # noqa: F401
