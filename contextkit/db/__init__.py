"""The database layer: every SQL statement contextkit runs, on SQLite and PostgreSQL.

Knows nothing of prompts: it stores what the domain layer decides (`contextkit.accounting`)
and hands rows back as values (`ThreadState`, `Message`, `Summary`). One module per table
group: `threads`, `messages` (append, pages), `cut` (window reads, cut point), `recount`,
`summaries`, `calls`, `blobs`, `transfer`; `engine` and `migrate` set the database up.
"""

from __future__ import annotations

import importlib


def __getattr__(name: str) -> object:
    """`contextkit.db.engine` and the other modules, imported on first access."""
    if not name.startswith("__"):
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
