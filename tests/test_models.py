"""The model registry: built-in DeepSeek V4 specs, retired ids, unknown ids, custom models."""

from __future__ import annotations

import warnings

import pytest
import tiktoken

import contextkit
from contextkit.errors import UnknownModelError, ValidationError
from contextkit.models import (
    ModelSpec,
    OpenAIChatTemplate,
    Prices,
    ReasoningReplay,
    TiktokenTokenizer,
    get_model,
    known_models,
    register_model,
)


@pytest.mark.parametrize(
    ("name", "hit", "miss", "out"),
    [("deepseek-v4-flash", 0.028, 0.14, 0.28), ("deepseek-v4-pro", 0.145, 1.74, 3.48)],
)
def test_builtin_specs(name, hit, miss, out):
    spec = get_model(name)
    assert spec.api_model == name
    assert spec.context_window == 1_048_576
    assert spec.max_output_tokens == 384_000
    assert spec.thinking_default is True
    assert spec.reasoning_replay is ReasoningReplay.TOOL_TURNS
    assert spec.prices == Prices(input_cache_hit=hit, input_cache_miss=miss, output=out)
    assert spec.image_limits is not None and spec.image_limits.max_side == 4096
    # 1M cache-hit + 1M miss + 1M output tokens cost exactly the three list prices
    assert spec.cost(1_000_000, 1_000_000, 1_000_000) == pytest.approx(hit + miss + out)


def test_cost_is_exact_to_a_fraction_of_a_cent():
    spec = get_model("deepseek-v4-pro")
    cost = spec.cost(prompt_cache_hit=12_800, prompt_cache_miss=3_117, completion=905)
    assert cost == pytest.approx((12_800 * 0.145 + 3_117 * 1.74 + 905 * 3.48) / 1e6, abs=1e-12)
    with pytest.raises(ValidationError):
        spec.cost(-1, 0, 0)


@pytest.mark.parametrize(
    ("legacy", "thinking"), [("deepseek-chat", False), ("deepseek-reasoner", True)]
)
def test_retired_ids_map_to_flash_with_a_warning(legacy, thinking):
    with pytest.warns(DeprecationWarning, match="retired on 2026-07-24 15:59 UTC"):
        spec = get_model(legacy)
    assert spec.name == "deepseek-v4-flash"
    assert spec.api_model == "deepseek-v4-flash"  # the retired id never reaches the API
    assert spec.thinking_default is thinking
    assert spec.aliased_from == legacy
    assert legacy not in known_models()
    assert legacy in known_models(aliases=True)


def test_unknown_model_lists_known_ones():
    with pytest.raises(UnknownModelError) as err:
        get_model("gpt-17")
    text = str(err.value)
    assert "gpt-17" in text and "deepseek-v4-flash" in text and "deepseek-v4-pro" in text
    assert isinstance(err.value, contextkit.ContextKitError)


def test_thread_with_unknown_model_is_refused(sqlite_store):
    with pytest.raises(UnknownModelError):
        sqlite_store.thread("t", model="no-such-model")
    assert list(sqlite_store.threads(all_owners=True)) == []


def _byte_encoding() -> tiktoken.Encoding:
    """A real tiktoken encoding built here (no download): bytes plus a few merges."""
    ranks = {bytes([b]): b for b in range(256)}
    for word in (b"on", b"ou", b"jour", b"Bonjour"):
        ranks.setdefault(word, len(ranks))
    for i in range(2, len(b"Bonjour")):
        ranks.setdefault(b"Bonjour"[:i], len(ranks))
    return tiktoken.Encoding(
        "bytes-test", pat_str=r"\w+| ?[^\s\w]+|\s+", mergeable_ranks=ranks, special_tokens={}
    )


def test_custom_model_with_its_own_tokenizer():
    enc = _byte_encoding()
    spec = ModelSpec(
        name="acme-chat-test",
        api_model="acme/chat-1",
        context_window=128_000,
        max_output_tokens=16_000,
        default_context_tokens=64_000,
        prices=Prices(input_cache_hit=0.1, input_cache_miss=1.0, output=4.0),
        tokenizer=TiktokenTokenizer(enc),
        template=OpenAIChatTemplate(),
        image_limits=None,
    )
    register_model(spec, aliases=["acme-latest-test"])
    assert get_model("acme-chat-test") is spec
    assert get_model("acme-latest-test").name == "acme-chat-test"
    text = "Bonjour tout le monde, 12345!"
    count = contextkit.count_tokens(text, model="acme-chat-test")
    assert count == len(enc.encode(text))
    assert count < len(text.encode())  # the merges applied
    assert count != contextkit.count_tokens(text)
    with pytest.raises(ValidationError, match="already registered"):
        register_model(spec)
    register_model(spec, replace=True)


def test_custom_model_thread(sqlite_store):
    spec = ModelSpec(
        name="acme-small-test",
        api_model="acme/small",
        context_window=8_192,
        max_output_tokens=2_048,
        default_context_tokens=8_192,
        tokenizer=TiktokenTokenizer(_byte_encoding()),
        template=OpenAIChatTemplate(),
    )
    register_model(spec, replace=True)
    thread = sqlite_store.thread("c", model="acme-small-test")
    assert thread.max_context_tokens == 8_192
    with pytest.raises(ValidationError, match="window"):
        sqlite_store.thread("d", model="acme-small-test", max_context_tokens=10_000)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_output_tokens": 2_000_000},
        {"default_context_tokens": 2_000_000},
        {"context_window": 0},
        {"name": " padded "},
        {"prices": "free"},
    ],
)
def test_invalid_specs(kwargs):
    base = {
        "name": "bad",
        "api_model": "bad",
        "context_window": 1_000_000,
        "max_output_tokens": 1_000,
        "default_context_tokens": 1_000,
    }
    with pytest.raises(ValidationError):
        ModelSpec(**{**base, **kwargs})


def test_prices_validated():
    with pytest.raises(ValidationError):
        Prices(input_cache_hit=-1, input_cache_miss=0, output=0)
    with pytest.raises(ValidationError):
        Prices(input_cache_hit=float("nan"), input_cache_miss=0, output=0)


def test_warning_not_an_error_by_default():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DeprecationWarning):
            get_model("deepseek-chat")


def test_changing_a_threads_model_recounts_it(store):
    from contextkit.store.transfer import check

    register_model(
        ModelSpec(
            name="acme-bytes-test",
            api_model="acme/bytes",
            context_window=50_000,
            max_output_tokens=4_000,
            default_context_tokens=20_000,
            tokenizer=TiktokenTokenizer(_byte_encoding()),
            template=OpenAIChatTemplate(),
        ),
        replace=True,
    )
    t = store.thread("m", model="deepseek-v4-flash", max_context_tokens=30_000)
    t.append({"role": "user", "content": "Bonjour, une question sur ma commande 5512."})
    t.append({"role": "assistant", "content": "Bien sûr, je regarde."})
    before = t.info().total_tokens
    with pytest.raises(ValidationError, match="window"):
        t.update(model="acme-bytes-test", max_context_tokens=60_000)
    assert t.info().model == "deepseek-v4-flash" and t.info().total_tokens == before
    t.update(model="acme-bytes-test")
    assert t.info().total_tokens != before
    assert check(store) == []
    p = t.prepare(max_tokens=100)
    assert p.prompt_tokens == contextkit.count_messages(p.to_list(), "acme-bytes-test")


def test_a_model_must_name_its_chat_template() -> None:
    """No silent fall-back: a foreign model counted with DeepSeek's template would be wrong."""
    with pytest.raises(ValidationError, match="needs template="):
        ModelSpec(
            name="acme-1",
            api_model="acme-1",
            context_window=8_192,
            max_output_tokens=1_024,
            default_context_tokens=8_192,
        )
    with pytest.raises(ValidationError, match="ChatTemplate"):
        ModelSpec(
            name="acme-1",
            api_model="acme-1",
            context_window=8_192,
            max_output_tokens=1_024,
            default_context_tokens=8_192,
            template=object(),  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("legacy", ["deepseek-chat", "deepseek-reasoner"])
def test_retired_id_warns_once_per_call(sqlite_store, legacy):
    """Creating a thread on a retired id, or counting with one, warns exactly once."""
    calls = {
        "thread": lambda: sqlite_store.thread(f"t-{legacy}", model=legacy),
        "reopen": lambda: sqlite_store.thread(f"t-{legacy}", model=legacy),
        "get_model": lambda: get_model(legacy),
        "count_tokens": lambda: contextkit.count_tokens("hi", model=legacy),
    }
    for name, call in calls.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
        assert len(deprecations) == 1, (name, [str(w.message) for w in deprecations])
        assert "retired on 2026-07-24" in str(deprecations[0].message)
