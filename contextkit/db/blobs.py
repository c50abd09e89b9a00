"""Images stored once, by content: data URLs in messages become `blob:<sha256>` references.

A thread that shows the same screenshot ten times stores it once, and message rows stay
small. References are resolved back to the exact data URL whenever messages are read, so
callers never see them.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Executable, Text, cast, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from contextkit._dataurl import parse_data_url
from contextkit.db.schema import BLOBS, BlobRow, MessageRow, utcnow
from contextkit.errors import ImageError
from contextkit.images import verify_image
from contextkit.tokens.image_tokens import ImageLimits

__all__ = ["PREFIX", "collect", "extract", "fetch", "referenced_by", "resolve", "save"]

PREFIX = "blob:sha256:"


def _split(url: str) -> tuple[str, bytes]:
    return parse_data_url(url)


def extract(
    parts: Sequence[Mapping[str, Any]] | None, limits: ImageLimits | None
) -> tuple[Any, list[dict[str, Any]]]:
    """Parts with data-URL images replaced by references, and the blob rows to store.

    Each image is decoded in full first (`verify_image`): a stored image is replayed in every
    later prompt, so a corrupt one must be refused before it is written.
    """
    if not parts:
        return parts, []
    out: list[Any] = []
    blobs: list[dict[str, Any]] = []
    for part in parts:
        image = part.get("image_url") if part.get("type") == "image_url" else None
        if not isinstance(image, Mapping) or not str(image.get("url", "")).startswith("data:"):
            out.append(part)
            continue
        url = str(image["url"])
        mime, data = _split(url)
        if limits is None:
            raise ImageError("this thread's model takes no images")
        digest = hashlib.sha256(data).hexdigest()
        _, width, height = verify_image(data, mime, limits, sha256=digest)
        blobs.append(
            {
                "sha256": digest,
                "mime": mime,
                "size": len(data),
                "width": width,
                "height": height,
                "data": data,
            }
        )
        out.append({**part, "image_url": {**image, "url": PREFIX + digest}})
    return out, blobs


def save(conn: Connection, blobs: Iterable[Mapping[str, Any]]) -> None:
    """Store blobs not stored yet (same content, same key: a no-op)."""
    rows = {b["sha256"]: {**b, "created_at": utcnow()} for b in blobs}
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(BLOBS).on_conflict_do_nothing(index_elements=["sha256"])
    conn.execute(stmt, list(rows.values()))


def _refs(parts: Any) -> Iterable[str]:
    for part in parts or ():
        image = part.get("image_url") if isinstance(part, Mapping) else None
        url = image.get("url", "") if isinstance(image, Mapping) else ""
        if url.startswith(PREFIX):
            yield url[len(PREFIX) :]


def resolve(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with every blob reference in `parts` replaced by its data URL (one query)."""
    wanted = {ref for row in rows for ref in _refs(row.get("parts"))}
    if not wanted:
        return list(rows)
    found = {
        sha: f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        for sha, mime, data in conn.execute(
            select(BlobRow.sha256, BlobRow.mime, BlobRow.data).where(BlobRow.sha256.in_(wanted))
        )
    }
    missing = wanted - found.keys()
    if missing:
        raise ImageError(f"stored image(s) missing: {sorted(missing)[:3]}; run contextkit db check")
    out = []
    for row in rows:
        parts = row.get("parts")
        if parts and any(True for _ in _refs(parts)):
            row = {**row, "parts": [_swap(p, found) for p in parts]}
        out.append(row)
    return out


def _swap(part: Mapping[str, Any], found: Mapping[str, str]) -> Any:
    image = part.get("image_url") if isinstance(part, Mapping) else None
    if not isinstance(image, Mapping) or not str(image.get("url", "")).startswith(PREFIX):
        return part
    url = str(image["url"])
    return {**part, "image_url": {**image, "url": found[url[len(PREFIX) :]]}}


def fetch(conn: Connection, stmt: Executable) -> list[dict[str, Any]]:
    """Execute a message query; rows as dicts with images resolved."""
    return resolve(conn, [dict(r) for r in conn.execute(stmt).mappings()])


def _with_images(conn: Connection, *where: Any) -> set[str]:
    """The blob keys referenced by the messages matching `where` (those with images only)."""
    text = cast(MessageRow.parts, Text)
    rows = conn.execute(select(MessageRow.parts).where(text.like(f"%{PREFIX}%"), *where))
    return {ref for (parts,) in rows for ref in _refs(parts)}


def referenced_by(conn: Connection, thread_pk: int) -> set[str]:
    """The blob keys a thread's messages reference."""
    return _with_images(conn, MessageRow.thread_pk == thread_pk)


def collect(conn: Connection, candidates: set[str]) -> int:
    """Delete the blobs among `candidates` that no stored message references any more (after
    a thread's deletion); returns how many. One scan of the messages that have images."""
    if not candidates:
        return 0
    unused = candidates - _with_images(conn)
    if unused:
        conn.execute(delete(BlobRow).where(BlobRow.sha256.in_(unused)))
    return len(unused)
