"""A tokenizer's tables (BPE ranks, special tokens) cached on disk in a compact form.

Building DeepSeek V4's ranks means parsing its 6 MB `tokenizer.json` and decoding 128K
byte-level strings: about half a second, in every new process. The result is written once,
per installed tokenizer version and vocabulary, to a file in the user's cache directory
(`$CONTEXTKIT_CACHE_DIR`, else `$XDG_CACHE_HOME/contextkit`, else `~/.cache/contextkit`);
later processes read it back in a few milliseconds.

The file is keyed by what it was built from (the tokenizer package's version, a SHA-256 of
each vocabulary file, this module's format) and carries a SHA-256 of its payload: a file
built from another vocabulary is never used, and a truncated or corrupted one is detected,
rebuilt and replaced (a vocabulary file is hashed again only when its size or mtime differ
from those recorded with its digest). The payload is a pickle of plain dicts, bytes, str and
int, read by an unpickler that resolves no class or function. When the directory cannot be
written, the tables are built in memory each time; the cache never changes a count.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "FORMAT",
    "Tables",
    "cache_dir",
    "cache_key",
    "cache_path",
    "cached_tables",
    "decode",
    "encode",
    "file_digest",
    "write",
]

FORMAT = 1
"""Bump when the layout of the file or the derivation of the tables changes."""

MAGIC = b"contextkit-ranks\n"
_LENGTH = struct.Struct("<I")

Tables = tuple[dict[bytes, int], dict[str, int]]
"""Mergeable ranks (token bytes -> rank) and special tokens (string -> id)."""

StrPath = str | os.PathLike[str]


def cache_dir() -> str:
    """Where contextkit caches derived files: `$CONTEXTKIT_CACHE_DIR`, else
    `$XDG_CACHE_HOME/contextkit`, else `~/.cache/contextkit`."""
    override = os.environ.get("CONTEXTKIT_CACHE_DIR")
    if override:
        return os.path.expanduser(override)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "contextkit")
    return os.path.join(os.path.expanduser("~"), ".cache", "contextkit")


def file_digest(path: StrPath) -> str:
    """SHA-256 of a file's bytes, hex."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _stat(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def cache_key(name: str, version: str, digests: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """What a cache file is valid for: the tokenizer `name` at `version`, the vocabulary
    files it was built from (`(file name, SHA-256)` each) and this module's `FORMAT`."""
    return {
        "format": FORMAT,
        "name": name,
        "version": version,
        "files": [list(d) for d in digests],
    }


def cache_path(
    name: str, version: str, sources: Iterable[StrPath], directory: StrPath | None = None
) -> str:
    """The cache file for tokenizer `name` at `version` read from `sources` (in `directory`,
    default `cache_dir()`). Installations of other versions, or elsewhere, get files of
    their own, so several environments can share one cache directory."""
    where = [os.path.realpath(p) for p in sources]
    ident = json.dumps([FORMAT, name, version, where]).encode()
    digest = hashlib.sha256(ident).hexdigest()[:16]
    stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in f"{name}-{version}")
    folder = os.fspath(directory) if directory is not None else cache_dir()
    return os.path.join(folder, f"{stem}-{digest}.ranks")


class _PlainUnpickler(pickle.Unpickler):
    """Builds only pickle's own types (dict, bytes, str, int, tuple): no class, no call."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"a rank cache holds no objects ({module}.{name})")


def _is_tables(value: Any) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], dict)
        and isinstance(value[1], dict)
    )


def encode(key: Mapping[str, Any], stat: Sequence[Sequence[int]], tables: Tables) -> bytes:
    """A cache file's bytes: magic, header length, JSON header (the key, the size and mtime
    of each vocabulary file when it was hashed, the payload's size and SHA-256), payload (a
    pickle of the tables)."""
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
    with contextlib.suppress(AttributeError):
        pickler.fast = True  # no memo: every key is a distinct bytes object; loads faster
    pickler.dump(tables)
    payload = out.getvalue()
    header = {
        "key": dict(key),
        "stat": [list(s) for s in stat],
        "size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    return _frame(header, payload)


def _frame(header: Mapping[str, Any], payload: bytes | memoryview) -> bytes:
    head = json.dumps(header, sort_keys=True).encode()
    return b"".join([MAGIC, _LENGTH.pack(len(head)), head, payload])


def _header(data: bytes) -> tuple[dict[str, Any], memoryview] | None:
    start = len(MAGIC) + _LENGTH.size
    if not data.startswith(MAGIC) or len(data) < start:
        return None
    (length,) = _LENGTH.unpack_from(data, len(MAGIC))
    try:
        header = json.loads(data[start : start + length])
    except ValueError:
        return None
    if not isinstance(header, dict):
        return None
    return header, memoryview(data)[start + length :]


def _payload(header: Mapping[str, Any], payload: memoryview) -> Tables | None:
    """The tables, if the payload is whole (size and SHA-256 as the header says)."""
    if len(payload) != header.get("size"):
        return None
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        return None
    try:
        tables = _PlainUnpickler(io.BytesIO(payload)).load()
    except Exception:  # garbage that passed the checksum: rebuild rather than fail
        return None
    return tables if _is_tables(tables) else None


def decode(data: bytes, key: Mapping[str, Any]) -> Tables | None:
    """The tables in a cache file's bytes, or None unless it is whole and built for `key`."""
    found = _header(data)
    if found is None or found[0].get("key") != dict(key):
        return None
    return _payload(*found)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def write(path: StrPath, data: bytes) -> bool:
    """Write a cache file atomically (a temporary file renamed over it: readers see the old
    file or the new, never half of one); False when the directory is not writable."""
    import tempfile

    directory, name = os.path.split(os.fspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=name + ".", suffix=".tmp", dir=directory)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return False
    return True


def cached_tables(
    name: str, version: str, sources: Iterable[StrPath], build: Callable[[], Tables]
) -> Tables:
    """The tables `build()` returns for this tokenizer (`name` at `version`, read from the
    vocabulary files `sources`): from the cache when a whole file built from exactly these
    inputs is there, else built, and written to the cache when its directory is writable.

    A vocabulary file whose size and mtime are those recorded when it was hashed is not
    hashed again (the way git's index trusts a file's stat); any other is, and a digest
    that differs from the recorded one means a rebuild.
    """
    paths = [os.fspath(p) for p in sources]
    names = [os.path.basename(p) for p in paths]
    stat = [_stat(p) for p in paths]
    path = cache_path(name, version, paths)
    digests: list[tuple[str, str]] | None = None
    data = _read(path)
    found = None if data is None else _header(data)
    if found is not None:
        header, payload = found
        recorded = header.get("key")
        if header.get("stat") == stat and isinstance(recorded, dict):
            trusted = recorded.get("files")
            if isinstance(trusted, list) and [f[0] for f in trusted] == names:
                digests = [(n, str(f[1])) for n, f in zip(names, trusted, strict=True)]
        if digests is None:
            digests = [(n, file_digest(p)) for n, p in zip(names, paths, strict=True)]
        if recorded == cache_key(name, version, digests):
            tables = _payload(header, payload)
            if tables is not None:
                if header.get("stat") != stat:  # same content, touched: record the new stat
                    write(path, _frame({**header, "stat": stat}, payload))
                return tables
    if digests is None:
        digests = [(n, file_digest(p)) for n, p in zip(names, paths, strict=True)]
    tables = build()
    write(path, encode(cache_key(name, version, digests), stat, tables))
    return tables
