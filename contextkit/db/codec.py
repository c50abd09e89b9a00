"""Conversion between `Message` values and message rows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contextkit.types import FunctionCall, ImagePart, Message, TextPart, ToolCall

__all__ = ["MESSAGE_COLUMNS", "message_from_row", "message_to_row"]

MESSAGE_COLUMNS = (
    "seq",
    "role",
    "name",
    "content",
    "parts",
    "tool_calls",
    "tool_call_id",
    "reasoning_content",
    "token_count",
    "pinned",
    "created_at",
)


def message_to_row(message: Message) -> dict[str, Any]:
    """The column values of a message (without thread, seq and bookkeeping columns)."""
    content = message.content
    return {
        "role": message.role.value,
        "name": message.name,
        "content": content if isinstance(content, str) else None,
        "parts": [p.to_openai() for p in content] if isinstance(content, tuple) else None,
        "tool_calls": [c.to_openai() for c in message.tool_calls] or None,
        "tool_call_id": message.tool_call_id,
        "reasoning_content": message.reasoning_content,
        "pinned": message.pinned,
    }


def message_from_row(row: Mapping[Any, Any]) -> Message:
    """Rebuild the `Message` a row stores (rows were validated on the way in)."""
    parts = row["parts"]
    content: Any = row["content"]
    if parts is not None:
        content = tuple(
            TextPart(p["text"])
            if p["type"] == "text"
            else ImagePart(p["image_url"]["url"], p["image_url"].get("detail"))
            for p in parts
        )
    calls = tuple(
        ToolCall(
            id=c["id"],
            function=FunctionCall(c["function"]["name"], c["function"]["arguments"]),
        )
        for c in row["tool_calls"] or ()
    )
    return Message(
        role=row["role"],
        content=content,
        name=row["name"],
        tool_calls=calls,
        tool_call_id=row["tool_call_id"],
        reasoning_content=row["reasoning_content"],
        seq=row["seq"],
        pinned=bool(row["pinned"]),
        token_count=row["token_count"],
        created_at=row["created_at"],
    )
