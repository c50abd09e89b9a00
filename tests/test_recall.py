"""The recall tool: the model searches its own thread's history, summarized-away messages
included, over the real openai SDK and HTTP against the local DeepSeek-compatible server."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest
from conftest import table_counts

import contextkit
from contextkit import ValidationError
from contextkit.testing.server import ScriptedReply, ScriptedToolCall

MODEL = "deepseek-v4-flash"
GATE = "The loading-dock gate code at the Rotterdam warehouse is 4417-B."


def client(server: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test")  # type: ignore[attr-defined]


def history(thread: contextkit.Thread, turns: int = 30) -> None:
    """An assistant states a detail early on, then the talk moves elsewhere."""
    thread.append({"role": "user", "content": "Where do the trucks unload?"})
    thread.append({"role": "assistant", "content": GATE})
    for i in range(turns):
        thread.append({"role": "user", "content": f"Next question {i}: " + "about tides. " * 12})
        thread.append({"role": "assistant", "content": f"Answer {i}: " + "tides rise. " * 12})


def test_a_thinking_mode_tool_loop_recalls_a_summarized_away_detail(
    store: contextkit.Store, deepseek: object
) -> None:
    t = store.thread("agent", model=MODEL, owner="o", max_context_tokens=3_000)
    history(t)
    conv = contextkit.Conversation(client(deepseek), t, max_tokens=300)
    deepseek.script(  # type: ignore[attr-defined]
        ScriptedReply(
            reasoning="The code was given long ago; search for it.",
            tool_calls=[ScriptedToolCall("recall", json.dumps({"query": "gate code"}))],
        ),
        ScriptedReply(content="The gate code is 4417-B.", reasoning="Found it in message 2."),
    )
    reply = conv.run("What was the gate code again?", tools={}, recall=True)
    assert reply.content == "The gate code is 4417-B." and reply.steps == 2
    requests = deepseek.requests  # type: ignore[attr-defined]
    assert [r.status for r in requests] == [200, 200]  # no HTTP 400
    first, second = (r.body for r in requests)
    assert [tool["function"]["name"] for tool in first["tools"]] == ["recall"]
    assert first.get("thinking") != {"type": "disabled"}  # thinking mode (the default)
    # the detail had left the prompt: it was summarized away
    assert "4417" not in json.dumps(first["messages"], ensure_ascii=False)
    assert t.summaries() and t.summaries()[-1].upto_seq >= 2
    # the tool result is an ordinary recorded tool message citing the seq
    stored = [m for m in t.messages() if m.role.value == "tool"]
    assert len(stored) == 1
    result = stored[0].content
    assert isinstance(result, str) and result.startswith("[recall]")
    assert "[#2 assistant]" in result and "**gate** **code**" in result and "4417-B" in result
    # ... and the recalled text is in the next prompt, beside the call and its reasoning
    sent = second["messages"]
    assert {"role": "tool", "tool_call_id": stored[0].tool_call_id, "content": result} in sent
    call = next(m for m in sent if m.get("tool_calls"))
    assert call["reasoning_content"] == "The code was given long ago; search for it."
    assert store.check() == []


def test_recall_tool_for_your_own_loop(store: contextkit.Store) -> None:
    t = store.thread("own", model=MODEL, owner="o")
    history(t, turns=5)
    tool = contextkit.recall_tool(t, max_tokens=200, limit=3)
    schema, execute = tool
    assert schema == tool.schema and schema["function"]["name"] == "recall"
    assert schema["function"]["parameters"]["required"] == ["query"]
    text = execute('{"query": "Rotterdam warehouse"}')
    assert text.splitlines()[1] == (
        "[#2 assistant] The loading-dock gate code at the **Rotterdam** **warehouse** is 4417-B."
    )
    assert tool(query="rotterdam") == text.replace('"Rotterdam warehouse"', '"rotterdam"').replace(
        "**Rotterdam** **warehouse**", "**Rotterdam** warehouse"
    )
    assert "Nothing in this conversation's history matches" in execute({"query": "zebra"})
    for bad in ("{", "[1]", '{"q": "x"}', '{"query": 5}', '{"query": "\\u0000"}', "{}"):
        assert execute(bad).startswith("[recall] Error:"), bad
    with pytest.raises(ValidationError):
        tool(query="")
    with pytest.raises(ValidationError):
        contextkit.recall_tool(t, max_tokens=10)


def test_recall_results_stay_within_their_token_budget(store: contextkit.Store) -> None:
    t = store.thread("budget", model=MODEL, owner="o", max_context_tokens=200_000)
    t.extend(
        {"role": "user", "content": f"heron sighting {i}: " + "a long grey heron story " * 40}
        for i in range(40)
    )
    t.append({"role": "user", "content": "heron " + "x" * 30_000})
    for budget in (64, 150, 800):
        text = contextkit.recall_tool(t, max_tokens=budget, limit=50)(query="heron")
        assert contextkit.count_tokens(text) <= budget, budget
        assert text.startswith("[recall] ") and "[#" in text
    text = contextkit.recall_tool(t, max_tokens=800, limit=50)(query="heron")
    assert "more left out" in text


def test_a_recall_does_not_find_earlier_recalls(store: contextkit.Store) -> None:
    """Recall results quote other messages; searching them again would answer each recall
    with the previous one's result. They are indexed by their header line only."""
    t = store.thread("again", model=MODEL, owner="o")
    history(t, turns=2)
    tool = contextkit.recall_tool(t)
    first = tool(query="gate code")
    t.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "r1", "type": "function", "function": {"name": "recall", "arguments": "{}"}}
            ],
        }
    )
    t.append({"role": "tool", "tool_call_id": "r1", "content": first})
    assert tool(query="gate code") == first
    assert [h.seq for h in t.search("4417")] == [2]


def test_recall_needs_a_free_name_and_writes_nothing_when_refused(
    store: contextkit.Store, deepseek: object
) -> None:
    t = store.thread("clash", model=MODEL, owner="o")
    conv = contextkit.Conversation(client(deepseek), t)
    before = table_counts(store)
    with pytest.raises(ValidationError, match="recall"):
        conv.run("hi", tools={"recall": lambda query: "mine"}, recall=True)
    with pytest.raises(ValidationError, match="recall"):
        conv.run("hi", tools={}, recall="yes")  # type: ignore[arg-type]
    assert table_counts(store) == before and deepseek.requests == []  # type: ignore[attr-defined]


def test_async_conversation_recalls_too(store: contextkit.Store, deepseek: object) -> None:
    t = store.thread("async", model=MODEL, owner="o")
    history(t, turns=2)
    deepseek.script(  # type: ignore[attr-defined]
        ScriptedReply(
            reasoning="look",
            tool_calls=[ScriptedToolCall("recall", json.dumps({"query": "4417-B"}))],
        ),
        ScriptedReply(content="4417-B."),
    )

    async def main() -> contextkit.Reply:
        aclient = openai.AsyncOpenAI(base_url=deepseek.base_url, api_key="test")  # type: ignore[attr-defined]
        astore = await contextkit.open_async(store.url)
        athread = await astore.get_thread("async", owner="o")
        tool = contextkit.recall_tool(athread)
        assert isinstance(tool, contextkit.recall.AsyncRecallTool)  # awaited on the loop
        try:
            return await contextkit.AsyncConversation(aclient, athread).run(
                "The code?", tools={}, recall=True
            )
        finally:
            await astore.close()

    reply = asyncio.run(main())
    assert reply.content == "4417-B."
    assert [r.status for r in deepseek.requests] == [200, 200]  # type: ignore[attr-defined]
    tool_message = next(m for m in t.messages() if m.role.value == "tool")
    assert "[#2 assistant]" in str(tool_message.content)
