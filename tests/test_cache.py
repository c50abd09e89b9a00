"""The prefix-cache model: hand-computed cases from the provider's rules, then properties.

Hand cases use distinct token ids so the only shared prefixes are the ones built on purpose;
the properties check the hashed index against brute-force references on random workloads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contextkit.cache import (
    EVERY_PREFIX,
    SAVED_PREFIXES,
    BoundaryPolicy,
    CacheHit,
    CacheRequest,
    PrefixCacheModel,
    Segment,
    SegmentRequest,
    compare,
    replay,
    upper_bound_hits,
)
from contextkit.errors import ValidationError

POLICIES = [SAVED_PREFIXES, EVERY_PREFIX]


def ids(n: int, start: int) -> list[int]:
    """`n` token ids no other call with a far-away `start` shares."""
    return list(range(start, start + n))


def hits(model: PrefixCacheModel, *prompts: Sequence[int]) -> list[int]:
    return [model.request(p).hit_tokens for p in prompts]


@pytest.mark.parametrize(("shared", "expected"), [(63, 0), (64, 64), (65, 64), (130, 128)])
def test_a_hit_counts_whole_64_token_units(shared: int, expected: int) -> None:
    first = ids(shared, 0)
    assert hits(PrefixCacheModel(), first, first + ids(50, 10_000)) == [0, expected]


@pytest.mark.parametrize(("shared", "expected"), [(63, 0), (64, 64), (130, 128)])
def test_every_prefix_rounds_a_divergent_prefix_down(shared: int, expected: int) -> None:
    common = ids(shared, 0)
    model = PrefixCacheModel(policy=EVERY_PREFIX)
    assert hits(model, common + ids(80, 10_000), common + ids(80, 20_000)) == [0, expected]


def test_divergence_mid_unit_hits_the_common_prefix_once_it_is_persisted() -> None:
    # The docs' A+B, A+C, A+D: A+C misses (it fully matches no persisted prefix) but makes the
    # provider persist the common prefix A, which A+D then hits, in whole units.
    a = ids(100, 0)
    ab, ac, ad = a + ids(60, 1_000), a + ids(60, 2_000), a + ids(60, 3_000)
    assert hits(PrefixCacheModel(), ab, ac, ad) == [0, 0, 64]
    assert hits(PrefixCacheModel(policy=EVERY_PREFIX), ab, ac, ad) == [0, 64, 64]
    no_detection = BoundaryPolicy(common_prefix=False)
    assert hits(PrefixCacheModel(policy=no_detection), ab, ac, ad) == [0, 0, 0]
    assert upper_bound_hits([ab, ac, ad]) == [0, 64, 64]


@pytest.mark.parametrize("policy", POLICIES)
def test_a_changed_first_token_misses_everything(policy: BoundaryPolicy) -> None:
    system = ids(300, 0)
    changed = [999_999, *system[1:]]
    model = PrefixCacheModel(policy=policy)
    assert hits(model, system + ids(20, 5_000), changed + ids(20, 5_000)) == [0, 0]


def test_the_next_round_hits_the_previous_prompt_and_answer() -> None:
    model = PrefixCacheModel()
    prompt1, answer1 = ids(150, 0), ids(90, 1_000)
    assert model.request(prompt1, completion=answer1) == CacheHit(0, 150, 150)
    prompt2, answer2 = prompt1 + answer1 + ids(40, 2_000), ids(70, 3_000)
    # 150 + 90 = 240 saved at the end of the model output: floor(240 / 64) * 64 = 192.
    assert model.request(prompt2, completion=answer2) == CacheHit(192, 88, 280)
    prompt3 = prompt2 + answer2 + ids(10, 4_000)
    # 280 + 70 = 350 -> 320.
    assert model.request(prompt3) == CacheHit(320, 40, 360)


def test_without_the_completion_only_the_prompt_end_is_persisted() -> None:
    prompt1 = ids(150, 0)
    prompt2 = prompt1 + ids(90, 1_000) + ids(40, 2_000)
    assert hits(PrefixCacheModel(), prompt1, prompt2) == [0, 128]


def test_only_persisted_prefixes_hit() -> None:
    prompt = ids(250, 0)
    sharing_200 = prompt[:200] + ids(100, 9_000)
    model = PrefixCacheModel()
    model.request(prompt, boundaries=[150])
    assert model.request(sharing_200) == CacheHit(128, 172, 300)  # floor(150 / 64) * 64
    assert upper_bound_hits([prompt, sharing_200]) == [0, 192]


def test_a_persisted_prefix_is_kept_in_whole_units() -> None:
    # The prompt end at 250 persists 192 tokens (3 units; the 58-token tail is not stored),
    # so a request that diverges in that tail still hits the 192.
    prompt = ids(250, 0)
    assert hits(PrefixCacheModel(), prompt, prompt[:200] + ids(100, 9_000)) == [0, 192]


def test_boundaries_inside_the_prompt_are_persisted() -> None:
    prompt = ids(300, 0)
    model = PrefixCacheModel()
    model.request(prompt, boundaries=[70, 300])
    assert model.request(prompt[:150] + ids(50, 9_000)).hit_tokens == 64
    assert model.request(prompt + ids(5, 8_000)).hit_tokens == 256


def test_the_same_prompt_twice_hits_its_whole_units() -> None:
    prompt = ids(200, 0)
    assert hits(PrefixCacheModel(), prompt, prompt) == [0, 192]


def test_interval_persistence_makes_long_prompts_reusable_part_way() -> None:
    prompt = ids(1_000, 0)
    diverging = prompt[:700] + ids(50, 9_000)
    plain = PrefixCacheModel(policy=BoundaryPolicy(common_prefix=False))
    assert hits(plain, prompt, diverging) == [0, 0]
    every_256 = PrefixCacheModel(policy=BoundaryPolicy(common_prefix=False, interval=256))
    assert hits(every_256, prompt, diverging) == [0, 512]


def test_replay_reports_hits_against_what_was_possible() -> None:
    a = ids(100, 0)
    requests = [CacheRequest(a + ids(60, k * 1_000)) for k in (1, 2, 3)]
    report = replay(requests)
    assert [r.hit_tokens for r in report.results] == [0, 0, 64]
    assert report.upper_bounds == (0, 64, 64)
    assert (report.hit_tokens, report.miss_tokens, report.prompt_tokens) == (64, 416, 480)
    assert report.total == CacheHit(64, 416, 480)
    assert report.hit_ratio == pytest.approx(64 / 480)
    assert report.upper_bound_tokens == 128
    assert report.efficiency == pytest.approx(0.5)
    assert replay([]).efficiency == 1.0


def test_lru_bound_forgets_the_least_recently_used_prefix() -> None:
    a, b = ids(128, 0), ids(128, 5_000)
    assert hits(PrefixCacheModel(), a, b, [*a, 1]) == [0, 0, 128]
    bounded = PrefixCacheModel(max_entries=1)
    assert hits(bounded, a, b, [*a, 1]) == [0, 0, 0]
    assert len(bounded) == 1
    bounded.clear()
    assert len(bounded) == 0


def test_lookup_predicts_without_persisting() -> None:
    model = PrefixCacheModel()
    prompt = ids(128, 0)
    assert model.lookup(prompt).hit_tokens == 0
    assert model.request(prompt).hit_tokens == 0
    assert model.lookup([*prompt, 7]) == CacheHit(128, 1, 129)
    assert len(model) == 1


def digest(tokens: Sequence[int]) -> str:
    return hashlib.sha256(repr(list(tokens)).encode()).hexdigest()


def segments(messages: Sequence[Sequence[int]]) -> list[Segment]:
    return [(digest(m), len(m)) for m in messages]


def flat(messages: Sequence[Sequence[int]]) -> list[int]:
    return [t for m in messages for t in m]


def ends(messages: Sequence[Sequence[int]]) -> list[int]:
    out, total = [], 0
    for m in messages:
        total += len(m)
        out.append(total)
    return out


def test_segments_give_the_token_answer_when_divergence_is_at_a_message_start() -> None:
    system, u1, a1, u2 = ids(70, 0), ids(50, 1_000), ids(90, 2_000), ids(30, 3_000)
    other = ids(30, 4_000)
    rounds = [([system, u1], [a1]), ([system, u1, a1, u2], None), ([system, u1, a1, other], None)]
    token_model, segment_model = PrefixCacheModel(), PrefixCacheModel()
    by_tokens, by_segments = [], []
    for prompt, answer in rounds:
        by_tokens.append(
            token_model.request(flat(prompt), completion=None if answer is None else flat(answer))
        )
        by_segments.append(
            segment_model.request_segments(
                segments(prompt), completion=None if answer is None else segments(answer)
            )
        )
    # 70 + 50 + 90 = 210 persisted at the end of the first answer -> 192 for both later rounds.
    assert [r.hit_tokens for r in by_tokens] == [0, 192, 192]
    assert by_segments == by_tokens


def test_segments_treat_a_changed_message_as_changed_from_its_start() -> None:
    system = ids(100, 0)
    edited = [*system[:90], *ids(10, 7_000)]
    tail = ids(100, 1_000)
    token_model = PrefixCacheModel(policy=EVERY_PREFIX)
    segment_model = PrefixCacheModel(policy=EVERY_PREFIX)
    token_model.request(system + tail)
    segment_model.request_segments(segments([system, tail]))
    assert token_model.request(edited + tail).hit_tokens == 64
    assert segment_model.request_segments(segments([edited, tail])).hit_tokens == 0


def test_usage_is_read_from_dicts_and_sdk_objects() -> None:
    usage = {"prompt_tokens": 200, "prompt_cache_hit_tokens": 128, "prompt_cache_miss_tokens": 72}
    assert CacheHit.from_usage(usage) == CacheHit(128, 72, 200)
    sdk = SimpleNamespace(prompt_tokens=200, prompt_cache_hit_tokens=64, completion_tokens=9)
    assert CacheHit.from_usage(sdk) == CacheHit(64, 136, 200)
    openai_style = {"prompt_tokens": 100, "prompt_tokens_details": {"cached_tokens": 64}}
    assert CacheHit.from_usage(openai_style) == CacheHit(64, 36, 100)
    assert CacheHit.from_usage({"prompt_cache_miss_tokens": 5, "prompt_cache_hit_tokens": 0}) == (
        CacheHit(0, 5, 5)
    )
    with pytest.raises(ValidationError, match="no cache figures"):
        CacheHit.from_usage({"prompt_tokens": 10})
    with pytest.raises(ValidationError, match="must equal"):
        CacheHit.from_usage(
            {"prompt_tokens": 10, "prompt_cache_hit_tokens": 8, "prompt_cache_miss_tokens": 8}
        )


def test_compare_points_at_the_requests_that_disagree() -> None:
    predicted = [CacheHit(0, 100, 100), CacheHit(64, 36, 100), CacheHit(128, 2, 130)]
    reported = [
        {"prompt_tokens": 100, "prompt_cache_hit_tokens": 0, "prompt_cache_miss_tokens": 100},
        {"prompt_tokens": 100, "prompt_cache_hit_tokens": 0, "prompt_cache_miss_tokens": 100},
        CacheHit(128, 4, 132),
    ]
    result = compare(predicted, reported)
    assert result.mismatches == (1,)
    assert result.prompt_mismatches == (2,)
    assert result.hit_error == 64
    assert not result.exact
    assert compare(replay([CacheRequest(ids(10, 0))]), [CacheHit(0, 10, 10)]).exact
    with pytest.raises(ValidationError, match="compare the same requests"):
        compare(predicted, reported[:2])


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValidationError, match="unit"):
        PrefixCacheModel(0)
    with pytest.raises(ValidationError, match="max_entries"):
        PrefixCacheModel(max_entries=0)
    with pytest.raises(ValidationError, match="interval"):
        BoundaryPolicy(interval=0)
    model = PrefixCacheModel()
    with pytest.raises(ValidationError, match="boundary"):
        model.request(ids(10, 0), boundaries=[11])
    with pytest.raises(ValidationError, match="token ids"):
        model.request([1, 2.5])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="token count"):
        model.request_segments([("a", -1)])
    with pytest.raises(ValidationError, match="digest"):
        model.request_segments([(3, 1)])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="CacheRequest"):
        model.submit(ids(3, 0))  # type: ignore[arg-type]
    assert len(model) == 0


# Properties. Tokens come from a tiny alphabet and prompts reuse earlier prompts' heads, so
# workloads are full of shared prefixes, accidental ones included.

UNITS = st.sampled_from([1, 3, 8, 64])
TOKENS = st.lists(st.integers(0, 2), max_size=150)


@st.composite
def workloads(draw: st.DrawFn) -> list[CacheRequest]:
    requests: list[CacheRequest] = []
    for _ in range(draw(st.integers(1, 8))):
        head: list[int] = []
        extend = draw(st.booleans())
        if requests and extend:
            parent = draw(st.sampled_from(requests))
            content = list(parent.prompt) + list(parent.completion or ())
            head = content[: draw(st.integers(0, len(content)))]
        prompt = head + draw(TOKENS)
        boundaries = None
        if draw(st.booleans()):
            boundaries = sorted(set(draw(st.lists(st.integers(0, len(prompt)), max_size=4))))
        completion = draw(st.none() | TOKENS)
        requests.append(CacheRequest(prompt, boundaries, completion))
    return requests


POLICY = st.sampled_from([SAVED_PREFIXES, EVERY_PREFIX, BoundaryPolicy(common_prefix=False)])


def lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def reference_upper_bounds(requests: Sequence[CacheRequest], unit: int) -> list[int]:
    out: list[int] = []
    seen: list[tuple[int, ...]] = []
    for r in requests:
        shared = max((lcp(r.prompt, c) for c in seen), default=0)
        out.append(min(shared, len(r.prompt)) // unit * unit)
        seen.append(r.prompt + (r.completion or ()))
    return out


def reference_saved_prefixes(requests: Sequence[CacheRequest], unit: int) -> list[int]:
    """The documented rules, spelled out by brute force over stored token tuples."""
    saved: list[tuple[int, ...]] = []
    seen: list[tuple[int, ...]] = []
    out = []
    for r in requests:
        prompt = r.prompt
        out.append(max((len(s) for s in saved if prompt[: len(s)] == s), default=0))
        content = prompt + (r.completion or ())
        cuts = list((len(prompt),) if r.boundaries is None else r.boundaries)
        if r.completion is not None:
            cuts.append(len(content))
        cuts.append(max((lcp(prompt, c) for c in seen), default=0))
        saved += [content[: b // unit * unit] for b in cuts if b >= unit]
        seen.append(content)
    return out


@settings(max_examples=200, deadline=None)
@given(workloads(), UNITS, POLICY, st.none() | st.integers(1, 6))
def test_hits_are_whole_units_within_the_bound(
    requests: list[CacheRequest], unit: int, policy: BoundaryPolicy, max_entries: int | None
) -> None:
    report = replay(requests, unit=unit, policy=policy, max_entries=max_entries)
    assert list(report.upper_bounds) == upper_bound_hits(requests, unit=unit)
    assert list(report.upper_bounds) == reference_upper_bounds(requests, unit)
    for request, result, bound in zip(requests, report.results, report.upper_bounds, strict=True):
        assert result.hit_tokens % unit == 0
        assert result.hit_tokens + result.miss_tokens == result.prompt_tokens == len(request.prompt)
        assert result.hit_tokens <= bound
    if policy == EVERY_PREFIX and max_entries is None:
        assert list(report.upper_bounds) == [r.hit_tokens for r in report.results]


@settings(max_examples=200, deadline=None)
@given(workloads(), UNITS)
def test_hashed_index_matches_the_brute_force_rules(
    requests: list[CacheRequest], unit: int
) -> None:
    report = replay(requests, unit=unit)
    assert [r.hit_tokens for r in report.results] == reference_saved_prefixes(requests, unit)


@settings(max_examples=200, deadline=None)
@given(workloads(), UNITS, POLICY, TOKENS, st.lists(st.integers(0, 2), min_size=1, max_size=80))
def test_appending_to_a_prompt_never_lowers_its_hit(
    requests: list[CacheRequest],
    unit: int,
    policy: BoundaryPolicy,
    prompt: list[int],
    extra: list[int],
) -> None:
    model = PrefixCacheModel(unit, policy)
    for request in requests:
        model.submit(request)
    if requests and requests[-1].prompt:
        prompt = list(requests[-1].prompt) + prompt
    assert model.lookup(prompt + extra).hit_tokens >= model.lookup(prompt).hit_tokens


@st.composite
def conversations(
    draw: st.DrawFn,
) -> tuple[list[list[int]], list[tuple[list[int], list[int] | None]]]:
    """Messages with distinct first tokens, and requests made of whole messages."""
    count = draw(st.integers(1, 8))
    messages = [
        [10_000 + i, *draw(st.lists(st.integers(0, 2), max_size=120))] for i in range(count)
    ]
    index = st.integers(0, count - 1)
    requests: list[tuple[list[int], list[int] | None]] = []
    for _ in range(draw(st.integers(1, 6))):
        head: list[int] = []
        extend = draw(st.booleans())
        if requests and extend:
            parent, answer = draw(st.sampled_from(requests))
            whole = parent + (answer or [])
            head = whole[: draw(st.integers(0, len(whole)))]
        prompt = head + draw(st.lists(index, max_size=4))
        answer = draw(st.none() | st.lists(index, min_size=1, max_size=2))
        requests.append((prompt, answer))
    return messages, requests


@settings(max_examples=200, deadline=None)
@given(conversations(), UNITS, st.sampled_from(POLICIES), st.booleans())
def test_segments_agree_with_tokens_when_messages_diverge_at_their_starts(
    conversation: tuple[list[list[int]], list[tuple[list[int], list[int] | None]]],
    unit: int,
    policy: BoundaryPolicy,
    message_boundaries: bool,
) -> None:
    messages, picks = conversation
    token_requests: list[CacheRequest] = []
    segment_requests: list[SegmentRequest] = []
    for prompt_ids, answer_ids in picks:
        prompt = [messages[i] for i in prompt_ids]
        answer = None if answer_ids is None else [messages[i] for i in answer_ids]
        cuts: list[int] | None = ends(prompt) if message_boundaries else None
        token_requests.append(
            CacheRequest(flat(prompt), cuts, None if answer is None else flat(answer))
        )
        segment_requests.append(
            SegmentRequest(segments(prompt), cuts, None if answer is None else segments(answer))
        )
    by_tokens = replay(token_requests, unit=unit, policy=policy)
    by_segments = replay(segment_requests, unit=unit, policy=policy)
    assert by_segments == by_tokens
