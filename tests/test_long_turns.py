"""A turn that alone outgrows the budget (a long tool loop with large results): the user's
task stays in every prompt (invariant 7), the turn's completed steps fold into the summary,
and nothing is dropped silently. Real SDK, real HTTP, real databases."""

from __future__ import annotations

import json
import warnings

import openai

import contextkit
from contextkit import CompactionPolicy
from contextkit.errors import CompactionWarning
from contextkit.testing.server import ScriptedReply, ScriptedToolCall

TASK = "Audit the eight log files and tell me which one has the most ERROR lines."
STEPS = 10


def _log(i: int) -> str:
    """A ~30,000-character tool result, different per file."""
    line = f"2026-11-30T12:{i:02d}:00 INFO worker {i} processed batch ok; latency 12ms\n"
    return f"file app-{i}.log\n" + line * (30_000 // len(line)) + f"ERROR count: {i * 3}\n"


def _run_loop(store, deepseek, **conv_options):
    t = store.thread("audit", model="deepseek-v4-flash", max_context_tokens=24_000)
    client = openai.OpenAI(base_url=deepseek.base_url, api_key="test", max_retries=0)
    conv = contextkit.Conversation(client, t, max_tokens=2_000, **conv_options)
    calls = [
        ScriptedReply(tool_calls=[ScriptedToolCall("read_log", json.dumps({"i": i}))])
        for i in range(STEPS)
    ]
    deepseek.script(*calls, ScriptedReply(content="app-9.log has the most ERROR lines."))
    reply = conv.run(TASK, tools={"read_log": _log}, max_steps=STEPS + 2)
    return t, reply


def _user_texts(body) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


def test_the_task_stays_in_every_prompt_of_a_long_tool_loop(store, deepseek):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompactionWarning)
        t, reply = _run_loop(store, deepseek)
    assert reply.content == "app-9.log has the most ERROR lines." and reply.steps == STEPS + 1
    requests = deepseek.requests
    assert len(requests) == STEPS + 1
    for n, req in enumerate(requests, 1):
        assert TASK in _user_texts(req.body), f"request {n} lost the user's task"
        assert req.status == 200
    # the completed steps were folded into the summary, reasoning and all; nothing lost
    summaries = t.summaries()
    assert summaries and summaries[0].from_seq == 1
    last = requests[-1].body["messages"]
    assert any(m["role"] == "system" and "summary" in m["content"].lower() for m in last)
    assert [m.role for m in t.messages()][:3] == ["user", "assistant", "tool"]
    assert len(list(t.messages())) == 1 + 2 * STEPS + 1  # every result stays stored, in full
    assert t.get(3).content == _log(0)


def test_with_compaction_off_the_task_stays_and_the_drop_is_said(store, deepseek):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        t, _ = _run_loop(store, deepseek, compaction=CompactionPolicy(enabled=False))
    for n, req in enumerate(deepseek.requests, 1):
        assert TASK in _user_texts(req.body), f"request {n} lost the user's task"
    said = [w for w in seen if issubclass(w.category, CompactionWarning)]
    assert said and "current turn" in str(said[0].message)
    assert t.summaries() == []
