"""Compaction: rolling summaries near the budget; nothing lost; crash- and race-safe."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import Database, table_counts

import contextkit
from contextkit.compaction import (
    SUMMARY_HEADER,
    CompactionPolicy,
    ExtractiveSummarizer,
    SummaryResult,
)
from contextkit.errors import CompactionWarning, ValidationError
from contextkit.tokens import count_messages

FILLER = (
    "We talked about the weather and the general mood of the week. It was fine overall. "
    "Nothing much happened beyond the usual routine and a bit of reading in the evening."
)


def chat(thread, turns: int, start: int = 0) -> None:
    for i in range(start, start + turns):
        thread.append({"role": "user", "content": f"Turn {i}. {FILLER}"})
        thread.append({"role": "assistant", "content": f"Reply {i}. {FILLER}"})


def test_build_compacts_near_the_budget_and_keeps_history(store):
    t = store.thread("c", model="deepseek-v4-flash", system="Be kind.", max_context_tokens=3_000)
    t.append({"role": "user", "content": "Pinned: the project is called Nimbus."}, pinned=True)
    prompts = []
    for i in range(60):
        chat(t, 1, i)
        p = t.prepare(max_tokens=300)
        assert p.calibrated_tokens + 300 <= 3_000
        assert p.prompt_tokens == count_messages(p.to_list())
        prompts.append(p)
    summaries = t.summaries()
    assert 1 <= len(summaries) <= 8
    last = prompts[-1].to_list()
    assert last[0] == {"role": "system", "content": "Be kind."}
    assert last[1]["content"].startswith("Pinned:")
    assert last[2]["role"] == "system" and last[2]["content"].startswith(SUMMARY_HEADER)
    assert last[3]["role"] == "user"
    # rare: between compactions every prompt extends the previous one
    for before, after in itertools.pairwise(prompts):
        if not after.moved:
            assert after.to_list()[: len(before.messages)] == before.to_list()
    assert sum(p.moved for p in prompts) == len(summaries)
    # nothing lost
    assert len(list(t.history())) == 121
    st = t.stats()
    assert st.compactions == len(summaries) and st.messages == 121
    # each summary covers everything before the window (rolling)
    assert summaries[-1].upto_seq + 1 == prompts[-1].window_start


def test_planted_facts_survive_two_rolling_compactions(sqlite_store):
    t = sqlite_store.thread("f", model="deepseek-v4-flash", max_context_tokens=4_000)
    t.append({"role": "user", "content": "Hi, my name is Ingrid Castellanos."})
    t.append({"role": "assistant", "content": "Nice to meet you, Ingrid."})
    t.append({"role": "user", "content": "My order number is 88-41257-X and it has not arrived."})
    t.append({"role": "assistant", "content": "I will look into order 88-41257-X."})
    t.append({"role": "user", "content": "I prefer email over phone calls, please."})
    t.append({"role": "assistant", "content": "Noted: email only."})
    chat(t, 20)
    first = t.compact()
    chat(t, 20, 100)
    second = t.compact()
    assert first is not None and second is not None and second.n == 2
    assert second.from_seq == first.upto_seq + 1
    for fact in ("Ingrid Castellanos", "88-41257-X", "prefer email"):
        assert fact in second.text, (fact, second.text)
    assert second.token_count <= CompactionPolicy().summary_tokens(4_000) + 50
    # rolling summaries keep taking in new facts once full
    t.append({"role": "user", "content": "Update: my new email is ingrid@example.org now."})
    t.append({"role": "assistant", "content": "Thanks, I updated your contact address."})
    chat(t, 20, 200)
    third = t.compact()
    assert third is not None and third.text != second.text
    assert "ingrid@example.org" in third.text
    for fact in ("Ingrid Castellanos", "88-41257-X"):
        assert fact in third.text, (fact, third.text)


class Exploding:
    name = "exploding"

    def summarize(self, messages, *, previous, max_tokens, model):
        raise RuntimeError("summarizer backend down")


def test_summarizer_error_leaves_thread_unchanged_and_build_fits(store):
    t = store.thread("e", model="deepseek-v4-flash", max_context_tokens=2_000)
    chat(t, 30)
    before = table_counts(store)
    info = t.info()
    with pytest.warns(CompactionWarning, match="summarizer backend down"):
        p = t.prepare(max_tokens=200, summarizer=Exploding())
    assert p.calibrated_tokens + 200 <= 2_000
    assert table_counts(store) == before
    assert t.summaries() == []
    assert t.info().total_tokens == info.total_tokens
    with pytest.raises(RuntimeError):
        t.compact(summarizer=Exploding())
    assert t.summaries() == []


def _window_start(store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.text("SELECT window_start FROM threads")).scalar_one()


def test_an_overflow_no_summary_can_fix_writes_nothing(store):
    """A prompt that overflows whatever is summarized raises before compacting, not after."""
    t = store.thread("o", model="deepseek-v4-flash", max_context_tokens=2_000)
    chat(t, 30)
    before = (table_counts(store), _window_start(store))
    with pytest.raises(contextkit.ContextOverflowError) as caught:
        t.prepare(max_tokens=200, extra=FILLER * 80)
    assert caught.value.needed > caught.value.budget
    assert (table_counts(store), _window_start(store)) == before
    assert t.summaries() == []
    p = t.prepare(max_tokens=200, extra=FILLER)  # a prompt that fits still compacts
    assert len(t.summaries()) == 1 and p.calibrated_tokens + 200 <= 2_000


def test_empty_summary_is_refused(sqlite_store):
    class Empty:
        def summarize(self, messages, *, previous, max_tokens, model):
            return SummaryResult(text="  ", summarizer="empty")

    t = sqlite_store.thread("z", model="deepseek-v4-flash", max_context_tokens=2_000)
    chat(t, 30)
    with pytest.raises(ValidationError):
        t.compact(summarizer=Empty())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(CompactionWarning):
            t.build(max_tokens=100, summarizer=Empty())


def test_policy_validation():
    with pytest.raises(ValidationError):
        CompactionPolicy(high_water=0.5, keep_recent=0.6)
    with pytest.raises(ValidationError):
        CompactionPolicy(high_water=1.5)
    assert CompactionPolicy().summary_tokens(8_000) == 400
    assert CompactionPolicy().summary_tokens(1_000) == 256
    assert CompactionPolicy().summary_tokens(1_000_000) == 4_000


WORKER = """
import os, sys, time, pathlib
import contextkit
from contextkit.compaction import ExtractiveSummarizer

marker, sleep, meet = pathlib.Path(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])

class Slow(ExtractiveSummarizer):
    def summarize(self, messages, **kw):
        marker.write_text(str(os.getpid()))
        deadline = time.monotonic() + 60
        # wait for the other worker inside its summarizer too: both planned the same fold
        while len(list(marker.parent.glob("entered-*"))) < meet:
            assert time.monotonic() < deadline, "the other worker never entered its summarizer"
            time.sleep(0.01)
        time.sleep(sleep)
        return super().summarize(messages, **kw)

store = contextkit.open(sys.argv[1])
t = store.thread(sys.argv[2])
s = t.compact(summarizer=Slow())
print("committed" if s is not None else "lost")
"""


def _worker(url: str, marker: Path, sleep: float, meet: int = 1) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, url, "race", str(marker), str(sleep), str(meet)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_compacting_at_once_make_one_summary(database: Database, tmp_path):
    """Both workers plan the same fold and are inside their summarizers at once (each waits
    for the other there); the one that commits second finds the thread compacted and
    writes nothing."""
    store = contextkit.open(database.url)
    t = store.thread("race", model="deepseek-v4-flash", max_context_tokens=3_000)
    chat(t, 40)
    procs = [_worker(database.url, tmp_path / f"entered-{i}", 0.2, meet=2) for i in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    entered = {(tmp_path / f"entered-{i}").read_text() for i in range(2)}
    assert entered == {str(p.pid) for p in procs}  # both were inside the summarizer
    assert sorted(o[0].strip() for o in outs) == ["committed", "lost"]
    assert len(t.summaries()) == 1 and t.summaries()[0].from_seq == 1
    store.close()


def test_kill_9_inside_the_summarizer_leaves_the_thread_unchanged(database: Database, tmp_path):
    store = contextkit.open(database.url)
    t = store.thread("race", model="deepseek-v4-flash", max_context_tokens=3_000)
    chat(t, 40)
    before = table_counts(store)
    marker = tmp_path / "entered-0"
    proc = _worker(database.url, marker, 60)
    deadline = time.time() + 60
    while not marker.exists():
        assert time.time() < deadline and proc.poll() is None, (
            proc.stderr.read() if proc.stderr else ""
        )
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert table_counts(store) == before
    assert t.summaries() == [] and t.info().message_count == 80
    summary = t.compact(summarizer=ExtractiveSummarizer())
    assert summary is not None and summary.n == 1
    store.close()


def test_llm_summarizer_through_the_local_server(store, deepseek):
    import openai

    from contextkit.testing.server import Reply

    client = openai.OpenAI(base_url=deepseek.base_url, api_key="test")
    t = store.thread("llm", model="deepseek-v4-flash", max_context_tokens=3_000)
    chat(t, 30)
    deepseek.script(Reply(content="- User is planning a trip; prefers email."))
    summary = t.compact(summarizer=contextkit.LLMSummarizer(client))
    assert summary is not None and summary.summarizer == "llm"
    assert summary.text == "- User is planning a trip; prefers email."
    assert summary.cost_usd > 0 and summary.model == "deepseek-v4-flash"
    body = deepseek.requests[-1].body
    assert body["thinking"] == {"type": "disabled"} and body["model"] == "deepseek-v4-flash"
    st = t.stats()
    assert st.compactions == 1 and st.summarizer_cost_usd == pytest.approx(summary.cost_usd)
    assert st.cost_usd == pytest.approx(summary.cost_usd)


@pytest.mark.parametrize("size", [1_000, 3_600])
def test_a_bulk_history_is_summarized_from_its_first_message(store, size):
    """After `extend()` of a long history the summaries cover it from seq 1, every message
    folded exactly once, in chunks of at most `MAX_FOLD` budgets each (memory bounded),
    each chunk rolled into the next."""
    from contextkit.compaction import MAX_FOLD

    class Recording(ExtractiveSummarizer):
        def __init__(self):
            super().__init__()
            self.calls: list[tuple[list[int], str | None]] = []

        def summarize(self, messages, *, previous, **kw):
            result = super().summarize(messages, previous=previous, **kw)
            self.calls.append(([m.seq for m in messages], previous))
            return result

    t = store.thread("bulk", model="deepseek-v4-flash", max_context_tokens=8_000)
    t.extend(
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}. " + FILLER}
        for i in range(size)
    )
    recording = Recording()
    p = t.prepare(max_tokens=1_000, summarizer=recording)
    summaries = t.summaries()
    assert summaries[0].from_seq == 1 and summaries[-1].upto_seq + 1 == p.window_start
    for before, after in itertools.pairwise(summaries):  # a chain: each takes over the last
        assert after.from_seq == before.upto_seq + 1
    folded = [seq for seqs, _ in recording.calls for seq in seqs]
    assert folded == list(range(1, p.window_start))  # each message once, in order
    weight = {m.seq: m.token_count + 4 for m in t.history()}  # a message's window weight
    bound = MAX_FOLD * 7_000  # a chunk ends at the first boundary past MAX_FOLD budgets
    for seqs, _ in recording.calls[:-1]:
        assert sum(weight[s] for s in seqs[:-1]) < bound <= sum(weight[s] for s in seqs)
    assert sum(weight[s] for s in recording.calls[-1][0]) <= bound
    for (_, previous), summary in zip(recording.calls[1:], summaries, strict=False):
        assert previous == summary.text  # rolled: each chunk sees the summary so far
    assert len(list(t.history())) == size and t.stats().compactions == len(summaries)


def test_build_with_a_bad_format_compacts_nothing(store):
    t = store.thread("f", model="deepseek-v4-flash", max_context_tokens=2_000)
    chat(t, 30)
    before = (table_counts(store), _window_start(store))
    with pytest.raises(ValidationError, match="format"):
        t.build(max_tokens=200, format="gemini")
    assert (table_counts(store), _window_start(store)) == before
    assert t.build(max_tokens=200, format="anthropic")["messages"]
    assert len(t.summaries()) == 1


def test_a_summarizer_failing_mid_backlog_keeps_the_chunks_before_and_says_so(store):
    class FailsSecond(ExtractiveSummarizer):
        calls = 0

        def summarize(self, messages, **kw):
            FailsSecond.calls += 1
            if FailsSecond.calls == 2:
                raise RuntimeError("summarizer down")
            return super().summarize(messages, **kw)

    t = store.thread("mid", model="deepseek-v4-flash", max_context_tokens=4_000)
    t.extend(
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}. " + FILLER}
        for i in range(800)
    )
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        prompt = t.prepare(max_tokens=500, summarizer=FailsSecond())
    said = [str(w.message) for w in seen if issubclass(w.category, CompactionWarning)]
    assert said and "1 summaries of its first chunks" in said[0] and "unchanged" in said[0]
    first = t.summaries()
    assert len(first) == 1 and first[0].from_seq == 1
    assert prompt.calibrated_tokens + 500 <= 4_000
    t.compact(max_tokens=500)  # the next compaction goes on from there: nothing uncovered
    chain = t.summaries()
    assert [s.from_seq for s in chain[1:]] == [s.upto_seq + 1 for s in chain[:-1]]
    assert chain[-1].upto_seq + 1 == t.prepare(max_tokens=500).window_start


def test_every_folded_message_reaches_the_summarizer(store):
    """What a compaction folds is what the summarizer read: every message before the new
    window start (pinned ones stay in the prompt), judged by content, each exactly once,
    tool calls and results included; nothing of the window is folded."""

    class Reading(ExtractiveSummarizer):
        def __init__(self):
            super().__init__()
            self.read: list[str] = []

        def summarize(self, messages, **kw):
            for m in messages:
                calls = " ".join(c.function.arguments for c in m.tool_calls)
                self.read.append(f"{m.role.value}: {m.text}{calls}")
            return super().summarize(messages, **kw)

    def said(m) -> str:
        return f"{m.role.value}: {m.text}{' '.join(c.function.arguments for c in m.tool_calls)}"

    t = store.thread("read", model="deepseek-v4-flash", max_context_tokens=3_000)
    t.append({"role": "user", "content": "pinned: the project is Nimbus"}, pinned=True)
    for i in range(30):
        t.append({"role": "user", "content": f"question #{i}. {FILLER}"})
        if i % 3 == 0:
            fn = {"name": "lookup", "arguments": f'{{"q": "fact #{i}"}}'}
            t.append(
                {
                    "role": "assistant",
                    "content": None,
                    "reasoning_content": f"look up #{i}",
                    "tool_calls": [{"id": f"c{i}", "type": "function", "function": fn}],
                }
            )
            t.append({"role": "tool", "tool_call_id": f"c{i}", "content": f"result #{i}"})
        t.append({"role": "assistant", "content": f"answer #{i}. {FILLER}"})
    reading = Reading()
    for round_ in range(2):
        before = len(reading.read)
        p = t.prepare(max_tokens=300, summarizer=reading)
        summaries = t.summaries()
        assert len(summaries) == round_ + 1 and p.window_start == summaries[-1].upto_seq + 1
        folded = [
            said(m)
            for m in t.history()
            if summaries[-1].from_seq <= m.seq < p.window_start and not m.pinned
        ]
        assert reading.read[before:] == folded  # in order, each once, the last one too
        window = {said(m) for m in t.history() if m.seq >= p.window_start}
        assert not window & set(reading.read[before:])
        chat(t, 12, 100 + 20 * round_)
    assert not any("pinned: the project" in r for r in reading.read)


def test_compact_with_max_tokens_that_leave_no_room_is_refused_at_once(store, tmp_path):
    """`compact(max_tokens=...)` at or above the thread's window leaves no budget for a
    prompt: a typed error naming the numbers, nothing written (it used to loop forever
    looking for a chunk end). Run in a subprocess so a regression fails on the timeout."""
    t = store.thread("room", model="deepseek-v4-flash", max_context_tokens=1_000)
    chat(t, 20)
    before = table_counts(store)
    code = (
        "import sys, contextkit\n"
        "t = contextkit.open(sys.argv[1]).get_thread('room')\n"
        "for max_tokens in (1_000, 5_000):\n"
        "    try:\n"
        "        t.compact(max_tokens=max_tokens)\n"
        "    except contextkit.ContextOverflowError as exc:\n"
        "        print(exc.needed, exc.budget)\n"
    )
    url = store.engine.url.render_as_string(hide_password=False)
    out = subprocess.run(
        [sys.executable, "-c", code, url], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1000", "1000", "5000", "1000"]
    assert table_counts(store) == before and t.summaries() == []
