"""What a test scripts and reads back: replies, tool calls, faults and the request log.

Plain frozen values checked on construction, so a bad script fails where it is written
rather than inside a request thread.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from attrs import Attribute, define, field, frozen

from contextkit.errors import ValidationError

__all__ = [
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "ScriptedReply",
    "ScriptedToolCall",
]


def _str(_: object, attribute: Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise ValidationError(f"{attribute.name} must be a string, got {value!r:.40}")


def _opt_str(_: object, attribute: Attribute[str | None], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"{attribute.name} must be a string or None, got {value!r:.40}")


def _arguments(value: object) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"tool call arguments must be JSON-serializable: {exc}") from None


@frozen
class ScriptedToolCall:
    """One scripted function call; `arguments` is the JSON text the model emits.

    `id=None` lets the server assign the next `call_<n>`.
    """

    name: str = field(validator=_str)
    arguments: str = field(default="{}", converter=_arguments)
    id: str | None = field(default=None, validator=_opt_str)


def _tool_call(value: object) -> ScriptedToolCall:
    if isinstance(value, ScriptedToolCall):
        return value
    if isinstance(value, Mapping):
        function = value.get("function")
        source = function if isinstance(function, Mapping) else value
        name = source.get("name")
        if not isinstance(name, str):
            raise ValidationError(f"a tool call needs a string 'name', got {value!r:.80}")
        call_id = value.get("id")
        return ScriptedToolCall(name, source.get("arguments", "{}"), call_id)
    if isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], str):
        return ScriptedToolCall(value[0], value[1])
    raise ValidationError(
        f"a tool call is a ScriptedToolCall, a (name, arguments) pair or a dict, got {value!r:.80}"
    )


def _tool_calls(value: Iterable[object]) -> tuple[ScriptedToolCall, ...]:
    return tuple(_tool_call(v) for v in value)


@frozen
class ScriptedReply:
    """A scripted model answer, consumed by one successful chat completion.

    In thinking mode `reasoning=None` gets the default reasoning text (use "" for none); out
    of thinking mode reasoning is never sent. `finish_reason` overrides the natural one
    ("stop", or "tool_calls" when there are calls); truncation by `max_tokens` still wins.
    """

    content: str = field(default="", validator=_str)
    reasoning: str | None = field(default=None, validator=_opt_str)
    tool_calls: tuple[ScriptedToolCall, ...] = field(default=(), converter=_tool_calls)
    finish_reason: str | None = field(default=None, validator=_opt_str)


FaultKind = Literal["status", "drop", "drop_mid_stream"]


@frozen
class Fault:
    """An injected failure for the next chat requests, see `DeepSeekServer.fail`."""

    kind: FaultKind
    status: int = 429
    retry_after: float | None = 0.0
    message: str | None = None
    after: int | None = None
    """For `drop_mid_stream` on a stream: how many SSE events go out before the cut (a slice
    bound: -1 sends all but the usage chunk); None cuts halfway."""


@define
class _QueuedFault:
    fault: Fault
    left: int


@frozen
class RecordedRequest:
    """One chat request as the server saw it, and what it answered.

    `body` is the parsed JSON (None if it was not JSON); `status` is None when the
    connection was dropped before a status line; `usage` is the usage of a completion.
    """

    path: str
    body: Any
    status: int | None
    usage: dict[str, Any] | None = None
    stream: bool = False
    fault: FaultKind | None = None


_FAULT_KEYS = frozenset({"status", "times", "retry_after", "drop", "drop_mid_stream", "message"})
_REPLY_KEYS = frozenset({"content", "reasoning", "tool_calls", "finish_reason"})


def parse_script(entries: object) -> list[ScriptedReply | dict[str, Any]]:
    """Script entries from JSON values (the `--script` file, `POST /_script`), in order.

    An entry is a reply, `{"content", "reasoning", "tool_calls", "finish_reason"}` (any
    subset, as `ScriptedReply`), or a fault, `{"fault": {"status", "times", "retry_after",
    "drop", "drop_mid_stream", "message"}}` (the arguments of `DeepSeekServer.fail`). Faults
    come back as those keyword arguments; `DeepSeekServer.fail` checks their values.
    """
    items = entries if isinstance(entries, list) else [entries]
    out: list[ScriptedReply | dict[str, Any]] = []
    for n, entry in enumerate(items, 1):
        if not isinstance(entry, Mapping):
            raise ValidationError(f"script entry {n} must be a JSON object, got {entry!r:.60}")
        if set(entry) == {"fault"}:
            fault = entry["fault"]
            if not isinstance(fault, Mapping) or not set(fault) <= _FAULT_KEYS:
                raise ValidationError(
                    f"script entry {n}: a fault is an object with keys among "
                    f"{sorted(_FAULT_KEYS)}, got {fault!r:.80}"
                )
            out.append(dict(fault))
            continue
        unknown = set(entry) - _REPLY_KEYS
        if unknown or not entry:
            raise ValidationError(
                f"script entry {n}: a reply has keys among {sorted(_REPLY_KEYS)} and a fault "
                f"is {{'fault': {{...}}}}; got keys {sorted(map(str, entry))}"
            )
        try:
            out.append(ScriptedReply(**entry))
        except (TypeError, ValidationError) as exc:
            raise ValidationError(f"script entry {n}: {exc}") from None
    return out


def read_script(text: str) -> list[Any]:
    """The entries of a script file (one JSON array or object, or JSON lines, one entry a
    line) as JSON values for `DeepSeekServer.load_script`; checked with `parse_script`."""
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError:
        pass
    else:
        values = loaded if isinstance(loaded, list) else [loaded]
        parse_script(values)
        return values
    values = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                values.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValidationError(f"line {n} is not JSON ({exc.msg})") from None
    parse_script(values)
    return values
