"""Describing Python functions as tools, and running the tool calls a model makes.

A tool that raises, an unknown tool or arguments that are not a JSON object become an error
text the model sees (its next step can recover), never an exception in the caller.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias, get_type_hints

from contextkit.errors import ValidationError
from contextkit.types import ToolCall

__all__ = ["ToolFunctions", "tool_schema"]

_KINDS: dict[object, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
}

ToolFunctions: TypeAlias = Mapping[str, Callable[..., Any]]
"""The functions a model may call, by the name it calls them by."""


def tool_schema(fn: Callable[..., Any], name: str | None = None) -> dict[str, Any]:
    """An OpenAI tool schema from a Python function's signature, hints and docstring.

    Parameters without a default are required; hints map to JSON types (else "string").
    """
    if not callable(fn):
        raise ValidationError(f"tool_schema takes a function, got {type(fn).__name__}")
    hints = get_type_hints(fn)
    properties: dict[str, Any] = {}
    required = []
    for pname, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        hint = hints.get(pname, str)
        origin = getattr(hint, "__origin__", hint)
        properties[pname] = {"type": _KINDS.get(origin, "string")}
        if param.default is param.empty:
            required.append(pname)
    doc = inspect.getdoc(fn) or ""
    return {
        "type": "function",
        "function": {
            "name": name or fn.__name__,
            "description": doc.split("\n\n")[0],
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


def _schemas(tools: ToolFunctions) -> list[dict[str, Any]]:
    return [tool_schema(fn, name) for name, fn in tools.items()]


def _tool_target(
    tools: ToolFunctions, call: ToolCall
) -> tuple[Callable[..., Any], dict[str, Any]] | str:
    """The function and its kwargs for a tool call, or an error text for the model."""
    fn = tools.get(call.function.name)
    if fn is None:
        return f"Error: unknown tool {call.function.name!r}; available: {sorted(tools)}"
    try:
        args = json.loads(call.function.arguments or "{}")
    except json.JSONDecodeError as exc:
        return f"Error: arguments are not valid JSON ({exc.msg})"
    if not isinstance(args, dict):
        return "Error: arguments must be a JSON object"
    return fn, args


def _run_tool(tools: ToolFunctions, call: ToolCall) -> str:
    """The tool result text: its return value, or the error the model should see."""
    target = _tool_target(tools, call)
    if isinstance(target, str):
        return target
    fn, args = target
    try:
        return _as_text(fn(**args))
    except Exception as exc:  # the model should see what went wrong
        return _error_text(exc)


async def _arun_tool(tools: ToolFunctions, call: ToolCall) -> str:
    """`_run_tool` for plain or `async` tools; a plain tool runs in a worker thread, so a
    blocking one (file, HTTP, database) never holds the event loop."""
    target = _tool_target(tools, call)
    if isinstance(target, str):
        return target
    fn, args = target
    try:
        if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            type(fn).__call__  # an object with an async __call__ (AsyncRecallTool)
        ):
            return _as_text(await fn(**args))
        result = await asyncio.to_thread(functools.partial(fn, **args))  # off the loop
        return _as_text(await result if inspect.isawaitable(result) else result)
    except Exception as exc:
        return _error_text(exc)


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def _error_text(exc: BaseException) -> str:
    return f"Error: {type(exc).__name__}: {exc}"
