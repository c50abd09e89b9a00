"""Summarizers: turn the messages leaving the window (and the previous summary) into one.

`ExtractiveSummarizer` is offline and deterministic; `LLMSummarizer` asks a chat model
through the openai SDK. Both return a `SummaryResult`; a stored one is a `Summary`. Pure
domain code: storing and scheduling summaries is `contextkit.compaction`'s job.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from attrs import frozen

from contextkit._sdk import Usage
from contextkit._validators import check_fraction
from contextkit.errors import ValidationError
from contextkit.models import spec_for
from contextkit.types import Message, Role

__all__ = [
    "SUMMARY_HEADER",
    "AsyncLLMSummarizer",
    "ExtractiveSummarizer",
    "LLMSummarizer",
    "Summarizer",
    "Summary",
    "SummaryResult",
    "summary_message",
]

SUMMARY_HEADER = "Summary of the earlier conversation:\n"


@frozen(kw_only=True)
class SummaryResult:
    """What a summarizer returns: the text and, for LLM summarizers, what the call cost."""

    text: str
    summarizer: str
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


@frozen(kw_only=True)
class Summary:
    """A stored summary: it covers messages 1..`upto_seq`; `from_seq` is where it took over."""

    n: int
    from_seq: int
    upto_seq: int
    text: str
    token_count: int
    summarizer: str
    model: str | None
    cost_usd: float
    created_at: Any

    def to_message(self) -> dict[str, Any]:
        return summary_message(self.text)


def summary_message(text: str) -> dict[str, Any]:
    """How a summary enters the prompt: one system message after the pinned ones."""
    return {"role": "system", "content": SUMMARY_HEADER + text}


@runtime_checkable
class Summarizer(Protocol):
    """Turns the messages leaving the window (and the previous summary) into one summary."""

    def summarize(
        self, messages: Sequence[Message], *, previous: str | None, max_tokens: int, model: str
    ) -> SummaryResult: ...


_NUMBER = re.compile(r"\d+")
_FACT = re.compile(
    r"\b(?:my|our|name|called|prefer|preference|always|never|please|must|should|need|want|"
    r"like|deadline|order|account|email|address|phone|decid|agree|todo|remember|important)",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_PROPER = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z]+")


class ExtractiveSummarizer:
    """Offline, deterministic: keeps the sentences most likely to carry facts.

    Sentences with numbers, names, preferences, decisions and requests score highest, user
    sentences above assistant ones. Rolling: the previous summary's lines compete with the
    new sentences (with a small bonus, so old facts survive), but at least `new_share` of the
    target goes to the newest messages, so later facts always get in. Lines keep their
    conversation order.
    """

    name = "extractive"

    def __init__(self, *, new_share: float = 0.4) -> None:
        self.new_share = check_fraction(new_share, "new_share")

    def summarize(
        self, messages: Sequence[Message], *, previous: str | None, max_tokens: int, model: str
    ) -> SummaryResult:
        spec = spec_for(model)
        old: list[tuple[float, int, str]] = []
        new: list[tuple[float, int, str]] = []
        seen: set[str] = set()
        order = 0
        for line in (previous or "").splitlines():
            line = line.strip()
            if line and line not in seen and not line.startswith("- ("):
                seen.add(line)
                old.append((_score(line, line.startswith("- User:")) + 1.0, order, line))
                order += 1
        for message in messages:
            if message.role not in (Role.USER, Role.ASSISTANT):
                continue
            user = message.role is Role.USER
            for sentence in _SENTENCE.split(message.text):
                sentence = " ".join(sentence.split())
                score = _score(sentence, user) if len(sentence) >= 3 else 0.0
                line = f"- {'User' if user else 'Assistant'}: {sentence[:400]}"
                if score > 0 and line not in seen:
                    seen.add(line)
                    new.append((score, order, line))
                    order += 1
        chosen: dict[int, str] = {}
        used = 0

        def fill(candidates: list[tuple[float, int, str]], limit: int) -> None:
            nonlocal used
            for _, position, line in sorted(candidates, key=lambda c: (-c[0], c[1])):
                cost = spec.tokenizer.count(line + "\n")
                if position not in chosen and used + cost <= limit:
                    used += cost
                    chosen[position] = line

        fill(new, int(max_tokens * self.new_share))
        fill(old + new, max_tokens)
        text = "\n".join(chosen[p] for p in sorted(chosen)) or "- (no notable facts)"
        return SummaryResult(text=text, summarizer=self.name)


def _score(sentence: str, user: bool) -> float:
    facts = len(_FACT.findall(sentence)) + min(len(_NUMBER.findall(sentence)), 3)
    score = 2.0 * facts + len(_PROPER.findall(sentence))
    return score * (1.5 if user else 1.0) + (1.0 if user and score else 0.0)


_LLM_INSTRUCTIONS = (
    "You maintain the running summary of a conversation between a user and an assistant. "
    "Merge the previous summary (if any) with the new messages into one updated summary. "
    "Keep every fact that may matter later: names, numbers, identifiers, dates, decisions, "
    "open tasks and the user's stated preferences. Drop pleasantries and repetition. Write "
    "terse bullet points in the conversation's language. Output only the summary."
)


class LLMSummarizer:
    """Summarizes with a chat model through the openai SDK (thinking off, to keep it cheap)."""

    name = "llm"

    def __init__(self, client: Any, *, model: str = "deepseek-v4-flash") -> None:
        self.client = client
        self.model = model

    def summarize(
        self, messages: Sequence[Message], *, previous: str | None, max_tokens: int, model: str
    ) -> SummaryResult:
        request = _llm_request(self.model, messages, previous, max_tokens)
        return _llm_result(self.model, self.client.chat.completions.create(**request))


class AsyncLLMSummarizer:
    """`LLMSummarizer` on `openai.AsyncOpenAI`: compaction in an async app awaits the call
    instead of blocking the event loop. Use it with `AsyncStore` / `AsyncConversation`."""

    name = "llm"

    def __init__(self, client: Any, *, model: str = "deepseek-v4-flash") -> None:
        self.client = client
        self.model = model

    def summarize(
        self, messages: Sequence[Message], *, previous: str | None, max_tokens: int, model: str
    ) -> SummaryResult:
        raise ValidationError(
            "AsyncLLMSummarizer summarizes on an async client: use it with an AsyncStore "
            "(contextkit.open_async) or AsyncConversation; a sync Store takes LLMSummarizer"
        )

    async def asummarize(
        self, messages: Sequence[Message], *, previous: str | None, max_tokens: int, model: str
    ) -> SummaryResult:
        """`LLMSummarizer.summarize`, awaited."""
        request = _llm_request(self.model, messages, previous, max_tokens)
        return _llm_result(self.model, await self.client.chat.completions.create(**request))


def _llm_request(
    model: str, messages: Sequence[Message], previous: str | None, max_tokens: int
) -> dict[str, Any]:
    """The chat request both LLM summarizers send (thinking off, to keep it cheap)."""
    transcript = "\n\n".join(_transcript_line(m) for m in messages)
    prompt = (
        f"Previous summary:\n{previous or '(none)'}\n\nNew messages:\n{transcript}\n\n"
        f"Write the updated summary in at most {max_tokens} tokens."
    )
    return {
        "model": spec_for(model).api_model,
        "messages": [
            {"role": "system", "content": _LLM_INSTRUCTIONS},
            {"role": "user", "content": prompt},
        ],
        "max_tokens": max_tokens,
        "extra_body": {"thinking": {"type": "disabled"}},
    }


def _llm_result(model: str, response: Any) -> SummaryResult:
    """The summary and its cost from the summarizer model's response."""
    spec = spec_for(model)
    text = (response.choices[0].message.content or "").strip()
    if not text:
        raise ValidationError("the summarizer model returned an empty summary")
    reported = getattr(response, "usage", None)
    usage = (
        Usage.parse(reported)
        if reported is not None
        else Usage(prompt_tokens=0, completion_tokens=0)
    )
    cost = spec.cost(usage.cache_hit_tokens, usage.cache_miss_tokens, usage.completion_tokens)
    return SummaryResult(
        text=text,
        summarizer="llm",
        model=spec.name,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd=cost or 0.0,
    )


def _transcript_line(message: Message) -> str:
    if message.role is Role.TOOL:
        return f"[tool result {message.tool_call_id}]: {message.text}"
    calls = "".join(
        f" [calls {c.function.name}({c.function.arguments})]" for c in message.tool_calls
    )
    return f"[{message.role.value}]: {message.text}{calls}"
