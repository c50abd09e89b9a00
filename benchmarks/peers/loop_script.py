"""Synthetic agent sessions: the tools, the scripted turns, the audit of each model call."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass

from . import oracle
from .common import MAX_TOKENS, Msg, filler

TOOLS: list[Msg] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}, "ref": {"type": "string"}},
                "required": ["query", "ref"],
            },
        },
    }
    for name, description in (
        ("search", "Search the knowledge base; returns matching passages."),
        ("read_file", "Read a file of the project; returns its text."),
    )
]
AGENTS_LIMIT = 20


@dataclass(frozen=True)
class Step:
    reasoning: str
    content: str
    calls: tuple[tuple[str, str, str], ...]
    """(call id, tool name, JSON arguments)."""
    results: tuple[str, ...]


@dataclass(frozen=True)
class Turn:
    user: str
    steps: tuple[Step, ...]
    reasoning: str
    answer: str


def make_loop(seed: int, turns: int) -> list[Turn]:
    """A reproducible agent session: most turns run a chain of tool calls (some parallel)."""
    rng = random.Random(seed)
    out = []
    for t in range(turns):
        n_steps = rng.choice((0, 1, 2, 3, 3, 4, 5, 6, 8, 10))
        steps = []
        for s in range(n_steps):
            calls = tuple(
                (
                    f"call_{seed}_{t}_{s}_{j}",
                    rng.choice(("search", "read_file")),
                    json.dumps({"query": filler(rng, 4), "ref": f"{t}.{s}.{j}"}),
                )
                for j in range(rng.choice((1, 1, 1, 2)))
            )
            steps.append(
                Step(
                    reasoning=filler(rng, rng.randint(15, 120)),
                    content="" if rng.random() < 0.7 else filler(rng, rng.randint(5, 30)),
                    calls=calls,
                    results=tuple(filler(rng, rng.randint(60, 900)) for _ in calls),
                )
            )
        out.append(
            Turn(
                user=filler(rng, rng.randint(10, 120)),
                steps=tuple(steps),
                reasoning=filler(rng, rng.randint(15, 150)),
                answer=filler(rng, rng.randint(30, 250)),
            )
        )
    return out


def loop_messages(turn: Turn) -> Iterable[tuple[Msg, bool]]:
    """The turn's messages in order, each flagged when a model call follows it."""
    yield {"role": "user", "content": turn.user}, True
    for step in turn.steps:
        yield (
            {
                "role": "assistant",
                "content": step.content,
                "reasoning_content": step.reasoning,
                "tool_calls": [
                    {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                    for cid, name, args in step.calls
                ],
            },
            False,
        )
        for k, ((cid, _, _), result) in enumerate(zip(step.calls, step.results, strict=True)):
            yield {"role": "tool", "tool_call_id": cid, "content": result}, k == len(step.calls) - 1
    yield {"role": "assistant", "content": turn.answer, "reasoning_content": turn.reasoning}, False


@dataclass
class Audit:
    """What one strategy sent, summed over its model calls."""

    calls: int = 0
    refused: int = 0
    """The strategy raised instead of returning a prompt."""
    prompt_tokens: int = 0
    max_prompt_tokens: int = 0
    budget_violations: int = 0
    max_over_budget: int = 0
    orphaned_tool_results: int = 0
    """Tool messages whose call is not in the prompt (the API rejects the request)."""
    unanswered_tool_calls: int = 0
    """Tool calls in the prompt without their result (the API rejects the request)."""
    missing_reasoning: int = 0
    """Tool-call steps of the current turn sent without reasoning_content (rejected in
    thinking mode)."""
    calls_with_missing_reasoning: int = 0
    newest_dropped: int = 0
    """The message the call answers (user message or tool result) was not sent last."""

    def check(self, prompt: list[Msg] | None, newest: Msg, budget: int) -> None:
        self.calls += 1
        if prompt is None:
            self.refused += 1
            return
        n = oracle.prompt_tokens(prompt, tools=TOOLS, thinking=True)  # not contextkit's count
        self.prompt_tokens += n
        self.max_prompt_tokens = max(self.max_prompt_tokens, n)
        if n + MAX_TOKENS > budget:
            self.budget_violations += 1
            self.max_over_budget = max(self.max_over_budget, n + MAX_TOKENS - budget)
        called: set[str] = set()
        answered: set[str] = set()
        for m in prompt:
            if m["role"] == "assistant":
                called.update(c["id"] for c in m.get("tool_calls") or ())
            elif m["role"] == "tool":
                if m.get("tool_call_id") in called:
                    answered.add(m["tool_call_id"])
                else:
                    self.orphaned_tool_results += 1
        self.unanswered_tool_calls += len(called - answered)
        last_user = max((i for i, m in enumerate(prompt) if m["role"] == "user"), default=-1)
        missing = sum(
            1
            for m in prompt[last_user + 1 :]
            if m["role"] == "assistant"
            and m.get("tool_calls")
            and m.get("reasoning_content") is None
        )
        self.missing_reasoning += missing
        self.calls_with_missing_reasoning += missing > 0
        last = prompt[-1]
        same = all(last.get(k) == newest.get(k) for k in ("role", "content", "tool_call_id"))
        self.newest_dropped += not same


class LoopStrategy:
    """Holds the session; `add` stores a message, `prompt` gives the next call's messages."""

    def add(self, message: Msg) -> None:
        raise NotImplementedError

    def prompt(self) -> list[Msg] | None:
        raise NotImplementedError

    def close(self) -> None:
        pass
