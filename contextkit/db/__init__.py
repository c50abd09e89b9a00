"""The database layer: every SQL statement contextkit runs, on SQLite and PostgreSQL.

Knows nothing of prompts: it stores what the domain layer decides (`contextkit.accounting`)
and hands rows back as values (`ThreadState`, `Message`, `Summary`). One module per table
group: `threads`, `messages` (append, pages), `cut` (window reads, cut point), `recount`,
`summaries`, `calls`, `blobs`, `transfer`; `engine` and `migrate` set the database up.
"""
