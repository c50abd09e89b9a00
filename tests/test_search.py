"""Full-text search over a thread's whole history, on a real SQLite file and PostgreSQL."""

from __future__ import annotations

import base64
import io

import pytest
import sqlalchemy as sa
from conftest import table_counts
from PIL import Image

import contextkit
from contextkit import SearchHit, ValidationError
from contextkit.recall import parse_query

MODEL = "deepseek-v4-flash"


def png() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (40, 40), (9, 99, 199)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def call(i: str, name: str = "lookup_order", arguments: str = '{"order": "A-5531"}') -> dict:
    return {"id": i, "type": "function", "function": {"name": name, "arguments": arguments}}


@pytest.fixture
def thread(store: contextkit.Store) -> contextkit.Thread:
    t = store.thread("s", model=MODEL, owner="alice", system="Be brief.")
    t.extend(
        [
            {"role": "user", "content": "Hi! My order number is ZX-48213-Q, please hurry."},
            {"role": "assistant", "content": "I will look at order ZX-48213-Q right away."},
            {"role": "assistant", "content": None, "tool_calls": [call("c1")]},
            {"role": "tool", "tool_call_id": "c1", "content": "status: shipped from Rotterdam"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Here is the receipt from the Café Crème."},
                    {"type": "image_url", "image_url": {"url": png()}},
                ],
            },
            {"role": "assistant", "content": "我的订单号是 ZX-48213-Q，已经发货了。"},
            {"role": "user", "content": "Send updates to jane.doe@example.com instead."},
        ]
    )
    return t


def seqs(hits: list[SearchHit]) -> list[int]:
    return [h.seq for h in hits]


def test_every_kind_of_message_is_found(thread: contextkit.Thread) -> None:
    assert seqs(thread.search("Rotterdam")) == [4]  # a tool result
    assert 3 in seqs(thread.search("lookup_order"))  # a tool call's name and arguments
    assert seqs(thread.search("receipt")) == [5]  # the text part beside an image
    hit = thread.search("rotterdam")[0]
    assert hit.role == "tool" and hit.thread_id == "s" and hit.owner == "alice"
    assert hit.snippet == "status: shipped from **Rotterdam**"
    assert hit.excerpt[slice(*hit.matches[0])] == "Rotterdam" and hit.rank > 0
    assert hit.summary is None


def test_query_syntax(thread: contextkit.Thread) -> None:
    # words: all must match, any order, any case
    assert seqs(thread.search("NUMBER order")) == [1]
    # an identifier is the phrase of its words, whatever the punctuation typed
    assert set(seqs(thread.search("zx-48213-q"))) == {1, 2, 6}
    assert set(seqs(thread.search("ZX 48213 Q"))) == {1, 2, 6}
    assert set(seqs(thread.search("Q 48213 ZX"))) == {1, 2, 6}  # three words, any order
    assert seqs(thread.search('"Q 48213 ZX"')) == []  # a phrase keeps its order
    assert seqs(thread.search('"order number"')) == [1]
    assert seqs(thread.search("jane.doe@example.com")) == [7]
    # prefix
    assert seqs(thread.search("Rotter*")) == [4]
    assert seqs(thread.search('"shipped from rott"*')) == [4]
    # accents either way
    assert seqs(thread.search("cafe creme")) == [5]
    assert seqs(thread.search("CAFÉ")) == [5]
    # CJK: any run of characters
    assert seqs(thread.search("订单")) == [6]
    assert seqs(thread.search("单号是")) == [6]
    assert seqs(thread.search("订号")) == []
    assert thread.search("订单")[0].snippet.startswith("我的**订单**号是")
    # words nothing contains
    assert thread.search("Rotterdam Tokyo") == []


def test_filters_and_limit(thread: contextkit.Thread) -> None:
    assert seqs(thread.search("ZX 48213", roles=["user"])) == [1]
    assert set(seqs(thread.search("ZX 48213", roles=["assistant", contextkit.Role.USER]))) == {
        1,
        2,
        6,
    }
    assert set(seqs(thread.search("ZX 48213", before_seq=6))) == {1, 2}
    assert len(thread.search("ZX 48213", limit=1)) == 1
    for bad in ({"limit": 0}, {"limit": 10**6}, {"limit": "5"}, {"limit": True}):
        with pytest.raises(ValidationError, match="limit"):
            thread.search("order", **bad)
    for bad_roles in (["bot"], [], "users", [5], {"user": 1}, 5):
        with pytest.raises(ValidationError, match="roles"):
            thread.search("order", roles=bad_roles)
    for bad_seq in (0, -1, "3", 1.5):
        with pytest.raises(ValidationError, match="before_seq"):
            thread.search("order", before_seq=bad_seq)


HOSTILE = [
    '"unbalanced phrase',
    "order\"'\\",
    "order AND OR NOT NEAR",
    "NOT order",
    "order OR 1=1",
    "-order +number ^ZX ~q",
    "order:number",
    "body:order",
    "(order) [number] {q}",
    "NEAR(order number, 2)",
    "order*number",
    "'; DROP TABLE search_docs; --",
    "' OR '1'='1",
    "a:*",
    "order:* & !number | <->",
    "'order':*",
    "ωμέγα ΩΜΈΓΑ",
    "🙂 order 🙂",
    "a\u0301\u0301\u0301",
    " ".join(["word"] * 64),
    "x" * 2_000,
    "ab*",
    "订*",
]
INVALID = [
    '"',
    '""',
    "**",
    "%",
    "_",
    "\\",
    "\u200b\u200d",
    "",
    "   ",
    "***",
    "!!!",
    "a\x00b",
    "\x00",
    "order \ud800",
    "x" * 2_001,
    "order " * 20_000,
    "y" * 100_000,
    " ".join(["word"] * 65),
    None,
    5,
    b"order",
    ["order"],
]


@pytest.mark.parametrize("query", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_queries_give_results(
    store: contextkit.Store, thread: contextkit.Thread, query: str
) -> None:
    before = table_counts(store)
    hits = thread.search(query)
    assert all(isinstance(h, SearchHit) and h.thread_id == "s" for h in hits)
    store.search(query, owner="alice")
    assert table_counts(store) == before


def test_hostile_queries_match_what_they_say(thread: contextkit.Thread) -> None:
    """Operators are words: they must all match, like any other word."""
    assert thread.search("order AND OR NOT NEAR") == []
    assert seqs(thread.search("NOT rotterdam")) == []
    assert seqs(thread.search("from:Rotterdam")) == [4]  # a word with punctuation: a phrase
    assert seqs(thread.search("shipped:Rotterdam")) == []
    assert seqs(thread.search("(rotterdam)")) == [4]
    assert seqs(thread.search('"unbalanced rotterdam')) == []
    assert seqs(thread.search('"from rotterdam')) == [4]


@pytest.mark.parametrize("query", INVALID, ids=range(len(INVALID)))
def test_invalid_queries_are_validation_errors(
    store: contextkit.Store, thread: contextkit.Thread, query: object
) -> None:
    with pytest.raises(ValidationError):
        thread.search(query)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        store.search(query, owner="alice")  # type: ignore[arg-type]


def test_parsed_queries_only_carry_quoted_words() -> None:
    q = parse_query("""order" OR 'x':* NEAR(a) "ZX-5531 café""")
    assert q.terms[1].words == ("or", "x", "near", "a")  # the quote opened a phrase
    match = q.match()
    assert match.fts5 == '"order" "or x near a" "zx 5531" "cafe"'
    assert match.tsquery == (
        "('order') & ('or' <-> 'x' <-> 'near' <-> 'a') & ('zx' <-> '5531') & ('cafe')"
    )
    match = parse_query("order OR 'x':* NEAR(a) ZX-5531 café").match()
    assert match.fts5 == '"order" "or" "x" "near a" "zx 5531" "cafe"'
    assert parse_query("ab* a* 订*").match().fts5 == '"ab"* "a" "订"*'
    assert parse_query('"unbalanced phrase').match().fts5 == '"unbalanced phrase"'
    assert parse_query('"one two"* three*').match().fts5 == '"one two"* "three"*'
    assert parse_query("订单").match().tsquery == "('订' <-> '单')"


def test_owners_never_see_each_others_messages(store: contextkit.Store) -> None:
    a = store.thread("same-id", model=MODEL, owner="alice")
    b = store.thread("same-id", model=MODEL, owner="bob")
    a.append({"role": "user", "content": "alice's secret is tangerine"})
    b.append({"role": "user", "content": "bob's secret is tangerine too"})
    store.thread("other", model=MODEL, owner="alice").append(
        {"role": "user", "content": "tangerine jam"}
    )
    found = store.search("tangerine", owner="alice")
    assert {(h.thread_id, h.owner) for h in found} == {("same-id", "alice"), ("other", "alice")}
    assert [h.owner for h in store.search("tangerine", owner="bob")] == ["bob"]
    assert store.search("tangerine", owner="mallory") == []
    assert store.search("tangerine") == []  # the default owner "" has no threads
    assert [h.owner for h in a.search("tangerine")] == ["alice"]
    for owner in ("alice%", "%", "_", "' OR '1'='1", "ALICE"):
        assert store.search("tangerine", owner=owner) == []
    with pytest.raises(ValidationError):
        store.search("tangerine", owner=5)  # type: ignore[arg-type]


def test_summaries_are_searchable(store: contextkit.Store) -> None:
    t = store.thread("long", model=MODEL, owner="o", max_context_tokens=3_000)
    t.append({"role": "user", "content": "My locker code is 7781, remember it."})
    for i in range(30):
        t.append({"role": "user", "content": f"Turn {i}: " + "the weather is mild today. " * 8})
        t.append({"role": "assistant", "content": f"Reply {i}: " + "noted, thank you. " * 8})
    summary = t.compact()
    assert summary is not None and "7781" in summary.text
    found = t.search("locker 7781")
    assert [(h.role, h.seq) for h in found][:1] == [("user", 1)]
    summarized = [h for h in found if h.role == "summary"]
    assert summarized and summarized[0].summary == summary.n
    assert summarized[0].seq == summary.upto_seq
    assert t.search("locker 7781", roles=["summary"]) == summarized
    assert "**7781**" in summarized[0].snippet
    assert store.check() == []


def test_index_is_written_with_the_message_or_not_at_all(store: contextkit.Store) -> None:
    t = store.thread("atomic", model=MODEL, owner="o")
    t.append({"role": "user", "content": "first words"})
    before = table_counts(store)
    assert before["search_docs"] == 1
    with pytest.raises(ValidationError):
        t.extend(
            [
                {"role": "user", "content": "pelican"},
                {"role": "tool", "tool_call_id": "nope", "content": "pelican"},
            ]
        )
    assert table_counts(store) == before
    assert t.search("pelican") == []
    t.append({"role": "user", "content": "pelican"})
    assert seqs(t.search("pelican")) == [2]  # searchable as soon as it is committed


def test_a_deleted_thread_leaves_nothing_in_the_index(store: contextkit.Store) -> None:
    t = store.thread("gone", model=MODEL, owner="o")
    t.extend([{"role": "user", "content": f"walrus {i}"} for i in range(20)])
    keep = store.thread("kept", model=MODEL, owner="o")
    keep.append({"role": "user", "content": "walrus too"})
    t.delete()
    assert [h.thread_id for h in store.search("walrus", owner="o")] == ["kept"]
    assert table_counts(store)["search_docs"] == 1
    if store.engine.dialect.name == "sqlite":
        with store.engine.begin() as conn:  # the FTS5 index agrees with its content table
            conn.exec_driver_sql(
                "INSERT INTO search_fts(search_fts, rank) VALUES ('integrity-check', 1)"
            )
    assert store.check() == []


def test_a_long_message_is_found_by_its_last_words_once(store: contextkit.Store) -> None:
    t = store.thread("big", model=MODEL, owner="o", max_context_tokens=200_000)
    words = " ".join(f"w{i}" for i in range(40_000))
    t.append({"role": "user", "content": f"{words} the final albatross"})
    t.append({"role": "user", "content": "another albatross"})
    with store.engine.connect() as conn:
        parts = conn.execute(sa.text("SELECT count(*) FROM search_docs WHERE seq = 1")).scalar()
    assert parts == 3
    assert seqs(t.search("final albatross")) == [1]
    assert sorted(seqs(t.search("albatross"))) == [1, 2]  # one hit per message
    # the words of a query must meet within one chunk (16,000 words)
    assert seqs(t.search("w0 w15999")) == [1] and t.search("w0 w39999") == []
    hit = t.search('"final albatross"')[0]
    assert hit.snippet.endswith("the **final albatross**") and len(hit.excerpt) < 300


def test_imported_threads_are_indexed(store: contextkit.Store) -> None:
    t = store.thread("src", model=MODEL, owner="o", max_context_tokens=3_000)
    for i in range(30):
        t.append({"role": "user", "content": f"Question {i} about the osprey nest " * 3})
        t.append({"role": "assistant", "content": f"Answer {i} " * 10})
    summary = t.compact()
    assert summary is not None
    word = summary.text.split()[-1]
    records = list(store.export_records(owner="o"))
    t.delete()
    assert store.search("osprey", owner="o") == []
    store.import_records(records)
    found = store.search("osprey", owner="o", limit=100)
    assert len([h for h in found if h.role == "user"]) == 30
    assert [h.summary for h in store.search(word, owner="o", roles=["summary"])] == [1]
    assert store.check() == []


def test_check_reports_a_message_missing_from_the_index(store: contextkit.Store) -> None:
    t = store.thread("chk", model=MODEL, owner="o")
    t.extend([{"role": "user", "content": "one"}, {"role": "user", "content": "two"}])
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM search_docs WHERE seq = 2"))
    assert store.check() == ["thread 'chk': 1 of its 2 messages are in the search index"]


def test_only_the_summary_in_force_is_searched(store: contextkit.Store) -> None:
    """A rolling summary carries on its predecessor: its earlier versions are stored, but
    only the newest is a hit (else every compaction would repeat the same facts)."""
    t = store.thread("roll", model=MODEL, owner="o", max_context_tokens=3_000)
    t.append({"role": "user", "content": "My locker code is 7781."})
    for round_ in range(2):
        for i in range(30):
            t.append({"role": "user", "content": f"Turn {round_}.{i}: the weather is mild. " * 6})
            t.append({"role": "assistant", "content": f"Reply {i}: noted, thank you. " * 6})
        assert t.compact() is not None
    assert len(t.summaries()) == 2 and "7781" in t.summaries()[1].text
    found = t.search("locker code 7781")
    assert sorted((h.role, h.summary or 0) for h in found) == [("summary", 2), ("user", 0)]
    assert store.check() == []
