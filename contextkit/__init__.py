"""contextkit: persistent conversation context for LLM applications.

Stores multi-turn threads (SQLite or PostgreSQL) and builds, for every model call, the
message list an OpenAI-compatible chat API gets: within the token budget, with reasoning
replayed only where the provider requires it, and with cache-friendly stable prefixes.

Names are imported on first access (PEP 562): `import contextkit` itself loads no database
driver, HTTP client, image library or tokenizer; `contextkit.open`, `contextkit.Conversation`
... import what they need when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contextkit._sdk import Usage
    from contextkit.conversation import (
        AsyncConversation,
        AsyncReplyStream,
        Conversation,
        Delta,
        Reply,
        ReplyStream,
        tool_schema,
    )
    from contextkit.counting import count_messages, count_tokens, render_prompt
    from contextkit.errors import (
        AsyncOnlyError,
        CacheWarning,
        CompactionWarning,
        ContextKitError,
        ContextOverflowError,
        ImageError,
        LengthWarning,
        NotFound,
        NotFoundError,
        PermissionDenied,
        PermissionDeniedError,
        StoreError,
        UnknownModelError,
        ValidationError,
    )
    from contextkit.models import ModelSpec, Prices, get_model, known_models, register_model
    from contextkit.policy import CompactionPolicy
    from contextkit.prompt import Prompt
    from contextkit.recall import RecallTool, SearchHit, recall_tool
    from contextkit.store import AsyncStore, Store, open, open_async
    from contextkit.summarizers import (
        AsyncLLMSummarizer,
        ExtractiveSummarizer,
        LLMSummarizer,
        Summarizer,
        Summary,
        SummaryResult,
    )
    from contextkit.thread import AsyncThread, Thread
    from contextkit.tokens.calibration import Calibration
    from contextkit.tokens.image_tokens import image_tokens
    from contextkit.types import (
        FunctionCall,
        ImagePart,
        Message,
        Role,
        TextPart,
        ThreadInfo,
        ToolCall,
    )
    from contextkit.usage import Stats

__all__ = [
    "AsyncConversation",
    "AsyncLLMSummarizer",
    "AsyncOnlyError",
    "AsyncReplyStream",
    "AsyncStore",
    "AsyncThread",
    "CacheWarning",
    "Calibration",
    "CompactionPolicy",
    "CompactionWarning",
    "ContextKitError",
    "ContextOverflowError",
    "Conversation",
    "Delta",
    "ExtractiveSummarizer",
    "FunctionCall",
    "ImageError",
    "ImagePart",
    "LLMSummarizer",
    "LengthWarning",
    "Message",
    "ModelSpec",
    "NotFound",
    "NotFoundError",
    "PermissionDenied",
    "PermissionDeniedError",
    "Prices",
    "Prompt",
    "RecallTool",
    "Reply",
    "ReplyStream",
    "Role",
    "SearchHit",
    "Stats",
    "Store",
    "StoreError",
    "Summarizer",
    "Summary",
    "SummaryResult",
    "TextPart",
    "Thread",
    "ThreadInfo",
    "ToolCall",
    "UnknownModelError",
    "Usage",
    "ValidationError",
    "count_messages",
    "count_tokens",
    "get_model",
    "image_tokens",
    "known_models",
    "open",
    "open_async",
    "recall_tool",
    "register_model",
    "render_prompt",
    "tool_schema",
]

_EXPORTS: dict[str, str] = {
    "Usage": "contextkit._sdk",
    "AsyncConversation": "contextkit.conversation",
    "AsyncReplyStream": "contextkit.conversation",
    "Conversation": "contextkit.conversation",
    "Delta": "contextkit.conversation",
    "Reply": "contextkit.conversation",
    "ReplyStream": "contextkit.conversation",
    "tool_schema": "contextkit.conversation",
    "count_messages": "contextkit.counting",
    "count_tokens": "contextkit.counting",
    "render_prompt": "contextkit.counting",
    "AsyncOnlyError": "contextkit.errors",
    "CacheWarning": "contextkit.errors",
    "CompactionWarning": "contextkit.errors",
    "ContextKitError": "contextkit.errors",
    "ContextOverflowError": "contextkit.errors",
    "ImageError": "contextkit.errors",
    "LengthWarning": "contextkit.errors",
    "NotFound": "contextkit.errors",
    "NotFoundError": "contextkit.errors",
    "PermissionDenied": "contextkit.errors",
    "PermissionDeniedError": "contextkit.errors",
    "StoreError": "contextkit.errors",
    "UnknownModelError": "contextkit.errors",
    "ValidationError": "contextkit.errors",
    "ModelSpec": "contextkit.models",
    "Prices": "contextkit.models",
    "get_model": "contextkit.models",
    "known_models": "contextkit.models",
    "register_model": "contextkit.models",
    "CompactionPolicy": "contextkit.policy",
    "Prompt": "contextkit.prompt",
    "RecallTool": "contextkit.recall",
    "SearchHit": "contextkit.recall",
    "recall_tool": "contextkit.recall",
    "AsyncStore": "contextkit.store",
    "Store": "contextkit.store",
    "open": "contextkit.store",
    "open_async": "contextkit.store",
    "AsyncLLMSummarizer": "contextkit.summarizers",
    "ExtractiveSummarizer": "contextkit.summarizers",
    "LLMSummarizer": "contextkit.summarizers",
    "Summarizer": "contextkit.summarizers",
    "Summary": "contextkit.summarizers",
    "SummaryResult": "contextkit.summarizers",
    "AsyncThread": "contextkit.thread",
    "Thread": "contextkit.thread",
    "Calibration": "contextkit.tokens.calibration",
    "image_tokens": "contextkit.tokens.image_tokens",
    "FunctionCall": "contextkit.types",
    "ImagePart": "contextkit.types",
    "Message": "contextkit.types",
    "Role": "contextkit.types",
    "TextPart": "contextkit.types",
    "ThreadInfo": "contextkit.types",
    "ToolCall": "contextkit.types",
    "Stats": "contextkit.usage",
}
"""Where each public name lives: `contextkit.<name>` imports that module on first access."""


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    if not name.startswith("__"):  # `contextkit.db.engine` as when everything was eager
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
