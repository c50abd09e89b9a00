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
    "FACTS_HEADER",
    "NOTES_HEADER",
    "SUMMARY_HEADER",
    "AsyncLLMSummarizer",
    "ExtractiveSummarizer",
    "LLMSummarizer",
    "Summarizer",
    "Summary",
    "SummaryResult",
    "coverage_line",
    "summary_message",
    "user_facts",
]

SUMMARY_HEADER = "Summary of the earlier conversation:\n"
FACTS_HEADER = "Facts the user gave:"
NOTES_HEADER = "Conversation:"


def coverage_line(upto_seq: int) -> str:
    """What a summary tells the model besides its text: what it covers, and that the
    details it left out are stored and can be recalled rather than guessed."""
    return f"(Messages 1-{upto_seq}; their full text is kept: recall details, don't guess.)\n"


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
        return summary_message(self.text, upto_seq=self.upto_seq)


def summary_message(text: str, *, upto_seq: int | None = None) -> dict[str, Any]:
    """How a summary enters the prompt: one system message after the pinned ones, saying
    what it covers (`upto_seq`) and that older detail can be recalled."""
    lead = SUMMARY_HEADER + (coverage_line(upto_seq) if upto_seq is not None else "")
    return {"role": "system", "content": lead + text}


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
_SENTENCE = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])|\n+")
_PROPER = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z]+")

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w-])(?:\+\d[\d ().-]{7,}\d|\(?\d{3}\)?[-. ]\d{3}[-. ]\d{4})(?![\w-])")
_MY_VALUE = re.compile(
    r"\bmy [\w' -]{2,40}? (?:is|are|was|number is|code is)\b|我的.{1,12}?是", re.IGNORECASE
)
""""my order number is ...", "my name is ...": the user stating a value of theirs."""
_VALUE = re.compile(
    r"(?<![\w-])(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9]+(?:[-_/][A-Za-z0-9]+)*(?![\w-])"
    r"|#\d{2,}|\d{3,}|\b\d+(?:[.,:/-]\d+)+\b|\b[A-Z][a-z]+"
)
"""A concrete value: an identifier (letters and digits), a number, a date, a name."""
_SPEAKER = re.compile(r"\b(?:my|i am|i'm|i live|i work|i was born)\b", re.IGNORECASE)
"""The user speaking of themselves (what follows is about them)."""
_STATED = re.compile(
    r"\b(?:i (?:really |strongly )?prefer|i(?:'d| would) (?:rather|prefer)|"
    r"i (?:don't|do not) (?:like|want)|i (?:hate|dislike)|i(?:'m| am) allergic|"
    r"i(?:'m| am) (?:a )?(?:vegetarian|vegan)|call me|my name is|let's go with|"
    r"(?:i|we) (?:decided|agreed|chose|settled on)|remember (?:that|this)|"
    r"please (?:always|never)|(?:don't|do not|never) (?:ever )?(?:send|call|email|contact))\b",
    re.IGNORECASE,
)
"""A stated preference, decision or standing instruction."""
_CJK_SPEAKER = re.compile("我的|我们的|我們的|我叫|我住|私の|私は|僕の|저는|제 ")
_CJK_STATED = re.compile(
    "我(?:更)?喜欢|我(?:更)?喜歡|我决定|我決定|我们决定|我們決定|请不要|請不要|请记住|請記住"
)
_REQUEST = re.compile(
    r"^(?:please )?(?:can|could|would|will) you\b|^(?:please )?(?:write|create|make|give|"
    r"generate|explain|tell|show|list|describe|summari[sz]e|translate|rewrite|re-write|draft|"
    r"act as|pretend|imagine)\b",
    re.IGNORECASE,
)
FACT_CHARS = 140
FACTS_PER_MESSAGE = 3
"""A message stating more (a pasted document) gives its first three."""
SHORT_MESSAGE = 2_000
"""Only messages this short (the user's own words, not a pasted document) give weaker
facts (the user speaking of themselves with a value nearby), one each."""
"""A fact line keeps at most this much of its sentence, around what makes it a fact."""
_FACT_LINE = re.compile(r"^- \[#(\d+)\] ")


def user_facts(message: Message) -> list[str]:
    """The facts a user message states, as summary lines `- [#seq] sentence`.

    A fact is a sentence that holds an email address or a phone number, states a value of
    the user's ("my order number is A-5531", "my name is ..."), or a preference, a decision
    or a standing instruction (I prefer, I'd rather, we decided, call me, please never ...):
    at most `FACTS_PER_MESSAGE` of these a message. A short message (`SHORT_MESSAGE`: the
    user's own words, not a pasted document) may also give one weaker fact: the user
    speaking of themselves (my, I am, I live ...) with a concrete value soon after (an
    identifier, a number, a date, a name). Questions and requests to the assistant are not
    facts. A long sentence is cut to `FACT_CHARS` around what makes it one.
    """
    if message.role is not Role.USER:
        return []
    text = message.text
    strong: list[tuple[int, str]] = []
    weak: list[tuple[int, str]] = []
    for index, sentence in enumerate(_SENTENCE.split(text)):
        sentence = " ".join(sentence.split())
        if not 8 <= len(sentence) <= 600 or sentence.endswith("?") or _REQUEST.match(sentence):
            continue
        found = (
            _EMAIL.search(sentence)
            or _PHONE.search(sentence)
            or _STATED.search(sentence)
            or _CJK_STATED.search(sentence)
        )
        mine = _MY_VALUE.search(sentence)
        if found is None and mine is not None and _VALUE.search(sentence, mine.end()):
            found = mine
        if found is not None:
            strong.append((index, _clip(sentence, found.start())))
            if len(strong) == FACTS_PER_MESSAGE:
                break
            continue
        speaker = _SPEAKER.search(sentence) or _CJK_SPEAKER.search(sentence)
        if (
            speaker is not None
            and not weak
            and len(text) <= SHORT_MESSAGE
            and _VALUE.search(sentence[speaker.end() : speaker.end() + 80])
        ):
            weak.append((index, _clip(sentence, speaker.start())))
    return [f"- [#{message.seq or 0}] {line}" for _, line in sorted(strong + weak)]


def _clip(sentence: str, at: int) -> str:
    """At most `FACT_CHARS` of `sentence`, starting a little before position `at`."""
    if len(sentence) <= FACT_CHARS:
        return sentence
    start = max(0, min(at - 20, len(sentence) - FACT_CHARS))
    if start > 0:
        space = sentence.find(" ", start)
        start = space + 1 if 0 <= space < at else start
    end = start + FACT_CHARS
    cut = sentence[start:end]
    if end < len(sentence) and " " in cut[FACT_CHARS // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return ("…" if start > 0 else "") + cut + ("…" if start + len(cut) < len(sentence) else "")


def _sections(previous: str | None) -> tuple[list[str], list[str]]:
    """The fact lines and the conversation lines of a previous summary (one written before
    summaries had sections is all conversation lines)."""
    facts: list[str] = []
    notes: list[str] = []
    target = notes
    for line in (previous or "").splitlines():
        line = line.strip()
        if line == FACTS_HEADER:
            target = facts
        elif line == NOTES_HEADER:
            target = notes
        elif line and not line.startswith("- ("):
            target.append(line)
    return facts, notes


class ExtractiveSummarizer:
    """Offline, deterministic: the user's facts, then the sentences most likely to matter.

    Two sections. "Facts the user gave": every fact a user message stated (see
    `user_facts`: identifiers, numbers, emails, names, preferences, decisions), verbatim
    with its message number, kept through every roll; they get up to `facts_share` of the
    target, and when that is full the oldest go first (they stay stored and recallable).
    "Conversation": sentences scored for facts, numbers, names and requests, user sentences
    above assistant ones; the previous summary's lines compete with the new sentences (with a
    small bonus, so old facts survive), but at least `new_share` of what is left goes to the
    newest messages, so later facts always get in. Lines keep their conversation order.
    """

    name = "extractive"

    def __init__(self, *, new_share: float = 0.4, facts_share: float = 0.5) -> None:
        self.new_share = check_fraction(new_share, "new_share")
        self.facts_share = check_fraction(facts_share, "facts_share")

    def summarize(
        self, messages: Sequence[Message], *, previous: str | None, max_tokens: int, model: str
    ) -> SummaryResult:
        spec = spec_for(model)

        def cost(line: str) -> int:
            return int(spec.tokenizer.count(line + "\n"))

        old_facts, old_notes = _sections(previous)
        facts = _keep_newest(
            _unique([*old_facts, *(f for m in messages for f in user_facts(m))]),
            int(max_tokens * self.facts_share) - cost(FACTS_HEADER),
            cost,
        )
        room = max_tokens - (sum(map(cost, facts)) + cost(FACTS_HEADER) if facts else 0)
        stated = {_FACT_LINE.sub("", f) for f in facts}
        notes = self._notes(messages, old_notes, stated, room - cost(NOTES_HEADER), cost)
        text = "\n".join(
            ([FACTS_HEADER, *facts] if facts else []) + ([NOTES_HEADER, *notes] if notes else [])
        )
        return SummaryResult(text=text or "- (nothing to summarize)", summarizer=self.name)

    def _notes(
        self,
        messages: Sequence[Message],
        previous: Sequence[str],
        stated: set[str],
        room: int,
        cost: Any,
    ) -> list[str]:
        """Conversation lines within `room` tokens (none repeating a fact in `stated`)."""
        old: list[tuple[float, int, str]] = []
        new: list[tuple[float, int, str]] = []
        seen: set[str] = set()
        order = 0
        for line in previous:
            if line not in seen:
                seen.add(line)
                old.append((_score(line, line.startswith("- User:")) + 1.0, order, line))
                order += 1
        fallback: list[tuple[float, int, str]] = []
        for message in messages:
            for score, line in _candidates(message):
                if line in seen or line.split(": ", 1)[-1] in stated:
                    continue
                seen.add(line)
                (new if score > 0 else fallback).append((score, order, line))
                order += 1
        chosen: dict[int, str] = {}
        used = 0

        def fill(candidates: list[tuple[float, int, str]], limit: int) -> None:
            nonlocal used
            for _, position, line in sorted(candidates, key=lambda c: (-c[0], c[1])):
                size = cost(line)
                if position not in chosen and used + size <= limit:
                    used += size
                    chosen[position] = line

        fill(new, int(room * self.new_share))
        fill(old + new, room)
        if not chosen:  # nothing scored (another language, only tool steps): say what it was
            fill(fallback, room)
        return [chosen[p] for p in sorted(chosen)]


def _candidates(message: Message) -> list[tuple[float, str]]:
    """(score, line) of each sentence of a message worth a conversation line (score 0: only
    if nothing else scores), and its tool calls."""
    out: list[tuple[float, str]] = []
    if message.role in (Role.USER, Role.ASSISTANT):
        user = message.role is Role.USER
        for sentence in _SENTENCE.split(message.text):
            sentence = " ".join(sentence.split())
            if len(sentence) < 3:
                continue
            line = f"- {'User' if user else 'Assistant'}: {sentence[:400]}"
            out.append((_score(sentence, user), line))
    for call in message.tool_calls:
        out.append(
            (0.0, f"- Assistant called {call.function.name}({call.function.arguments[:200]})")
        )
    return out


def _unique(lines: Sequence[str]) -> list[str]:
    """Fact lines without repeats (the same sentence stated again keeps its first number)."""
    seen: set[str] = set()
    out = []
    for line in lines:
        key = _FACT_LINE.sub("", line).casefold()
        if key not in seen:
            seen.add(key)
            out.append(line)
    return out


def _keep_newest(lines: Sequence[str], room: int, cost: Any) -> list[str]:
    """The newest `lines` (in order) that fit in `room` tokens: the oldest go first."""
    kept: list[str] = []
    used = 0
    for line in reversed(lines):
        size = cost(line)
        if used + size > room:
            break
        kept.append(line)
        used += size
    return kept[::-1]


def _score(sentence: str, user: bool) -> float:
    facts = len(_FACT.findall(sentence)) + min(len(_NUMBER.findall(sentence)), 3)
    score = 2.0 * facts + len(_PROPER.findall(sentence))
    return score * (1.5 if user else 1.0) + (1.0 if user and score else 0.0)


_LLM_INSTRUCTIONS = (
    "You maintain the running summary of a conversation between a user and an assistant. "
    "Merge the previous summary (if any) with the new messages into one updated summary, in "
    "two sections. First a line 'Facts the user gave:' and one bullet per fact the user "
    "stated: identifiers (order, account, booking numbers), numbers, dates, emails, names, "
    "stated preferences and decisions, copied verbatim, each as '- [#n] ...' with the number "
    "of the message that stated it. Keep every fact of the previous summary's facts section; "
    "only when that section outgrows its share drop the oldest facts first (they stay stored "
    "and can be recalled). Then a line 'Conversation:' and terse bullets of what was "
    "discussed, decided and left open. Drop pleasantries and repetition. Write in the "
    "conversation's language. Output only the summary."
)


class _LLMSettings:
    """What both LLM summarizers hold: the client, the summarizer model, the facts' share."""

    name = "llm"

    def __init__(
        self, client: Any, *, model: str = "deepseek-v4-flash", facts_share: float = 0.4
    ) -> None:
        self.client = client
        self.model = model
        self.facts_share = check_fraction(facts_share, "facts_share")


class LLMSummarizer(_LLMSettings):
    """Summarizes with a chat model through the openai SDK (thinking off, to keep it cheap)."""

    def summarize(
        self, messages: Sequence[Message], *, previous: str | None, max_tokens: int, model: str
    ) -> SummaryResult:
        request = _llm_request(self.model, messages, previous, max_tokens, self.facts_share)
        return _llm_result(self.model, self.client.chat.completions.create(**request))


class AsyncLLMSummarizer(_LLMSettings):
    """`LLMSummarizer` on `openai.AsyncOpenAI`: compaction in an async app awaits the call
    instead of blocking the event loop. Use it with `AsyncStore` / `AsyncConversation`."""

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
        request = _llm_request(self.model, messages, previous, max_tokens, self.facts_share)
        return _llm_result(self.model, await self.client.chat.completions.create(**request))


def _llm_request(
    model: str,
    messages: Sequence[Message],
    previous: str | None,
    max_tokens: int,
    facts_share: float,
) -> dict[str, Any]:
    """The chat request both LLM summarizers send (thinking off, to keep it cheap)."""
    transcript = "\n\n".join(_transcript_line(m) for m in messages)
    prompt = (
        f"Previous summary:\n{previous or '(none)'}\n\nNew messages:\n{transcript}\n\n"
        f"Write the updated summary in at most {max_tokens} tokens, of which the facts "
        f"section takes at most {int(max_tokens * facts_share)}."
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
    number = f"#{message.seq} " if message.seq else ""
    if message.role is Role.TOOL:
        return f"[{number}tool result {message.tool_call_id}]: {message.text}"
    calls = "".join(
        f" [calls {c.function.name}({c.function.arguments})]" for c in message.tool_calls
    )
    return f"[{number}{message.role.value}]: {message.text}{calls}"
