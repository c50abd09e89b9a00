"""build(): the messages one model call gets, within the budget, with a cache-stable prefix.

Layout: system prompt, pinned messages, the live window (messages from the thread's stored
cut point on), then `extra` (volatile context, never stored). The cut point only moves when
the prompt would not fit, and then in one large step down to a low-water mark, so between
two moves each prompt starts with the byte-identical previous one and the provider's prefix
cache keeps hitting. Each message is sent in the replay form fixed when it was written
(`reasoning_content` only on turns that made tool calls). Cost is O(live window): stored
per-message counts and cumulative weights find the cut with one indexed query.

The decisions (`fixed_weight`, `cut_threshold`, `layout`, `assemble`) are pure functions of
a `Snapshot`; `prepare` only reads snapshots, compacts and stores a moved cut point.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping, Sequence
from functools import lru_cache, partial
from typing import Any

from attrs import frozen

from contextkit._validators import check_fraction
from contextkit.accounting import PAD
from contextkit.compaction import compact
from contextkit.counting import message_tokens, sequence_overhead, tools_tokens
from contextkit.db import blobs, calls, cut, steps, summaries, threads
from contextkit.db.calls import LastCall
from contextkit.db.cut import Replayed
from contextkit.db.steps import Steps
from contextkit.db.threads import ThreadRef, ThreadState
from contextkit.errors import (
    CompactionWarning,
    ContextOverflowError,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from contextkit.formats.transcript import transcribe_turns
from contextkit.models import ModelSpec, spec_for
from contextkit.policy import LOW_WATER, CompactionPolicy
from contextkit.prompt import Prompt
from contextkit.summarizers import Summarizer, Summary
from contextkit.tokens.calibration import Calibration, prompt_structure
from contextkit.tokens.chat import MessageShape, ReasoningReplay, Tools, reasoning_effort_level
from contextkit.types import Message, Role, canonical_json

__all__ = [
    "LOW_WATER",
    "Prompt",
    "Request",
    "Snapshot",
    "assemble",
    "check_turn",
    "cut_threshold",
    "fixed_weight",
    "layout",
    "prefix_break",
    "prepare",
]


@frozen
class Request:
    """What the caller asked for, checked: the parts of the prompt that are not stored."""

    spec: ModelSpec
    max_tokens: int
    thinking: bool
    effort: str | None
    reasoning_effort: str | None
    tools: Tools | None
    tools_digest: str
    tool_tokens: int
    extras: tuple[Message, ...]
    extra_forms: tuple[dict[str, Any], ...]
    extra_tokens: tuple[int, ...]
    low_water: float

    @classmethod
    def create(
        cls,
        spec: ModelSpec,
        max_tokens: object,
        extra: object,
        tools: Tools | None,
        thinking: bool | None,
        reasoning_effort: str | None,
        low_water: float,
    ) -> Request:
        """Check the caller's options and count what is not stored (extra, tools)."""
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValidationError(f"max_tokens must be a positive int, got {max_tokens!r:.40}")
        if max_tokens > spec.max_output_tokens:
            raise ValidationError(
                f"max_tokens {max_tokens:,} exceeds {spec.name}'s output limit "
                f"({spec.max_output_tokens:,})"
            )
        mode = spec.thinking_default if thinking is None else bool(thinking)
        effort = reasoning_effort_level(reasoning_effort)
        extras = _extra_messages(extra)
        forms = [m.to_openai(reasoning=False) for m in extras]
        counts = [message_tokens(f, spec, thinking=mode) for f in forms]
        for form in forms:
            if isinstance(form.get("content"), list):
                blobs.extract(form["content"], spec.image_limits)  # corrupt images: ImageError
        tool_tokens = tools_tokens(tools, spec)  # checks the tools first
        return cls(
            spec=spec,
            max_tokens=max_tokens,
            thinking=mode,
            effort=effort,
            reasoning_effort=reasoning_effort,
            tools=tools,
            tools_digest=hashlib.sha256(canonical_json(list(tools or ())).encode()).hexdigest(),
            tool_tokens=tool_tokens,
            extras=tuple(extras),
            extra_forms=tuple(forms),
            extra_tokens=tuple(counts),
            low_water=low_water,
        )

    @property
    def extra_weight(self) -> int:
        """Window weight of everything but stored messages: extra, template overhead."""
        base = sequence_overhead(
            [],
            self.spec,
            tools_tokens=self.tool_tokens,
            thinking=self.thinking,
            reasoning_effort=self.reasoning_effort,
        )
        return sum(self.extra_tokens) + PAD * len(self.extras) + base + 2


@frozen
class Snapshot:
    """One consistent read of what a prompt is made of (a read transaction's view)."""

    thread: ThreadState
    pinned: tuple[Replayed, ...]
    live: tuple[Replayed, ...]
    window_start: int
    moved: bool
    correction: int
    summary: Summary | None
    pressure: int
    structure: str = ""
    compactable: bool = True
    floor: int = 0
    """Weight of the fixed part without the summary (what a new summary must fit beside)."""
    previous: LastCall | None = None
    """The thread's last recorded call, to name what breaks the prefix (`prefix_break`)."""


def prepare(
    ref: ThreadRef,
    *,
    model: str,
    max_tokens: int,
    defaults: tuple[CompactionPolicy, Summarizer],
    extra: object = None,
    tools: Tools | None = None,
    thinking: bool | None = None,
    reasoning_effort: str | None = None,
    low_water: float = LOW_WATER,
    compaction: CompactionPolicy | None = None,
    summarizer: Summarizer | None = None,
) -> Steps[Prompt]:
    """Assemble the prompt for the next call (see the module docstring for the rules).

    Compacts first when the prompt would pass the policy's high-water mark (`defaults`, the
    store's policy and summarizer, unless given; `CompactionPolicy(enabled=False)` turns it
    off). If the summarizer fails, the thread stays as it was and the cut point keeps the
    prompt within budget, with a `CompactionWarning`.

    Raises `ContextOverflowError` when even the newest turn cannot fit beside the fixed part
    and `max_tokens`, and `ValidationError` when a tool call still waits for its result.
    """
    low_water = check_fraction(low_water, "low_water")
    if compaction is not None and not isinstance(compaction, CompactionPolicy):
        raise ValidationError(
            f"compaction must be a CompactionPolicy, got {type(compaction).__name__}"
        )
    if summarizer is not None and not isinstance(summarizer, Summarizer):
        raise ValidationError(
            "summarizer must have a summarize(messages, ...) method, got "
            f"{type(summarizer).__name__}"
        )
    request = Request.create(
        spec_for(model), max_tokens, extra, tools, thinking, reasoning_effort, low_water
    )
    policy = compaction if compaction is not None else defaults[0]
    attempted = not policy.enabled
    compacted = False
    extra_weight = request.extra_weight
    for _ in range(5):
        snap = yield from steps.read(
            partial(
                read_snapshot,
                ref=ref,
                request=request,
                extra_weight=extra_weight,
                allow_cut=attempted,
                compact_at=None if attempted else policy.high_water,
            ),
        )
        budget = snap.thread.max_context_tokens - max_tokens
        if not attempted:
            attempted = True
            if snap.pressure > policy.high_water * budget:
                if snap.compactable:
                    # the summary must leave the prompt below the high-water mark, or the
                    # next build compacts again (rare, large steps)
                    room = int(budget * policy.high_water) - snap.floor
                    room -= int(budget * policy.keep_recent)
                    compacted = yield from _compact(
                        ref,
                        summarizer or defaults[1],
                        policy,
                        max_tokens,
                        max(room, 16),
                        before=snap.thread.summary_n,
                    )
                continue
        prompt, calibrated = assemble(snap, request, compacted=compacted)
        if prompt is not None:
            if snap.moved:
                yield from steps.write(
                    partial(threads.move_cut, pk=ref.pk, start=snap.window_start)
                )
                _warn_steps_left(ref, snap)
            return prompt
        if len(snap.live) <= 1:
            raise _overflow(calibrated, budget, max_tokens)
        # the stored weights said it fits (or a cut did not go far enough): weigh the fixed
        # part so that the next read sees the exact overshoot and cuts
        extra_weight += calibrated - min(snap.pressure, budget)
    raise _overflow(calibrated, budget, max_tokens)


def check_turn(
    ref: ThreadRef,
    message: Message,
    *,
    model: str,
    max_tokens: int,
    extra: object = None,
    tools: Tools | None = None,
    thinking: bool | None = None,
    reasoning_effort: str | None = None,
    low_water: float = LOW_WATER,
) -> Steps[None]:
    """Raise now what `prepare` would raise once `message` opens a new turn; write nothing.

    A send checks this before storing its user message, so a send that cannot be made
    leaves no orphan message behind: the options, a tool call still waiting for its result,
    `max_tokens` against the window, and the smallest prompt the turn can have (the fixed
    part and `message`, counted exactly as `assemble` counts it).
    """
    low_water = check_fraction(low_water, "low_water")
    request = Request.create(
        spec_for(model), max_tokens, extra, tools, thinking, reasoning_effort, low_water
    )

    def read(conn: Any) -> Snapshot:
        state, pinned, summary = _fixed_part(conn, ref, request)
        live: tuple[Replayed, ...] = ((message, False, None),)
        structure = _structure(state, pinned, summary, live, request)
        correction = calls.correction(conn, request.spec.name, structure)
        return Snapshot(
            state, tuple(pinned), live, state.window_start, False, correction, summary, 0,
            structure,
        )  # fmt: skip

    snap = yield from steps.read(read)
    prompt, calibrated = assemble(snap, request)
    if prompt is None:
        budget = snap.thread.max_context_tokens - request.max_tokens
        raise _overflow(calibrated, budget, request.max_tokens)


def _warn_steps_left(ref: ThreadRef, snap: Snapshot) -> None:
    """Say so when a moved cut drops steps of the current turn that no summary covers."""
    turn, old = snap.thread.turn_seq, snap.thread.window_start
    if turn < 1 or snap.window_start <= turn:
        return
    first = max(old, turn + 1)
    if first >= snap.window_start:  # only messages before the turn left
        return
    warnings.warn(
        f"messages {first}..{snap.window_start - 1} of the current turn of thread {ref.id!r} "
        f"(opened by message {turn}, which stays in the prompt) left the prompt with no "
        "summary covering them (compaction is off, failed, or could not fold them); they stay "
        "stored",
        CompactionWarning,
        stacklevel=8,
    )


def _overflow(needed: int, budget: int, max_tokens: int) -> ContextOverflowError:
    return ContextOverflowError(
        f"the prompt needs {needed:,} tokens but only {budget:,} fit beside max_tokens="
        f"{max_tokens:,}; raise max_context_tokens, lower max_tokens, or shorten the newest "
        "message (or the system prompt, pinned messages, extra)",
        needed=needed,
        budget=budget,
    )


def _extra_messages(extra: object) -> list[Message]:
    if extra is None:
        return []
    if isinstance(extra, str):
        return [Message(role=Role.SYSTEM, content=extra)]
    if isinstance(extra, (Mapping, Message)):
        extra = [extra]
    if not isinstance(extra, Sequence):
        raise ValidationError(
            f"extra must be a string, a message or a list of messages, got {type(extra).__name__}"
        )
    out = [Message.parse(m) for m in extra]
    for m in out:
        if m.role is Role.TOOL or m.tool_calls:
            raise ValidationError("extra cannot hold tool calls or tool results")
    return out


@lru_cache(maxsize=256)
def _system_tokens(spec: ModelSpec, system: str, thinking: bool) -> int:
    return message_tokens({"role": "system", "content": system}, spec, thinking=thinking)


def fixed_weight(
    state: ThreadState,
    pinned: Sequence[Replayed],
    summary: Summary | None,
    request: Request,
    extra_weight: int,
) -> int:
    """Window weight of the fixed part: system prompt, pinned messages, summary, extra."""
    fixed = extra_weight + sum((m.token_count or 0) + PAD for m, _, _ in pinned)
    if state.system:
        fixed += _system_tokens(request.spec, state.system, request.thinking) + PAD
    if summary is not None:
        fixed += summary.token_count + PAD
    return fixed


def cut_threshold(cum_weight: int, budget: int, low_water: float, fixed: int) -> int:
    """The `cum_before` a new cut point must reach so the live part drops to the low water."""
    return cum_weight - max(int(budget * low_water) - fixed, 0)


def _fixed_part(
    conn: Any, ref: ThreadRef, request: Request
) -> tuple[ThreadState, list[Replayed], Summary | None]:
    """The thread row, its pinned messages and its summary, once the thread can take a
    prompt: no tool call waits for its result and `max_tokens` leaves room."""
    state = threads.locked(conn, ref)
    max_tokens = request.max_tokens
    if state.pending_calls:
        ids = cut.unanswered(conn, state.pk)
        raise ValidationError(
            f"tool call(s) {', '.join(repr(i) for i in ids)} have no tool result yet; append a "
            "{'role': 'tool', 'tool_call_id': ..., 'content': ...} message for each before "
            "building the next prompt"
        )
    if max_tokens >= state.max_context_tokens:
        raise ContextOverflowError(
            f"max_tokens={max_tokens:,} leaves no room for a prompt in this thread's "
            f"max_context_tokens={state.max_context_tokens:,}",
            needed=max_tokens,
            budget=state.max_context_tokens,
        )
    pinned = cut.pinned(conn, state.pk)
    return state, pinned, summaries.latest(conn, state.pk, state.summary_n)


def read_snapshot(
    conn: Any,
    *,
    ref: ThreadRef,
    request: Request,
    extra_weight: int,
    allow_cut: bool = True,
    compact_at: float | None = None,
) -> Snapshot:
    """Read what the prompt is made of, moving the cut point (in memory) if it must move."""
    state, pinned, summary = _fixed_part(conn, ref, request)
    budget = state.max_context_tokens - request.max_tokens
    fixed = fixed_weight(state, pinned, summary, request, extra_weight)
    start = state.window_start
    moved = False
    task = _anchor(conn, state, start)
    if task is not None:
        fixed += _weight(task)  # anchored: the window starts inside the task's turn
    pressure = fixed + cut.live_weight(conn, state, start)
    if compact_at is not None and pressure > compact_at * budget:
        # The caller compacts and looks again: do not read a window about to be replaced
        # (after a bulk import it would be the whole history). When even the newest turn
        # beside the fixed part overflows, no summary can help: the caller must not write one.
        floor = fixed - (summary.token_count + PAD if summary is not None else 0)
        last = cut.last_boundary(conn, state, start)
        tail = cut.live_weight(conn, state, start if last is None else last)
        if last is not None and state.turn_seq >= start and last > state.turn_seq:
            tail += _weight(_task(conn, state))  # a fold inside the turn keeps the task
        return Snapshot(
            state, tuple(pinned), (), start, False, 0, summary, pressure,
            compactable=floor + tail <= budget, floor=floor,
        )  # fmt: skip
    if allow_cut and pressure > budget:
        threshold = cut_threshold(state.cum_weight, budget, request.low_water, fixed)
        new = cut.cut_point(conn, state, start, threshold)
        if new is not None and new > state.turn_seq >= start:
            task = _task(conn, state)  # the cut enters the current turn: its task stays
            threshold = cut_threshold(
                state.cum_weight, budget, request.low_water, fixed + _weight(task)
            )
            new = cut.cut_point(conn, state, start, threshold)
        if new is not None and new != start:
            start, moved = new, True
    live = cut.live(conn, state.pk, start)
    if moved:
        task = _anchor(conn, state, start)
    if task is not None:
        live.insert(0, task)
    structure = _structure(state, pinned, summary, live, request)
    correction = calls.correction(conn, request.spec.name, structure)
    return Snapshot(
        state, tuple(pinned), tuple(live), start, moved, correction, summary, pressure, structure,
        previous=calls.last_call(conn, state.pk),
    )  # fmt: skip


def _task(conn: Any, state: ThreadState) -> Replayed | None:
    """The user message that opened the current turn (invariant 7: always in the prompt)."""
    if state.turn_seq < 1:
        return None
    task = cut.at(conn, state.pk, state.turn_seq)
    return task if task is not None and not task[0].pinned else None


def _anchor(conn: Any, state: ThreadState, start: int) -> Replayed | None:
    """The user message that opened the turn the window starts inside, if it starts inside
    one: the current turn's (invariant 7), or an earlier turn's that the window started
    inside before a new turn began (it stays until the cut moves, so the prompt keeps
    extending the previous one)."""
    if state.turn_seq < start:
        return _task(conn, state)
    opener = cut.opener(conn, state.pk, start)
    if opener is None or opener == start:
        return None
    found = cut.at(conn, state.pk, opener)
    return found if found is not None and not found[0].pinned else None


def _weight(message: Replayed | None) -> int:
    return 0 if message is None else (message[0].token_count or 0) + PAD


def _structure(
    state: ThreadState,
    pinned: Sequence[Replayed],
    summary: Summary | None,
    live: Sequence[Replayed],
    request: Request,
) -> str:
    roles = (["system"] if state.system else []) + [m.role.value for m, _, _ in pinned]
    roles += ["system"] if summary is not None else []
    roles += [m.role.value for m, _, _ in live]
    roles += [m.role.value for m in request.extras]
    return prompt_structure(
        [MessageShape(role) for role in roles],
        tools=bool(request.tools),
        thinking=request.thinking,
        reasoning_effort=request.effort,
    )


def assemble(
    snap: Snapshot, request: Request, *, compacted: bool = False
) -> tuple[Prompt | None, int]:
    """The prompt of `snap` if it fits its budget (else None), and its calibrated count.

    The count is the model template's count of exactly these messages, `tools`, thinking
    mode and effort: what the provider renders and bills (`count_messages`).
    """
    spec = request.spec
    transcript = request.thinking and spec.reasoning_replay is ReasoningReplay.TOOL_TURNS
    forms, seqs = layout(snap, request.thinking, transcript=transcript)
    forms += request.extra_forms
    total = spec.template.count(
        forms,
        spec.tokenizer,
        tools=request.tools,
        thinking=request.thinking,
        reasoning_effort=request.effort,
        image_limits=spec.image_limits,
    )
    calibrated = total + Calibration.headroom(snap.correction)
    budget = snap.thread.max_context_tokens - request.max_tokens
    if calibrated > budget:
        return None, calibrated
    prompt = Prompt(
        messages=tuple(forms),
        model=spec.name,
        api_model=spec.api_model,
        max_tokens=request.max_tokens,
        budget=budget,
        prompt_tokens=total,
        calibrated_tokens=calibrated,
        structure=snap.structure,
        thinking=request.thinking,
        reasoning_effort=request.effort,
        window_start=snap.window_start,
        moved=snap.moved or compacted,
        seqs=(*seqs, *(None for _ in request.extras)),
        last_seq=snap.thread.last_seq,
        sections=(
            1 if snap.thread.system else 0,
            len(snap.pinned),
            1 if snap.summary is not None else 0,
            len(snap.live),
            len(request.extras),
        ),
        tools=request.tools,
        tools_digest=request.tools_digest,
        prefix_break=prefix_break(snap, request),
    )
    return prompt, calibrated


_MODES = frozenset({"think", "chat", "low", "high", "max"})


def _mode(structure: str, spec: ModelSpec) -> frozenset[str]:
    """The mode features of a prompt structure, with the effort the template applies when
    none is asked for (the GA encoder renders thinking without an effort as `high`)."""
    features = _MODES & set(structure.split("+"))
    ga = getattr(spec.template, "generation", None) == "ga"
    if ga and "think" in features and not features & {"low", "high", "max"}:
        features |= {"high"}
    return features


def prefix_break(snap: Snapshot, request: Request) -> str | None:
    """Why this prompt will not start with the previous call's prompt, if it will not.

    `tools`: the declared tool set changed (DeepSeek renders it into the system prompt, so
    every earlier turn renders anew); `mode`: thinking or effort changed; `window`: the
    window starts elsewhere (a compaction or a moved cut point); `reasoning`: a message the
    previous call sent is now sent in another form (thinking mode), because a later message
    of its turn made a tool call (the message replays its reasoning now) or, in a tool turn,
    came without reasoning (the turn goes as a transcript now). None: the prefix extends.
    """
    last = snap.previous
    if last is None:
        return None
    if last.tools_digest is not None and last.tools_digest != request.tools_digest:
        return "tools"
    if last.structure is not None and _mode(last.structure, request.spec) != _mode(
        snap.structure, request.spec
    ):
        return "mode"
    if last.window_start is not None and last.window_start != snap.window_start:
        return "window"
    if last.reasoning_gained and request.thinking:
        return "reasoning"
    return None


def layout(
    snap: Snapshot, thinking: bool, *, transcript: bool = False
) -> tuple[list[dict[str, Any]], list[int | None]]:
    """The stored part of the prompt in order (each message in its replay form), and seqs.

    Reasoning is sent on the messages whose replay form keeps it (tool-call turns), and only
    in thinking mode; the summary goes after the pinned messages. `transcript`: tool turns
    stored without their reasoning go as text (`formats.transcript`), which thinking-mode
    DeepSeek requires.
    """
    forms: list[dict[str, Any]] = []
    seqs: list[int | None] = []
    if snap.thread.system:
        forms.append({"role": "system", "content": snap.thread.system})
        seqs.append(None)
    for i, (message, kept, _) in enumerate((*snap.pinned, *snap.live)):
        if i == len(snap.pinned) and snap.summary is not None:
            forms.append(snap.summary.to_message())
            seqs.append(None)
        forms.append(message.to_openai(reasoning=kept and thinking))
        seqs.append(message.seq)
    if snap.summary is not None and not snap.live:
        forms.append(snap.summary.to_message())
        seqs.append(None)
    if transcript:
        forms = transcribe_turns(forms, 0)
    return forms, seqs


def _compact(
    ref: ThreadRef,
    summarizer: Summarizer,
    policy: CompactionPolicy,
    max_tokens: int,
    room: int,
    *,
    before: int,
) -> Steps[bool]:
    """Compact now, the summary within `room`; on a summarizer failure warn: the thread is
    as it was, but for the chunks of a long backlog already folded (kept: resumable).
    `before` is the thread's summary count as the snapshot read it."""
    try:
        summary = yield from compact(
            ref, summarizer=summarizer, policy=policy, max_tokens=max_tokens, summary_room=room
        )
    except (PermissionDenied, NotFound):
        raise
    except Exception as exc:
        after = yield from _summary_n(ref)
        kept = (
            f"the {after - before} summaries of its first chunks, committed before, stay (the "
            "next compaction goes on from there); the rest of the thread is unchanged"
            if after > before
            else "the thread is unchanged"
        )
        warnings.warn(
            f"compaction of thread {ref.id!r} failed ({type(exc).__name__}: {exc}); {kept}, "
            "and this prompt drops its oldest turns instead",
            CompactionWarning,
            stacklevel=8,
        )
        return False
    return summary is not None


def _summary_n(ref: ThreadRef) -> Steps[int]:
    state = yield from steps.read(partial(threads.locked, ref=ref))
    return state.summary_n
