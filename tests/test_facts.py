"""Summaries keep the facts the user gave, through every roll, and say what they cover."""

from __future__ import annotations

import random

import openai

import contextkit
from contextkit import ExtractiveSummarizer, LLMSummarizer, Message
from contextkit.counting import message_tokens
from contextkit.summarizers import FACTS_HEADER, NOTES_HEADER, SUMMARY_HEADER, user_facts
from contextkit.testing.server import ScriptedReply
from contextkit.testing.sharegpt import conversations

MODEL = "deepseek-v4-flash"


def user(text: str, seq: int) -> Message:
    return Message(role="user", content=text, seq=seq)


def assistant(text: str, seq: int) -> Message:
    return Message(role="assistant", content=text, seq=seq)


def test_what_counts_as_a_fact() -> None:
    text = (
        "Hi there. My order number is QX-58213-K. Please send updates to jane@example.org. "
        "I prefer email over phone calls. Call me Sam. We decided to go with the blue plan. "
        "Can you tell me my order number? Write a poem about cats. The weather is nice."
    )
    assert [line.split("] ", 1)[1] for line in user_facts(user(text, 7))] == [
        "My order number is QX-58213-K.",
        "Please send updates to jane@example.org.",
        "I prefer email over phone calls.",
    ]  # three a message, in order
    assert user_facts(user("Call me Sam. We decided to go with the blue plan.", 8)) == [
        "- [#8] Call me Sam.",
        "- [#8] We decided to go with the blue plan.",
    ]
    assert user_facts(user("I live in Lyon since 2019.", 9)) == [
        "- [#9] I live in Lyon since 2019."
    ]
    assert user_facts(user("我的护照号是E12345678。谢谢", 3)) == ["- [#3] 我的护照号是E12345678。"]
    for none in (
        "Can you tell me my order number?",  # a question
        "Write me an email about my order 5512.",  # a request
        "The weather is nice and the sky is blue today.",
        "PARK AVE, LIBERTYVILLE, IL (PIN: 11-21-212-046-0000); subsequently sold.",
    ):
        assert user_facts(user(none, 1)) == [], none
    assert user_facts(assistant("My order number is 5.", 2)) == []  # the user's facts only
    long = "As I said before, " + "and so on " * 30 + "my account id is AC-99812 for the record."
    (line,) = user_facts(user(long, 4))
    assert "my account id is AC-99812" in line and len(line) < 170


def test_facts_survive_every_roll_and_the_oldest_go_first() -> None:
    summarizer = ExtractiveSummarizer()
    first = summarizer.summarize(
        [
            user("My order number is QX-58213-K and my email is jane@example.org.", 1),
            assistant("Thanks, I have noted order QX-58213-K.", 2),
        ],
        previous=None,
        max_tokens=300,
        model=MODEL,
    ).text
    assert first.splitlines()[:2] == [
        FACTS_HEADER,
        "- [#1] My order number is QX-58213-K and my email is jane@example.org.",
    ]
    assert NOTES_HEADER in first
    text = first
    filler = "We went over the shipping options and the weather in general terms today."
    for roll in range(10):  # ten rolls of messages without facts
        batch = [user(f"{filler} Point {roll}.", 10 + 2 * roll), assistant(filler, 11 + 2 * roll)]
        text = summarizer.summarize(batch, previous=text, max_tokens=300, model=MODEL).text
        assert "- [#1] My order number is QX-58213-K and my email is jane@example.org." in text
    # facts have their share: when it is full, the oldest go first
    for i in range(12):
        fact = user(f"My booking reference for trip {i} is BK-{1000 + i}.", 100 + i)
        text = summarizer.summarize([fact], previous=text, max_tokens=300, model=MODEL).text
    facts = text.split(NOTES_HEADER)[0].splitlines()[1:]
    assert "QX-58213-K" not in "\n".join(facts) and f"BK-{1000 + 11}" in facts[-1]
    numbers = [int(line.split("#")[1].split("]")[0]) for line in facts]
    assert numbers == sorted(numbers) and len(numbers) >= 4
    spec = contextkit.get_model(MODEL)
    assert spec.tokenizer.count(text) <= 300
    assert spec.tokenizer.count("\n".join([FACTS_HEADER, *facts])) <= 0.5 * 300 + 5


def test_text_without_english_facts_still_gets_a_summary() -> None:
    """The first summary of an import once read "- (no notable facts)": nothing scored."""
    messages = [
        user("你好，我想了解一下北京的天气。", 1),
        assistant("北京今天晴，气温二十度左右。", 2),
        user("那上海呢？", 3),
        assistant("上海多云，有小雨。", 4),
    ]
    text = ExtractiveSummarizer().summarize(messages, previous=None, max_tokens=200, model=MODEL)
    assert "北京" in text.text and "no notable facts" not in text.text
    calls = [
        Message(
            role="assistant",
            content=None,
            tool_calls=[
                contextkit.ToolCall(
                    id="c1", function=contextkit.FunctionCall("lookup", '{"sku": "X-1"}')
                )
            ],
            seq=1,
        ),
        Message(role="tool", tool_call_id="c1", content="in stock", seq=2),
    ]
    text = ExtractiveSummarizer().summarize(calls, previous=None, max_tokens=200, model=MODEL)
    assert 'lookup({"sku": "X-1"})' in text.text


def test_the_summary_says_what_it_covers_and_that_details_can_be_recalled(
    store: contextkit.Store,
) -> None:
    t = store.thread("cov", model=MODEL, max_context_tokens=3_000)
    for i in range(30):
        t.append({"role": "user", "content": f"Question {i}: " + "tell me about the tides. " * 6})
        t.append({"role": "assistant", "content": f"Answer {i}: " + "they are tidal. " * 6})
    summary = t.compact()
    assert summary is not None
    message = summary.to_message()
    assert message["content"].startswith(SUMMARY_HEADER)
    assert f"(Messages 1-{summary.upto_seq}; their full text is kept" in message["content"]
    assert "recall details" in message["content"]
    assert summary.token_count == message_tokens(message, contextkit.get_model(MODEL))
    prompt = t.prepare(max_tokens=200)
    assert message in prompt.to_list()
    assert prompt.prompt_tokens == contextkit.count_messages(prompt.to_list())


def test_llm_summarizer_asks_for_the_facts_section(store: contextkit.Store, deepseek) -> None:
    client = openai.OpenAI(base_url=deepseek.base_url, api_key="test")
    t = store.thread("llm", model=MODEL, max_context_tokens=3_000)
    t.append({"role": "user", "content": "My order number is QX-58213-K."})
    for i in range(30):
        t.append({"role": "user", "content": f"Question {i}: " + "tell me about the tides. " * 6})
        t.append({"role": "assistant", "content": f"Answer {i}: " + "they are tidal. " * 6})
    deepseek.script(ScriptedReply(content="Facts the user gave:\n- [#1] Order QX-58213-K."))
    summary = t.compact(summarizer=LLMSummarizer(client))
    assert summary is not None and summary.text.startswith("Facts the user gave:")
    body = deepseek.requests[-1].body
    instructions, prompt = body["messages"][0]["content"], body["messages"][1]["content"]
    assert "Facts the user gave:" in instructions and "oldest facts first" in instructions
    assert "[#1 user]: My order number is QX-58213-K." in prompt
    assert "the facts section takes at most" in prompt


SESSIONS = 12
SESSION_CHARS = 80_000


def test_planted_facts_survive_long_real_sessions(store: contextkit.Store) -> None:
    """12 long sessions of consecutive real ShareGPT conversations at an 8K budget, default
    summarizer: the fact planted in the first user message is in the prompt after >= 2
    compactions in 12/12, and thread.search returns its message in the top 3 in 12/12."""
    source = conversations(min_messages=2)
    rng = random.Random(19)
    in_prompt = found = 0
    report = []
    for k in range(SESSIONS):
        code = f"QX-{rng.randint(10_000, 99_999)}-{rng.choice('ABCDEFGHJK')}"
        fact = f"My order number is {code} and please send updates to client{k}@example.org. "
        t = store.thread(f"session-{k}", model=MODEL, max_context_tokens=8_000)
        planted, chars = False, 0
        while chars < SESSION_CHARS:
            for m in next(source):
                if m["role"] == "system" or (not planted and m["role"] != "user"):
                    continue
                text = m["content"][:8_000]
                if not planted:
                    text, planted = fact + text, True
                t.append({"role": m["role"], "content": text})
                chars += len(text)
                if m["role"] == "user":
                    t.build(max_tokens=1_000)
        prompt = t.prepare(max_tokens=1_000)
        compactions = len(t.summaries())
        assert compactions >= 2, k
        assert prompt.prompt_tokens + 1_000 <= 8_000
        shown = code in " ".join(str(m["content"]) for m in prompt.to_list())
        top = [h.seq for h in t.search("order number", limit=3)]
        in_prompt += shown
        found += 1 in top
        report.append((k, len(t), compactions, shown, top))
    print("\n".join(map(str, report)))
    assert (in_prompt, found) == (SESSIONS, SESSIONS), report
