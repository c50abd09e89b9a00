"""Adversarial inputs across the public API: only ContextKitError escapes, nothing is written.

Issue acceptance: hypothesis generates >= 10,000 invalid or adversarial inputs across the
public API (wrong shapes and types, huge strings, NUL bytes, lone surrogates, absurd token
budgets, SQL-looking ids and owners, other owners' thread ids, corrupt images), on SQLite and
on PostgreSQL each. Every call either returns (adversarial but valid input) or raises a
`ContextKitError` subclass, and a call that raises leaves every contextkit table exactly as
it was: row counts and a digest of all rows (`checksum`). The checksum is taken after every
call that sent the database anything but plain reads (a write transaction, any non-SELECT
statement, SELECT ... FOR UPDATE), and after every 25th call whatever it sent.

One test per API family runs its examples against one seeded database (two owners' threads
with tool calls, an image, a pinned message, an idempotency key, a recorded call, a summary,
and threads with SQL-looking ids and owners). Each input says what it expects:

- INVALID: bad input to a write API; it must raise, and write nothing.
- READ: a read (or a no-op write, e.g. replaying a recorded response); it may return, but
  must never change the database.
- ANY: valid but adversarial input to an API that may legitimately write (a prompt build
  that moves the cut point, a compaction); it may return and write, or raise and not write.

The family quotas add up to `CONTEXTKIT_FUZZ_EXAMPLES` (default 10,000) per database;
generation is derandomized, so every run (and CI) tries the same inputs.

The cases of a family share one database, so a violation is noted and the run goes on: the
test then fails listing every violating input in the order met (Hypothesis does not shrink,
which against shared state would blame a later, innocent input). With
`CONTEXTKIT_FUZZ_COLLECT=<file>` the violations are also appended to that file.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import math
import os
import reprlib
import struct
import traceback
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import (
    EXPORT_T0,
    Database,
    export_call,
    export_header,
    export_message,
    export_summary,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import contextkit
from contextkit import ContextKitError, NotFound, PermissionDenied, ValidationError, images
from contextkit.store import transfer
from contextkit.store.schema import Base

MODEL = "deepseek-v4-flash"
TOTAL = int(os.environ.get("CONTEXTKIT_FUZZ_EXAMPLES", "10000"))
WEIGHTS = {
    "threads": 16,
    "append": 20,
    "extend": 9,
    "build": 16,
    "record": 12,
    "functions": 18,
    "import": 9,
}
QUOTA = {k: math.ceil(TOTAL * w / sum(WEIGHTS.values())) for k, w in WEIGHTS.items()}
COLLECT = os.environ.get("CONTEXTKIT_FUZZ_COLLECT")
"""A file that every violation is also appended to (a survey of new bugs)."""

INVALID, READ, ANY = "invalid", "read", "any"
FULL_EVERY = int(os.environ.get("CONTEXTKIT_FUZZ_FULL_EVERY", "25"))
"""Recompute the checksum at least this often (1: after every call, for debugging)."""

# ---------------------------------------------------------------------------------------
# Seed data
# ---------------------------------------------------------------------------------------

ALICE = "alice-1"
BOB = "bob-1"
SQLISH = (
    "'; DROP TABLE threads; --",
    "%",
    "_",
    "\\",
    "' OR '1'='1",
    '" OR 1=1 --',
    "alice%",
    "ali_e-1",
    "%%",
    "*",
    "NULL",
    "null",
    "1; DELETE FROM messages",
    "$1",
    ":owner",
    "?",
    "alice' --",
    "Robert'); DROP TABLE messages;--",
    "\\'",
    "alice-1' AND owner LIKE '%",
)
SQL_THREADS = (("'; DROP TABLE threads; --", "%"), ("%", "_"), ("_", "\\"))
"""Seeded threads whose ids and owners look like SQL or LIKE patterns."""
EXISTING = ((ALICE, "alice"), (BOB, "bob"), ("carol-1", "carol"), *SQL_THREADS)
OTHER_OWNERS = (*SQLISH, "", "ALICE", "alice ", " alice", "Alice", "alice\u200b", "bob", "mallory")
HUGE = ("The quick brown fox jumps over the lazy dog. " * 22_223)[:1_000_000]
"""1 MB of text (a 1 MB run of one letter takes the tokenizer ~1 s: 15x slower)."""
DEEP: list[Any] = []
_cursor = DEEP
for _ in range(5_000):
    _cursor.append([])
    _cursor = _cursor[0]
del _cursor


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


PNG64 = _png(64, 64)
PNG1 = _png(1, 1)
PNG_TRUNCATED = PNG64[:40]
PNG_GARBAGE_BODY = PNG64[:33] + b"\x00\x01garbage" * 20
PNG_HUGE = PNG64[:16] + struct.pack(">II", 100_000, 100_000) + PNG64[24:]
MAGIC = (b"\x89PNG", b"\xff\xd8", b"GIF8", b"RIFF", b"BM")
CORRUPT_IMAGE_URLS = (
    "data:image/png;base64,!!!not-base64!!!",
    "data:image/png;base64,",
    "data:image/png;base64,=",
    "data:image/png,rawbytes",
    "data:image/png;base64," + base64.b64encode(b"II*\x00" + b"\x00" * 64).decode(),  # TIFF
    "data:image/x-icon;base64," + base64.b64encode(b"\x00\x00\x01\x00" + b"\x00" * 60).decode(),
    "data:image/svg+xml;base64," + base64.b64encode(b"<svg xmlns='x'></svg>").decode(),
    "data:image/heic;base64," + base64.b64encode(b"\x00\x00\x00\x18ftypheic" + bytes(32)).decode(),
    data_url(PNG1),  # 1x1: below the minimum side
    data_url(PNG_HUGE),  # 100000x100000 header
    data_url(PNG64) + "\x00",
    data_url(PNG64)[:-8] + "!!!!!!!!",
    "data:text/plain;base64," + base64.b64encode(PNG64).decode(),
    "data:;base64," + base64.b64encode(PNG64).decode(),
    "ftp://example.com/cat.png",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "//example.com/cat.png",
    "data:image/png;base64," + "A" * 8_000_000,  # over max_bytes
)
"""Image URLs a user message must refuse (each raises ImageError or ValidationError)."""

SEED_RESPONSE = {
    "id": "resp-seed",
    "object": "chat.completion",
    "model": MODEL,
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "You're welcome, Alice."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 120, "completion_tokens": 7, "prompt_cache_hit_tokens": 64},
}
FILLER = (
    "We talked about the weather and the general mood of the week. It was fine overall. "
    "Nothing much happened beyond the usual routine and a bit of reading in the evening."
)


def seed(store: contextkit.Store) -> None:
    a = store.thread(ALICE, model=MODEL, owner="alice", system="Be brief.", metadata={"t": 1})
    a.append({"role": "user", "content": "Remember: my name is Alice."}, pinned=True)
    a.append(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture, and the weather?"},
                {"type": "image_url", "image_url": {"url": data_url(PNG64)}},
            ],
        }
    )
    a.append(
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "Look it up.",
            "tool_calls": [_call("call_a1")],
        }
    )
    a.append({"role": "tool", "tool_call_id": "call_a1", "content": "sunny"})
    a.append({"role": "assistant", "content": "A red square; it is sunny in Paris."})
    a.append({"role": "user", "content": "Thanks"}, idempotency_key="key-1")
    a.prepare(max_tokens=1_000)
    a.record(SEED_RESPONSE, latency_ms=12.5)
    b = store.thread(BOB, model=MODEL, owner="bob")
    b.append({"role": "user", "content": "Weather in Oslo?"})
    b.append({"role": "assistant", "content": None, "tool_calls": [_call("call_b1")]})
    for tid, owner in SQL_THREADS:
        store.thread(tid, model=MODEL, owner=owner).append({"role": "user", "content": tid})
    c = store.thread("carol-1", model=MODEL, owner="carol", max_context_tokens=3_000)
    c.extend(
        m
        for i in range(12)
        for m in (
            {"role": "user", "content": f"Turn {i}. {FILLER}"},
            {"role": "assistant", "content": f"Reply {i}. {FILLER}"},
        )
    )
    assert c.compact() is not None


def _call(id: Any, name: Any = "get_weather", arguments: Any = '{"city":"Paris"}') -> Any:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


def checksum(store: contextkit.Store) -> dict[str, tuple[int, str]]:
    """Row count and a digest of every contextkit table's rows, in primary-key order.

    SQLite: sha256 over the rows as Python reads them. PostgreSQL: md5 over each row's text
    form, computed by the server in one round trip (7 queries a call would double the run).
    """
    tables = [(t.name, ", ".join(c.name for c in t.primary_key.columns)) for t in TABLES]
    with store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            parts = [
                f"(SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, E'\\n' "
                f"ORDER BY {order}), '')) FROM {name} t)"
                for name, order in tables
            ]
            row = conn.execute(sa.text(f"SELECT {', '.join(parts)}")).one()
            return {
                name: (int(value.split(":")[0]), value.split(":")[1][:16])
                for (name, _), value in zip(tables, row, strict=True)
            }
        out = {}
        for name, order in tables:
            rows = conn.execute(sa.text(f"SELECT * FROM {name} ORDER BY {order}")).all()
            digest = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
            out[name] = (len(rows), digest[:16])
        return out


TABLES = Base.metadata.sorted_tables
assert {t.name for t in TABLES} >= {
    "threads",
    "messages",
    "tool_calls",
    "calls",
    "calibrations",
    "summaries",
    "blobs",
}


# ---------------------------------------------------------------------------------------
# Cases and the oracle
# ---------------------------------------------------------------------------------------

_repr = reprlib.Repr()
_repr.maxstring = 70
_repr.maxother = 70
_repr.maxlist = 6
_repr.maxtuple = 6
_repr.maxdict = 6
_repr.maxlevel = 4


@dataclasses.dataclass(eq=False)
class Case:
    """One call: `op` names the target (see `Env.target`), `tags` the input's defects."""

    op: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    tags: frozenset[str] = frozenset()
    expect: str = INVALID
    want: type[ContextKitError] = ContextKitError
    post: Callable[[Any], None] | None = None
    """For a call that returned: a check of its result."""

    def __repr__(self) -> str:
        parts = [_repr.repr(a) for a in self.args]
        parts += [f"{k}={_repr.repr(v)}" for k, v in self.kwargs.items()]
        tags = ",".join(sorted(self.tags)) or "-"
        return f"{self.op}({', '.join(parts)}) [{self.expect}; {tags}]"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # hypothesis: never recurse into a 5,000-deep list


def case(op: str, *args: Any, tags: Any = (), expect: str = INVALID, **kwargs: Any) -> Case:
    want = kwargs.pop("want", ContextKitError)
    post = kwargs.pop("post", None)
    tags = frozenset([tags] if isinstance(tags, str) else tags)
    return Case(op, args, kwargs, tags, expect, want, post)


class Env:
    """A seeded store, the handles the cases call, and the database's expected checksum."""

    def __init__(self, database: Database, family: str) -> None:
        self.kind = database.kind
        self.family = family
        self.store = contextkit.open(database.url)
        seed(self.store)
        self.alice = self.store.get_thread(ALICE, owner="alice")
        self.baseline = checksum(self.store)
        self.examples = 0
        self.checksums = 0
        self.touched = False
        sa.event.listen(self.store.engine, "before_cursor_execute", self._statement)
        self.outcomes: Counter[str] = Counter()
        self.violations: list[str] = []

    def close(self) -> None:
        self.store.close()

    def _statement(self, conn: sa.Connection, _c: Any, statement: str, *_: Any) -> None:
        """Note any statement that could change the database (all but plain reads)."""
        head = statement.lstrip()[:6].upper()
        if (
            conn.get_execution_options().get("contextkit_write")
            or head not in ("SELECT", "BEGIN")
            or "FOR UPDATE" in statement
        ):
            self.touched = True

    def checksum(self) -> dict[str, tuple[int, str]]:
        """The database's checksum after a call: recomputed if the call sent anything but
        plain reads (or every FULL_EVERY calls, to be safe), else the unchanged baseline."""
        if not self.touched and self.examples % FULL_EVERY:
            return self.baseline
        self.checksums += 1
        return checksum(self.store)

    def target(self, op: str) -> Callable[..., Any]:
        owner, *path = op.split(".")
        objects: dict[str, Any] = {
            "store": self.store,
            "alice": self.alice,
            "contextkit": contextkit,
            "images": images,
            "transfer": transfer,
        }
        fn = functools.reduce(getattr, path, objects[owner])
        if op == "transfer.import_records":
            return functools.partial(fn, self.store)
        return fn  # type: ignore[no-any-return]

    def run(self, c: Case) -> None:
        """Call `c` and judge it (see the module docstring); fails the test on a violation."""
        self.examples += 1
        self.touched = False
        fn = self.target(c.op)
        raised: BaseException | None = None
        result: Any = None
        problem = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = fn(*c.args, **c.kwargs)
                if isinstance(result, Iterator):
                    result = list(result)
        except ContextKitError as exc:
            raised = exc
            if not isinstance(exc, c.want):
                problem = f"raised {type(exc).__name__}, expected {c.want.__name__}: {exc}"
        except Exception as exc:
            raised = exc
            tb = "".join(traceback.format_exception(exc)[-6:])
            problem = f"raised a non-ContextKitError {type(exc).__name__}:\n{tb}"
        finally:
            if c.op == "contextkit.open" and isinstance(result, contextkit.Store):
                result.close()
        self.outcomes[type(raised).__name__ if raised else "returned"] += 1
        after = self.checksum()
        if raised is not None and after != self.baseline:
            problem = f"{problem or ''}\n  raised {raised!r:.300} but changed {self.diff(after)}"
        elif raised is None and c.expect == INVALID:
            problem = f"accepted invalid input (returned {_repr.repr(result)})"
            if after != self.baseline:
                problem += f" and changed {self.diff(after)}"
        elif raised is None and c.expect == READ and after != self.baseline:
            problem = f"a read-only call changed {self.diff(after)}"
        if problem is None and raised is None and c.post is not None:
            try:
                c.post(result)
            except AssertionError as exc:
                problem = f"returned a wrong result: {exc}"
        if problem is not None:
            self.fail(c, problem)
        self.baseline = after

    def diff(self, after: Mapping[str, tuple[int, str]]) -> str:
        changed = {t: (self.baseline.get(t), v) for t, v in after.items() if self.baseline[t] != v}
        return f"the database: {changed}"

    def fail(self, c: Case, what: str) -> None:
        message = f"[{self.kind}] {c!r}\n  {what}"
        self.violations.append(message)
        if COLLECT:
            with open(COLLECT, "a", encoding="utf-8", errors="backslashreplace") as log:
                log.write(message + "\n")

    def report(self) -> str:
        outcomes = ", ".join(f"{k}={n}" for k, n in self.outcomes.most_common())
        return (
            f"{self.kind} {self.family}: {self.examples} examples ({self.checksums} checksums); "
            f"{outcomes}"
        )


# ---------------------------------------------------------------------------------------
# Strategies: building blocks
# ---------------------------------------------------------------------------------------

VALID_CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
valid_text = st.text(VALID_CHARS, max_size=30)
fresh_ids = st.uuids().map(lambda u: f"fz-{u.hex[:20]}")
BIG_INTS = (10**30, -(10**30), 2**63, -(2**63) - 1, 2**31, 2**64, 10**12)
ODD = (
    object(),
    set(),
    frozenset({"a"}),
    bytearray(b"x"),
    memoryview(b"xy"),
    Ellipsis,
    type,
    Decimal("1.5"),
    complex(1, 2),
    range(3),
    iter([1, 2]),
)
wrong_types = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from(BIG_INTS),
    st.floats(),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.tuples(st.integers()),
    st.dictionaries(valid_text, st.integers(), max_size=2),
    st.sampled_from(ODD),
)
"""Values of the wrong type for a string argument (none is a str)."""


def rarely(rare: st.SearchStrategy[Any], usual: st.SearchStrategy[Any]) -> Any:
    """`rare` for a few percent of draws (1 MB strings are slow to tokenize), else `usual`."""
    return st.integers(0, 63).flatmap(lambda n: rare if n == 0 else usual)


bad_text = rarely(
    st.sampled_from([HUGE + "\x00", "\x00" + HUGE, HUGE + "\ud800"]),
    st.builds(
        lambda a, bad, b: a + bad + b,
        valid_text,
        st.sampled_from(["\x00", "\ud800", "\udfff", "\udc80\ud800"]),
        valid_text,
    ),
)
"""Strings no database stores faithfully: a NUL or a lone surrogate, sometimes in 1 MB."""
bad_ids = st.one_of(
    wrong_types,
    st.just(""),
    rarely(st.just(HUGE), st.just("i" * 256)),
    bad_text,
)
bad_owners = st.one_of(wrong_types.filter(lambda v: v is not None), st.just("o" * 256), bad_text)
KNOWN_MODELS = contextkit.known_models(aliases=True)
bad_models = st.one_of(
    wrong_types.filter(lambda v: v is not None),
    st.sampled_from(SQLISH),
    valid_text.filter(lambda s: s not in KNOWN_MODELS),
    bad_text,
    st.just("m" * 10_000),
)
bad_context_tokens = st.one_of(
    st.sampled_from([0, -1, -(10**30), 10**30, 2**63, 1_048_577, 10**12, True, False]),
    st.floats(),
    st.sampled_from(["1000", b"1000", [1000], Decimal(1000)]),
)
bad_system = st.one_of(wrong_types.filter(lambda v: v is not None), bad_text)
bad_metadata = st.one_of(
    st.sampled_from(
        [
            5,
            "str",
            ["a"],
            b"{}",
            {"a": object()},
            {"a": b"x"},
            {("t",): 1},
            {"a": "\ud800"},
            {"\ud800": 1},
            {"big": "x" * 70_000},
            {"a": {1, 2}},
            {"a": Decimal("1.5")},
            {"a": DEEP},
            {"a": [HUGE]},
        ]
    ),
    st.dictionaries(valid_text, bad_text.filter(lambda t: "\x00" not in t), min_size=1, max_size=2),
)
"""(A NUL is fine in metadata: JSON escapes it; a lone surrogate is not.)"""
bad_keys = st.one_of(
    wrong_types.filter(lambda v: v is not None), st.just(""), st.just("k" * 256), bad_text
)


def valid_message(role: str | None = None) -> st.SearchStrategy[dict[str, Any]]:
    user = valid_text.map(lambda t: {"role": "user", "content": t or "hi"})
    parts = valid_text.map(
        lambda t: {"role": "user", "content": [{"type": "text", "text": t or "hi"}]}
    )
    assistant = valid_text.map(lambda t: {"role": "assistant", "content": t or "ok"})
    calls = fresh_ids.map(
        lambda i: {"role": "assistant", "content": None, "tool_calls": [_call(i)]}
    )
    system = st.sampled_from(["system", "developer"]).map(lambda r: {"role": r, "content": "Be."})
    by_role = {"user": st.one_of(user, parts), "assistant": st.one_of(assistant, calls)}
    if role is not None:
        return by_role[role]
    return st.one_of(user, parts, assistant, calls, system)


class SDKLike:
    """An object with `model_dump`, like an openai SDK message; returns whatever it holds."""

    def __init__(self, dumped: Any) -> None:
        self.dumped = dumped

    def model_dump(self, **_: Any) -> Any:
        return self.dumped

    def __repr__(self) -> str:
        return f"SDKLike({_repr.repr(self.dumped)})"


@st.composite
def invalid_messages(draw: st.DrawFn) -> tuple[Any, str]:
    """A message every append must refuse, and a tag naming its defect."""
    base = dict(draw(valid_message()))
    kind = draw(
        st.sampled_from(
            [
                "not-a-message",
                "role",
                "unknown-key",
                "content:type",
                "content:none",
                "content:text",
                "content:parts",
                "image",
                "image:corrupt-body",
                "image:role",
                "name",
                "tool_calls:role",
                "tool_calls:junk",
                "tool_call_id",
                "tool_call_id:misplaced",
                "reasoning",
                "legacy",
                "sdk",
            ]
        )
    )
    if kind == "not-a-message":
        return draw(st.one_of(wrong_types, valid_text, bad_text, st.just([base]))), kind
    if kind == "sdk":
        return SDKLike(draw(st.one_of(wrong_types, st.just([base])))), kind
    if kind == "role":
        base["role"] = draw(
            st.one_of(
                wrong_types,
                st.sampled_from(["", "USER", "bot", "function", "user ", "user\x00", "\ud800"]),
                st.sampled_from(SQLISH),
            )
        )
    elif kind == "unknown-key":
        key = draw(st.one_of(valid_text, st.sampled_from(["contents", "Role", "id", "pinned", 1])))
        if key in base or key in ("role", "content", "name", "tool_calls", "tool_call_id"):
            key = f"x-{key}"
        if key in ("reasoning_content", "refusal", "annotations", "audio", "function_call"):
            key = f"x-{key}"
        base[key] = draw(st.one_of(st.none(), valid_text))
    elif kind == "content:type":
        base["content"] = draw(
            wrong_types.filter(lambda v: v is not None and not isinstance(v, (list, tuple)))
            | st.sampled_from([[], (), [[]], [None], [5], ["text"], [b"x"]])
        )
    elif kind == "content:none":
        base["content"] = None
        base.pop("tool_calls", None)
    elif kind == "content:text":
        base["content"] = draw(bad_text)
    elif kind == "content:parts":
        base["content"] = draw(
            st.lists(
                st.sampled_from(
                    [
                        {"type": "text"},
                        {"type": "text", "text": 5},
                        {"type": "text", "text": None},
                        {"type": "text", "text": "a\x00b"},
                        {"type": "text", "text": "\ud800"},
                        {"type": "texts", "text": "a"},
                        {"type": None, "text": "a"},
                        {"type": ["text"], "text": "a"},
                        {"text": "a"},
                        {"type": "image_url"},
                        {"type": "image_url", "image_url": None},
                        {"type": "image_url", "image_url": {"url": 5}},
                        {"type": "image_url", "image_url": {"uri": "https://x.org/a.png"}},
                        {
                            "type": "image_url",
                            "image_url": {"url": "https://x/", "detail": "ultra"},
                        },
                        {"type": "image_url", "image_url": {"url": "https://x/", "detail": []}},
                        {"type": "input_audio", "input_audio": {"data": "AAAA"}},
                        "just text",
                        None,
                        5,
                    ]
                ),
                min_size=1,
                max_size=3,
            ).map(lambda junk: [{"type": "text", "text": "ok"}, *junk])
        )
    elif kind in ("image", "image:corrupt-body"):
        if kind == "image":
            url = draw(
                st.one_of(
                    st.sampled_from(CORRUPT_IMAGE_URLS),
                    st.binary(min_size=1, max_size=64)
                    .filter(lambda b: not b.startswith(MAGIC))
                    .map(data_url),
                )
            )
        else:  # a valid header on a corrupt body, or PNG bytes sent as JPEG
            url = draw(
                st.sampled_from(
                    [
                        data_url(PNG_TRUNCATED),
                        data_url(PNG_GARBAGE_BODY),
                        data_url(PNG64, "image/jpeg"),
                    ]
                )
            )
        detail = draw(st.sampled_from([None, "auto", "low", "high"]))
        image = {"url": url} if detail is None else {"url": url, "detail": detail}
        base = {"role": "user", "content": [{"type": "image_url", "image_url": image}]}
    elif kind == "image:role":
        role = draw(st.sampled_from(["assistant", "system", "developer"]))
        image = {"type": "image_url", "image_url": {"url": data_url(PNG64)}}
        base = {"role": role, "content": [{"type": "text", "text": "see"}, image]}
    elif kind == "name":
        bad_name = st.sampled_from(["", "a b", "n" * 65, "näme", "a\x00", "\ud800", 5, ["n"]])
        base["name"] = draw(bad_name)
        if draw(st.booleans()):
            base = {"role": "tool", "tool_call_id": "call_x", "content": "1", "name": "fine"}
    elif kind == "tool_calls:role":
        base = {
            "role": draw(st.sampled_from(["user", "system", "developer", "tool"])),
            "content": "x",
            "tool_calls": [_call(draw(fresh_ids))],
        }
        if base["role"] == "tool":
            base["tool_call_id"] = "call_x"
    elif kind == "tool_calls:junk":
        base = {"role": "assistant", "content": draw(st.sampled_from([None, "x"]))}
        i = draw(fresh_ids)
        base["tool_calls"] = draw(
            st.sampled_from(
                [
                    "call",
                    {"id": i},
                    5,
                    b"x",
                    [5],
                    [None],
                    ["call"],
                    [{"id": i}],
                    [{"id": i, "function": None}],
                    [{"id": i, "function": "get_weather"}],
                    [{"id": i, "function": {"name": "get_weather"}}],
                    [_call(i, name="bad name")],
                    [_call(i, name="")],
                    [_call(i, name="n" * 65)],
                    [_call(i, name=None)],
                    [_call(i, arguments={"city": "Paris"})],
                    [_call(i, arguments=None)],
                    [_call(i, arguments="\x00")],
                    [_call(i, arguments="\ud800")],
                    [_call(None)],
                    [_call(5)],
                    [_call("")],
                    [_call("c" * 256)],
                    [_call("a\x00b")],
                    [_call("\ud800")],
                    [{**_call(i), "type": "code"}],
                    [{**_call(i), "type": None}],
                    [_call(i), _call(i)],
                ]
            )
        )
        if base["content"] is None and base["tool_calls"] == []:
            base["tool_calls"] = None
    elif kind == "tool_call_id":
        answered = draw(
            st.one_of(
                st.sampled_from(["call_a1", "call_b1", *SQLISH]),
                fresh_ids,
                st.sampled_from([None, 5, "", "c" * 256, "a\x00", "\ud800"]),
            )
        )
        base = {"role": "tool", "tool_call_id": answered, "content": "42"}
    elif kind == "tool_call_id:misplaced":
        base["tool_call_id"] = "call_a1"
        if base["role"] == "tool":
            base["role"] = "user"
    elif kind == "reasoning":
        if draw(st.booleans()):
            base = {"role": "user", "content": "x", "reasoning_content": "thought"}
        else:
            base = {"role": "assistant", "content": "x"}
            base["reasoning_content"] = draw(st.one_of(bad_text, st.sampled_from([5, ["r"], b"r"])))
    elif kind == "legacy":
        key, value = draw(
            st.sampled_from(
                [
                    ("function_call", {"name": "f", "arguments": "{}"}),
                    ("audio", {"id": "a1"}),
                    ("function_call", "f"),
                ]
            )
        )
        base = {"role": "assistant", "content": "x", key: value}
    return base, kind


# ---------------------------------------------------------------------------------------
# Families
# ---------------------------------------------------------------------------------------


def _owned_by(owner: str) -> Callable[[Any], None]:
    def check(threads: list[contextkit.Thread]) -> None:
        assert all(t.owner == owner for t in threads), [(t.id, t.owner) for t in threads]
        seeded = {tid for tid, o in EXISTING if o == owner}
        assert seeded <= {t.id for t in threads}

    return check


@st.composite
def thread_cases(draw: st.DrawFn) -> Case:
    kind = draw(
        st.sampled_from(
            [
                "new:id",
                "new:owner",
                "new:model",
                "new:setting",
                "existing:setting",
                "update",
                "other-owner",
                "other-owner:get",
                "missing",
                "get:bad",
                "admin",
                "threads",
                "same-owner",
            ]
        )
    )
    settings_bad = {
        "system": bad_system,
        "max_context_tokens": bad_context_tokens,
        "metadata": bad_metadata,
    }
    if kind == "new:id":
        return case("store.thread", draw(bad_ids), model=MODEL, tags="id")
    if kind == "new:owner":
        return case(
            "store.thread", draw(fresh_ids), model=MODEL, owner=draw(bad_owners), tags="owner"
        )
    if kind == "new:model":
        model = draw(st.one_of(st.none(), bad_models))
        tag = "model:missing" if model is None else "model"
        return case("store.thread", draw(fresh_ids), model=model, owner="z", tags=tag)
    if kind in ("new:setting", "existing:setting", "update"):
        name = draw(st.sampled_from(sorted(settings_bad)))
        value = draw(settings_bad[name])
        if kind == "update":
            return case("alice.update", **{name: value}, tags=name)
        tid, owner = (draw(fresh_ids), "z") if kind == "new:setting" else (ALICE, "alice")
        return case("store.thread", tid, model=MODEL, owner=owner, **{name: value}, tags=name)
    if kind in ("other-owner", "other-owner:get"):
        tid, true_owner = draw(st.sampled_from(EXISTING))
        owner = draw(st.sampled_from(OTHER_OWNERS).filter(lambda o: o != true_owner))
        if kind == "other-owner:get":
            return case(
                "store.get_thread", tid, owner=owner, want=PermissionDenied, tags="owner:other"
            )
        changes = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "model": st.sampled_from(["deepseek-v4-pro", MODEL]),
                    "system": st.sampled_from(["Evil.", "", "Be brief."]),
                    "max_context_tokens": st.integers(1, 131_072),
                    "metadata": st.sampled_from([{}, {"owned": True}]),
                },
            )
        )
        return case(
            "store.thread", tid, owner=owner, **changes, want=PermissionDenied, tags="owner:other"
        )
    if kind == "missing":
        tid = draw(st.one_of(st.sampled_from(SQLISH), valid_text.filter(bool), fresh_ids))
        owner = draw(st.one_of(st.sampled_from(OTHER_OWNERS), st.just("alice")))
        existing = {t for t, _ in EXISTING}
        if tid in existing or len(tid) > 255:
            tid = f"missing-{tid[:200]}"
        if draw(st.booleans()):
            return case("store.get_thread", tid, owner=owner, want=NotFound, tags="id:missing")
        return case("store.thread", tid, owner=owner, want=ValidationError, tags="model:missing")
    if kind == "get:bad":
        if draw(st.booleans()):
            return case("store.get_thread", draw(bad_ids), owner="alice", tags="id")
        return case("store.get_thread", ALICE, owner=draw(bad_owners), tags="owner")
    if kind == "admin":
        if draw(st.booleans()):
            return case("store.admin_thread", draw(bad_ids), tags="id")
        return case("store.admin_thread", draw(st.sampled_from(SQLISH)), expect=READ)
    if kind == "threads":
        choice = draw(st.sampled_from(["owner", "bad-owner", "page_size"]))
        if choice == "owner":
            owner = draw(st.sampled_from([*OTHER_OWNERS, "alice", "carol"]))
            return case("store.threads", owner=owner, expect=READ, post=_owned_by(owner))
        if choice == "bad-owner":
            return case("store.threads", owner=draw(bad_owners), tags="owner")
        size = draw(st.one_of(st.integers(-3, 3), st.sampled_from([1.5, "2", None, 10**30])))
        return case("store.threads", owner="alice", page_size=size, expect=READ, tags="page_size")
    tid, owner = draw(st.sampled_from(EXISTING))
    return case("store.thread", tid, owner=owner, expect=READ, post=lambda t: t.info())


@st.composite
def append_cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(["message", "message", "message", "key", "key-reuse", "pinned"]))
    if kind == "message":
        message, tag = draw(invalid_messages())
        key = draw(st.one_of(st.none(), fresh_ids))
        return case(
            "alice.append", message, idempotency_key=key, pinned=draw(st.booleans()), tags=tag
        )
    if kind == "key":
        message = draw(valid_message())
        return case("alice.append", message, idempotency_key=draw(bad_keys), tags="idempotency_key")
    if kind == "key-reuse":
        message = draw(valid_message())
        if message == {"role": "user", "content": "Thanks"}:
            return case("alice.append", message, idempotency_key="key-1", expect=READ)
        return case("alice.append", message, idempotency_key="key-1", tags="idempotency_key:reused")
    message = {"role": "assistant", "content": None, "tool_calls": [_call(draw(fresh_ids))]}
    return case("alice.append", message, pinned=True, tags="pinned:tool_calls")


@st.composite
def extend_cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(["one-bad", "one-bad", "one-bad", "in-txn", "not-a-list", "empty"]))
    valid = st.lists(st.one_of(valid_message("user"), valid_message("assistant")), max_size=4)
    if kind == "one-bad":
        bad, tag = draw(invalid_messages())
        messages = [*draw(valid), bad, *draw(valid)]
        if draw(st.booleans()):
            return case("alice.extend", tuple(messages), tags=tag)
        return case("alice.extend", iter(messages), tags=tag)
    if kind == "in-txn":
        i = draw(fresh_ids)
        call = {"role": "assistant", "content": None, "tool_calls": [_call(i)]}
        answer = {"role": "tool", "tool_call_id": i, "content": "1"}
        bad, tag = draw(
            st.sampled_from(
                [
                    ([call, answer, answer], "tool_call_id:answered-twice"),
                    ([call, call], "tool_calls:pending-twice"),
                    ([call, {**answer, "tool_call_id": "call_b1"}], "tool_call_id:other-thread"),
                    ([answer], "tool_call_id:unknown"),
                    ([{**answer, "tool_call_id": "call_a1"}], "tool_call_id:answered"),
                ]
            )
        )
        prefix = draw(st.integers(0, 60)) if draw(st.integers(0, 9)) == 0 else 0
        head = [{"role": "user", "content": f"bulk {n}"} for n in range(prefix)]
        return case("alice.extend", [*head, *draw(valid), *bad], tags=tag)
    if kind == "not-a-list":
        value = draw(
            st.one_of(
                st.sampled_from([None, 5, 1.5, True, object(), Ellipsis]),
                st.sampled_from(["user", b"ab", {"role": "user", "content": "x"}]),
            )
        )
        tag = "messages:scalar" if isinstance(value, (str, bytes, dict)) else "messages:type"
        return case("alice.extend", value, tags=tag)
    return case("alice.extend", draw(st.sampled_from([[], (), iter([])])), expect=READ)


bad_max_tokens = st.one_of(
    st.sampled_from([0, -1, -(10**12), 131_072, 131_073, 384_000, 384_001, 10**12, 10**30]),
    st.sampled_from([True, False, None, 1.5, 100.0, "100", b"100", [100], Decimal(100)]),
    st.floats(),
    st.integers(max_value=0),
)
good_max_tokens = st.one_of(st.integers(1, 4_000), st.integers(125_000, 131_071))
bad_tools = st.sampled_from(
    [
        "tools",
        5,
        [5],
        [None],
        [{}],
        [{"type": "function"}],
        [{"type": "code", "function": {"name": "f"}}],
        [{"type": "function", "function": {"name": 5}}],
        [{"type": "function", "function": {"name": "f", "parameters": {"a": object()}}}],
        [{"type": "function", "function": {"name": "f", "parameters": {"a": {1, 2}}}}],
        [{"type": "function", "function": {"name": "f", "parameters": DEEP}}],
        {"type": "function", "function": {"name": "f"}},
    ]
)
bad_extra = st.one_of(
    st.sampled_from([5, 1.5, b"x", object(), [5], [None], ["x"], {"role": "wizard"}]),
    bad_text,
    st.sampled_from(
        [
            {"role": "tool", "tool_call_id": "call_a1", "content": "1"},
            [{"role": "assistant", "content": None, "tool_calls": [_call("x")]}],
        ]
    ),
).map(lambda v: (v, "extra")) | invalid_messages().filter(
    lambda m: m[1] not in ("not-a-message", "sdk")
).map(lambda m: (m[0], f"extra:{m[1]}"))
"""(extra, tag): values `extra=` must refuse."""
adversarial_extra = st.one_of(
    st.none(),
    st.sampled_from(SQLISH),
    rarely(st.just(HUGE), valid_text),
    st.just([{"role": "user", "content": [{"type": "text", "text": "look"}]}]),
    st.just({"role": "user", "content": [{"type": "image_url", "image_url": data_url(PNG64)}]}),
)


@st.composite
def build_cases(draw: st.DrawFn) -> Case:
    op = draw(st.sampled_from(["alice.prepare", "alice.build"]))
    kind = draw(
        st.sampled_from(
            [
                "max_tokens",
                "max_tokens",
                "option",
                "option",
                "adversarial",
                "read",
                "compact",
            ]
        )
    )
    if kind == "max_tokens":
        return case(op, max_tokens=draw(bad_max_tokens), tags="max_tokens")
    if kind == "option":
        options = {
            "extra": bad_extra,
            "tools": bad_tools,
            "reasoning_effort": st.one_of(
                st.sampled_from(["", "HIGH", "extreme", 5, ["high"], b"high", "high\x00"]),
                st.sampled_from(SQLISH),
            ),
            "low_water": st.one_of(
                st.sampled_from([0, -1, 1.01, 2, math.inf, math.nan, "0.5", None, [0.5]]),
                st.floats(max_value=0.0),
            ),
            "compaction": st.sampled_from(["off", 5, {"enabled": False}, object()]),
        }
        if op == "alice.build":
            options["format"] = st.sampled_from(["OpenAI", "", None, 5, "anthropic\x00", "gemini"])
        name = draw(st.sampled_from(sorted(options)))
        value, tag = draw(options[name]), name
        if name == "extra":
            value, tag = value
        return case(op, max_tokens=draw(good_max_tokens), **{name: value}, tags=tag)
    if kind == "adversarial":
        return case(
            op,
            max_tokens=draw(good_max_tokens),
            extra=draw(adversarial_extra),
            thinking=draw(st.sampled_from([None, True, False, 0, "no", [], object()])),
            summarizer=draw(st.sampled_from([None, "x", 5, object()])),
            expect=ANY,
        )
    if kind == "read":
        junk_int = st.one_of(
            st.integers(-5, 20),
            st.sampled_from([None, 1.5, "3", b"3", [3], 10**30, -(10**30), True, math.nan]),
        )
        read = draw(st.sampled_from(["messages", "get", "history", "stats", "summaries", "info"]))
        if read == "messages":
            kwargs = draw(
                st.fixed_dictionaries(
                    {}, optional={"after": junk_int, "before": junk_int, "page_size": junk_int}
                )
            )
            return case("alice.messages", **kwargs, expect=READ, tags=[f"{k}" for k in kwargs])
        if read == "get":
            return case("alice.get", draw(junk_int), expect=READ, tags="seq")
        if read == "history":
            return case("alice.history", page_size=draw(junk_int), expect=READ, tags="page_size")
        return case(f"alice.{read}", expect=READ)
    which = draw(st.sampled_from(["max_tokens", "max_tokens:int", "policy", "summarizer"]))
    if which == "max_tokens":
        value = draw(st.sampled_from([None, 1.5, "100", b"1", [1], math.nan, Decimal(1)]))
        return case("alice.compact", max_tokens=value, tags="max_tokens")
    if which == "max_tokens:int":
        value = draw(st.one_of(st.integers(-(10**6), 10**6), st.sampled_from(BIG_INTS)))
        return case("alice.compact", max_tokens=value, expect=ANY, tags="max_tokens:int")
    if which == "policy":
        value = draw(st.sampled_from(["p", 5, {"high_water": 0.5}, object()]))
        return case("alice.compact", policy=value, tags="policy")
    value = draw(st.sampled_from(["s", 5, object()]))
    return case("alice.compact", summarizer=value, expect=ANY)


def response(message: Any = None, **changes: Any) -> dict[str, Any]:
    """A valid chat completion (new id) with `changes` applied (None values: removed)."""
    choice: dict[str, Any] = {
        "index": 0,
        "message": message or {"role": "assistant", "content": "Sure."},
        "finish_reason": changes.pop("finish_reason", "stop"),
    }
    out: dict[str, Any] = {
        "id": changes.pop("id", "resp-new"),
        "object": "chat.completion",
        "model": MODEL,
        "choices": [choice],
        "usage": {"prompt_tokens": 100, "completion_tokens": 5},
    }
    out.update(changes)
    return out


@st.composite
def record_cases(draw: st.DrawFn) -> Case:
    rid = draw(fresh_ids)
    kind = draw(
        st.sampled_from(
            [
                "response",
                "choices",
                "message",
                "usage",
                "id",
                "kwarg",
                "kwarg",
                "replay",
                "finish_reason",
            ]
        )
    )
    if kind == "response":
        value = draw(st.one_of(wrong_types, valid_text, st.sampled_from([{}, {"id": rid}])))
        return case("alice.record", value, tags="response")
    if kind == "choices":
        choices = draw(
            st.sampled_from(
                [None, [], (), "c", 5, {"0": {}}, [None], [5], ["c"], [{}], [{"message": None}]]
            )
        )
        return case("alice.record", response(id=rid, choices=choices), tags="choices")
    if kind == "message":
        message = draw(
            st.one_of(
                invalid_messages().map(lambda m: m[0]),
                st.sampled_from(
                    [
                        {"role": "user", "content": "I am the assistant"},
                        {"role": "system", "content": "x"},
                        {"role": "tool", "tool_call_id": "call_a1", "content": "x"},
                    ]
                ),
            )
        )
        out = response(id=rid)
        out["choices"] = [{"index": 0, "message": message, "finish_reason": "stop"}]
        return case("alice.record", out, tags="message")
    if kind == "usage":
        field = draw(st.sampled_from(["prompt_tokens", "completion_tokens"]))
        usage: Any = {"prompt_tokens": 100, "completion_tokens": 5}
        expect = INVALID
        choice = draw(st.integers(0, 4))
        if choice == 0:
            usage = draw(st.sampled_from(["u", 5, [1, 2], b"u", object()]))
            tag = "usage"
        elif choice == 1:
            usage[field] = draw(
                st.sampled_from([-1, None, "100", 1.5, True, [1], math.nan, -(10**30)])
            )
            tag = "usage:field"
        elif choice == 2:
            usage[field] = draw(st.sampled_from([2**31, 2**40, 2**63 - 1]))
            tag, expect = "usage:int32", ANY  # a 64-bit count: SQLite stores it, PG refuses
        elif choice == 3:
            usage[field] = draw(st.sampled_from([2**63, 10**30]))
            tag = "usage:int64"
        else:
            extra = draw(
                st.sampled_from(
                    [
                        {"prompt_cache_hit_tokens": 101},
                        {"prompt_cache_hit_tokens": -1},
                        {"prompt_cache_hit_tokens": "5"},
                        {"prompt_cache_miss_tokens": 1.5},
                        {"prompt_tokens_details": "d"},
                        {"prompt_tokens_details": {"cached_tokens": "5"}},
                        {"prompt_tokens_details": {"cached_tokens": 1.5}},
                        {"prompt_tokens_details": {"cached_tokens": [5]}},
                        {"completion_tokens_details": {"reasoning_tokens": -3}},
                        {"completion_tokens_details": 7},
                    ]
                )
            )
            usage.update(extra)
            tag = "usage:details"
        return case("alice.record", response(id=rid, usage=usage), tags=tag, expect=expect)
    if kind == "id":
        value = draw(st.one_of(st.sampled_from([5, b"id", ["id"], "", "r" * 256]), bad_text))
        return case("alice.record", response(id=value), tags="id")
    if kind == "kwarg":
        name, values = draw(
            st.sampled_from(
                [
                    ("latency_ms", st.sampled_from(["12", b"1", [1], {}, object(), 10**400])),
                    ("predicted_cache_hit_tokens", st.sampled_from(["5", [5], 1.5, {}, b"5"])),
                    ("predicted_cache_hit_tokens:int", st.sampled_from([-1, 2**70])),
                    ("prompt", st.sampled_from(["p", 5, object(), {"prompt_tokens": 1}])),
                ]
            )
        )
        return case(
            "alice.record", response(id=rid), **{name.split(":")[0]: draw(values)}, tags=name
        )
    if kind == "finish_reason":
        value, tag = draw(
            st.sampled_from(
                [
                    ("s" * 33, "finish_reason:long"),
                    ("x" * 10_000, "finish_reason:long"),
                    ("stop\x00", "finish_reason:nul"),
                    ("\ud800", "finish_reason:surrogate"),
                ]
            )
        )
        return case("alice.record", response(id=rid, finish_reason=value), tags=tag)
    if draw(st.booleans()):
        return case("alice.record", SEED_RESPONSE, expect=READ)
    changed = response(id="resp-seed", message={"role": "assistant", "content": "Other."})
    return case("alice.record", changed, tags="id:reused")


@st.composite
def function_cases(draw: st.DrawFn) -> Case:
    kind = draw(
        st.sampled_from(
            [
                "count_tokens",
                "count_messages",
                "get_model",
                "image_tokens",
                "prepare_image",
                "check_image_count",
                "parse",
                "policy",
                "summarizer",
                "tool_schema",
                "read_jsonl",
                "open",
            ]
        )
    )
    model = st.one_of(st.just(MODEL), bad_models)
    if kind == "count_tokens":
        text = draw(st.one_of(wrong_types, valid_text, bad_text))
        return case("contextkit.count_tokens", text, draw(model), expect=READ, tags="text")
    if kind == "count_messages":
        messages = draw(
            st.one_of(
                wrong_types,
                st.lists(invalid_messages().map(lambda m: m[0]), min_size=1, max_size=2),
                st.lists(valid_message(), max_size=2),
            )
        )
        options = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "tools": bad_tools,
                    "thinking": st.sampled_from([None, "x", 5]),
                    "reasoning_effort": st.sampled_from(["extreme", 5, None]),
                },
            )
        )
        return case(
            "contextkit.count_messages",
            messages,
            draw(model),
            **options,
            expect=READ,
            tags="messages",
        )
    if kind == "get_model":
        return case("contextkit.get_model", draw(bad_models), tags="model")
    if kind == "image_tokens":
        size = st.one_of(
            st.integers(-5, 5), st.sampled_from([10**30, 1.5, "64", None, math.inf, True])
        )
        detail = st.sampled_from(["auto", "low", "high", "", "HIGH", 5, None])
        return case(
            "contextkit.image_tokens",
            draw(size),
            draw(size),
            draw(detail),
            expect=READ,
            tags="size",
        )
    if kind == "prepare_image":
        source = draw(
            st.one_of(
                st.sampled_from(CORRUPT_IMAGE_URLS),
                st.binary(max_size=64).filter(lambda b: not b.startswith(MAGIC)),
                st.sampled_from(
                    [
                        PNG1,
                        PNG_TRUNCATED,
                        PNG_GARBAGE_BODY,
                        PNG_HUGE,
                        b"",
                        "",
                        "/",
                        "/no/such/image.png",
                        "https://exa mple.com/a.png",
                        "https://",
                        "http://\x00",
                        "https://x.org/\ud800",
                        5,
                        None,
                        [PNG64],
                        Path("/no/such/image.png"),
                        "\x00",
                        "\ud800.png",
                    ]
                ),
            )
        )
        detail = draw(st.sampled_from(["auto", "low", "", 5, None]))
        return case("images.prepare_image", source, detail=detail, tags="image")
    if kind == "check_image_count":
        n = draw(st.one_of(st.integers(-3, 10**6), st.sampled_from([1.5, "1", None, True])))
        return case("images.check_image_count", n, expect=READ, tags="count")
    if kind == "parse":
        message, tag = draw(invalid_messages())
        if message and isinstance(message, dict) and message.get("role") == "tool":
            tag = "tool"  # parse alone cannot know the tool call is unknown
        # parse checks shape only: image data and tool call ids are the store's to check
        expect = READ if tag in ("tool", "tool_call_id", "image", "image:corrupt-body") else INVALID
        return case("contextkit.Message.parse", message, expect=expect, tags=tag)
    if kind == "policy":
        name = draw(
            st.sampled_from(
                ["high_water", "keep_recent", "summary_share", "min_summary_tokens", "enabled"]
            )
        )
        value = draw(st.sampled_from([0, -1, 1.5, math.nan, "0.5", None, [1], True, 10**30]))
        return case("contextkit.CompactionPolicy", **{name: value}, expect=READ, tags=name)
    if kind == "summarizer":
        value = draw(st.sampled_from([0, -1, 1.5, math.nan, "0.5", None, [1]]))
        return case("contextkit.ExtractiveSummarizer", new_share=value, tags="new_share")
    if kind == "tool_schema":
        value = draw(st.sampled_from([5, "f", None, object(), print, [len]]))
        return case("contextkit.tool_schema", value, expect=READ, tags="fn")
    if kind == "read_jsonl":
        lines = draw(
            st.one_of(
                st.lists(st.sampled_from(["{", "[]", "5", "null", '"s"', "{}", "\x00", ""])),
                st.sampled_from([5, None, [5], [b"{}"], "{}"]),
            )
        )
        return case("transfer.read_jsonl", lines, expect=READ, tags="lines")
    url = draw(
        st.sampled_from(
            [
                5,
                "",
                "not a url",
                "foo://bar",
                "mysql://u@127.0.0.1:1/x",
                "postgresql://u@127.0.0.1:1/x",
                "sqlite:///\x00",
                "sqlite:///\ud800.db",
                "sqlite:////no/such/dir/contextkit.db",
                b"sqlite://",
                ["sqlite://"],
            ]
        )
    )
    return case("contextkit.open", url, tags="url")


not_int = st.one_of(
    st.sampled_from(["5", "", "x", 1.5, math.nan, True, [1], {}, b"1", Decimal(1)]),
    st.sampled_from([10**30, -(10**30)]),
)
not_float = st.sampled_from(["1.5", "", "x", [1.5], {}, b"1", object()])
not_text = st.one_of(st.sampled_from([5, 1.5, True, ["t"], {}, b"t"]), bad_text)
not_time = st.one_of(
    st.sampled_from([None, 5, 1.5, b"2024", [EXPORT_T0], "", "yesterday", "2024-13-45", "\x00"]),
    bad_text,
)
IMPORT_FIELDS: dict[str, dict[str, tuple[st.SearchStrategy[Any], bool]]] = {
    "summary": {
        "n": (not_int, True),
        "from_seq": (not_int, True),
        "upto_seq": (not_int, True),
        "text": (not_text, True),
        "token_count": (not_int, True),
        "summarizer": (not_text, True),
        "model": (not_text, False),
        "prompt_tokens": (not_int, True),
        "completion_tokens": (not_int, True),
        "cost_usd": (not_float, False),
        "created_at": (not_time, True),
    },
    "call": {
        "n": (not_int, True),
        "message_seq": (not_int, False),
        "response_id": (not_text, False),
        "model": (not_text, True),
        "prompt_tokens": (not_int, True),
        "completion_tokens": (not_int, True),
        "reasoning_tokens": (not_int, True),
        "cache_hit_tokens": (not_int, True),
        "cache_miss_tokens": (not_int, True),
        "predicted_prompt_tokens": (not_int, False),
        "predicted_cache_hit_tokens": (not_int, False),
        "structure": (not_text, False),
        "cost_usd": (not_float, False),
        "latency_ms": (not_float, False),
        "finish_reason": (not_text, False),
        "window_start": (not_int, False),
        "created_at": (not_time, True),
    },
}
"""Per export record field: values of the wrong type, and whether the field is required."""


@st.composite
def import_cases(draw: st.DrawFn) -> Case:
    tid = draw(fresh_ids)
    header = export_header(tid)
    messages = [export_message(tid, s) for s in range(1, draw(st.integers(2, 4)) + 1)]
    extras = [export_summary(tid), export_call(tid)]
    kind = draw(
        st.sampled_from(
            ["records", "record", "header", "header", "message", "message", "summary", "call"]
        )
    )
    if kind == "records":
        value = draw(st.one_of(wrong_types, st.sampled_from(["records", b"{}"])))
        return case("transfer.import_records", value, expect=READ, tags="records")
    if kind == "record":
        junk = draw(
            st.sampled_from(
                [
                    5,
                    None,
                    "thread",
                    [header],
                    {},
                    {"type": None},
                    {"type": ["thread"]},
                    {"type": {"thread": 1}},
                    {"type": "threads"},
                    {"type": "message", "thread": tid},
                    {"type": "message", "thread": ALICE, "seq": 7, "message": {}},
                ]
            )
        )
        where = draw(st.sampled_from(["first", "after-header"]))
        records = [junk] if where == "first" else [header, junk]
        return case("transfer.import_records", records, tags="record")
    if kind == "header":
        field = draw(
            st.sampled_from(
                [
                    "id",
                    "id:existing",
                    "owner",
                    "model",
                    "system",
                    "max_context_tokens",
                    "metadata",
                    "window_start",
                    "window_start:range",
                    "created_at",
                    "updated_at",
                ]
            )
        )
        strategies: dict[str, st.SearchStrategy[Any]] = {
            "id": bad_ids,
            "id:existing": st.sampled_from([t for t, _ in EXISTING]),
            "owner": bad_owners,
            "model": st.one_of(st.none(), bad_models),
            "system": bad_system,
            "max_context_tokens": bad_context_tokens,
            "metadata": bad_metadata,
            "window_start": st.sampled_from(["x", [1], "\x00", "1.5", b"x"]),
            "window_start:range": st.sampled_from([-5, 10**6, 2**40, 10**30]),
            "created_at": not_time,
            "updated_at": not_time,
        }
        value = draw(strategies[field])
        key = field.split(":")[0]
        header[key] = value
        if key == "id":
            for m in messages:
                m["thread"] = value
            return case("transfer.import_records", [header, *messages], tags=f"header:{field}")
        return case("transfer.import_records", [header, *messages, *extras], tags=f"header:{field}")
    if kind == "message":
        target = draw(st.sampled_from(messages))
        field = draw(
            st.sampled_from(
                ["seq", "message", "message:tool", "created_at", "idempotency_key", "pinned"]
            )
        )
        if field == "seq":
            target["seq"] = draw(st.sampled_from([0, -1, 99, None, "1", 1.5, [1], 10**30]))
            if target["seq"] == 1.5:
                target["seq"] = 2.5
        elif field == "message":
            target["message"], inner = draw(invalid_messages())
            field = f"message:{inner}"
        elif field == "message:tool":
            target["message"] = {"role": "tool", "tool_call_id": "call_a1", "content": "x"}
        elif field == "created_at":
            target["created_at"] = draw(not_time)
        elif field == "idempotency_key":
            target["idempotency_key"] = draw(bad_keys)
        else:
            target["pinned"] = True
            target["message"] = {"role": "assistant", "content": None, "tool_calls": [_call("c")]}
        return case("transfer.import_records", [header, *messages], tags=f"message:{field}")
    record = extras[0] if kind == "summary" else extras[1]
    field = draw(st.sampled_from(sorted(IMPORT_FIELDS[kind])))
    junk, required = IMPORT_FIELDS[kind][field]
    if required and draw(st.integers(0, 4)) == 0:
        del record[field]
        tag = f"{kind}:{field}:missing"
    else:
        record[field] = draw(junk)
        tag = f"{kind}:{field}"
    return case("transfer.import_records", [header, *messages, *extras], tags=tag)


FAMILIES: dict[str, Callable[[], st.SearchStrategy[Case]]] = {
    "threads": thread_cases,
    "append": append_cases,
    "extend": extend_cases,
    "build": build_cases,
    "record": record_cases,
    "functions": function_cases,
    "import": import_cases,
}


# ---------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(FAMILIES))
def test_fuzz(database: Database, family: str) -> None:
    env = Env(database, family)
    try:

        @settings(
            max_examples=QUOTA[family],
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            print_blob=False,
            phases=(Phase.generate,),
        )
        @given(c=FAMILIES[family]())
        def fuzz(c: Case) -> None:
            env.run(c)

        fuzz()
        print(f"\n{env.report()}")
        if env.violations:
            shown = "\n".join(env.violations[:5])
            pytest.fail(f"{len(env.violations)} violation(s), first:\n{shown}", pytrace=False)
        assert env.examples >= QUOTA[family], env.report()
        assert transfer.check(env.store) == []
    finally:
        env.close()


def test_quotas_add_up_to_the_example_count() -> None:
    """Each family test asserts it ran its quota, so together they run at least TOTAL."""
    assert sum(QUOTA.values()) >= TOTAL
