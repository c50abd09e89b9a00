"""Kept for one release: this module moved to `contextkit.db.records`."""

from typing import Any

from contextkit.db import records as _moved
from contextkit.db.records import *  # noqa: F403
from contextkit.db.records import __all__  # noqa: F401


def __getattr__(name: str) -> Any:
    return getattr(_moved, name)  # the module's other public names, as before
