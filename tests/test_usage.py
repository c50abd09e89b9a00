"""record(): reply + usage in one transaction, idempotent; cost; calibration; stats()."""

from __future__ import annotations

import pytest
from conftest import table_counts
from openai.types.chat import ChatCompletion

from contextkit.errors import ValidationError


def completion(
    rid: str,
    content: str,
    *,
    prompt: int,
    hit: int = 0,
    completion_tokens: int = 20,
    reasoning: str | None = None,
    reasoning_tokens: int = 0,
) -> dict:
    message = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    return {
        "id": rid,
        "object": "chat.completion",
        "created": 1_790_000_000,
        "model": "deepseek-v4-flash",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
            "prompt_cache_hit_tokens": hit,
            "prompt_cache_miss_tokens": prompt - hit,
            "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
        },
    }


def test_record_stores_reply_usage_and_cost(store):
    t = store.thread("u", model="deepseek-v4-pro", system="s")
    t.append({"role": "user", "content": "hi"})
    p = t.prepare(max_tokens=100)
    sdk = ChatCompletion.model_validate(
        completion(
            "r1",
            "hello",
            prompt=p.prompt_tokens,
            hit=0,
            completion_tokens=905,
            reasoning="think",
            reasoning_tokens=800,
        )
    )
    msg = t.record(sdk)
    assert msg.seq == 2 and msg.reasoning_content == "think" and msg.content == "hello"
    st = t.stats()
    assert st.calls == 1 and st.messages == 2
    assert st.prompt_tokens == p.prompt_tokens == st.predicted_prompt_tokens
    assert st.reasoning_tokens == 800
    expected = (p.prompt_tokens * 1.74 + 905 * 3.48) / 1e6
    assert st.cost_usd == pytest.approx(expected, abs=1e-12)
    # the same response again (a retry) adds nothing
    again = t.record(sdk)
    assert again.seq == 2
    assert table_counts(store)["calls"] == 1 and table_counts(store)["messages"] == 2


def test_cache_hits_and_ratio(store):
    t = store.thread("c", model="deepseek-v4-flash")
    for i in range(3):
        t.append({"role": "user", "content": f"q{i}"})
        t.prepare(max_tokens=50)
        t.record(completion(f"r{i}", f"a{i}", prompt=300, hit=128 * i))
    st = t.stats()
    assert st.calls == 3 and st.cache_hit_tokens == 384 and st.cache_miss_tokens == 900 - 384
    assert st.cache_hit_ratio == pytest.approx(384 / 900)
    cost = (384 * 0.028 + 516 * 0.14 + 60 * 0.28) / 1e6
    assert st.cost_usd == pytest.approx(cost, abs=1e-12)


def test_calibration_feeds_the_next_build(store):
    t = store.thread("k", model="deepseek-v4-flash")
    t.append({"role": "user", "content": "hello"})
    p = t.prepare(max_tokens=50)
    assert p.calibrated_tokens == p.prompt_tokens
    t.record(completion("r", "x", prompt=p.prompt_tokens + 7))
    t.append({"role": "user", "content": "more"})
    q = t.prepare(max_tokens=50)
    assert q.structure == p.structure
    assert q.calibrated_tokens == q.prompt_tokens + 7
    # a new store handle sees the stored correction too
    assert store.thread("k").prepare(max_tokens=50).calibrated_tokens == q.calibrated_tokens
    # and the store reports what it learned, as the pure `Calibration` value
    learned = store.calibration("deepseek-v4-flash")
    assert learned.as_dict() == {p.structure: 7} and learned.observations == 1
    assert learned.adjust(100, p.structure) == 107 and learned.correction("other") == 0
    assert store.calibration("deepseek-v4-pro").as_dict() == {}


def test_bad_responses_write_nothing(store):
    t = store.thread("b", model="deepseek-v4-flash")
    t.append({"role": "user", "content": "x"})
    before = table_counts(store)
    bad = [
        {"id": "z", "choices": []},
        {"id": "z", "choices": [{"message": {"role": "user", "content": "x"}}]},
        {
            "id": "z",
            "choices": [{"message": {"role": "assistant", "content": "x"}}],
            "usage": {"prompt_tokens": -1, "completion_tokens": 1},
        },
        "not a response",
    ]
    for response in bad:
        with pytest.raises(ValidationError):
            t.record(response)
    assert table_counts(store) == before


def test_calibration_applies_to_prompts_with_extra(store):
    t = store.thread("kx", model="deepseek-v4-flash")
    t.append({"role": "user", "content": "hello"})
    p = t.prepare(max_tokens=50, extra="time: 10:00")
    assert "late-system" in p.structure
    t.record(completion("rx", "x", prompt=p.prompt_tokens + 5))
    t.append({"role": "user", "content": "more"})
    q = t.prepare(max_tokens=50, extra="time: 10:01")
    assert q.structure == p.structure
    assert q.calibrated_tokens == q.prompt_tokens + 5


def test_another_reply_to_a_recorded_prompt_is_refused_with_what_to_do(store):
    t = store.thread("twice", model="deepseek-v4-flash")
    t.append({"role": "user", "content": "hi"})
    p = t.prepare(max_tokens=50)
    t.record(completion("same-id", "first", prompt=p.prompt_tokens))
    before = table_counts(store)
    with pytest.raises(ValidationError, match="prepare\\(\\) again"):
        t.record(completion("same-id", "second", prompt=p.prompt_tokens))
    assert table_counts(store) == before
    q = t.prepare(max_tokens=50)  # a new call: the same provider id is stored again
    t.record(completion("same-id", "second", prompt=q.prompt_tokens))
    assert t.stats().calls == 2 and [m.text for m in t.messages()][1:] == ["first", "second"]
