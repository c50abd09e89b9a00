"""contextkit: persistent conversation context for LLM applications.

Stores multi-turn threads (SQLite or PostgreSQL) and builds, for every model call, the
message list an OpenAI-compatible chat API gets: within the token budget, with reasoning
replayed only where the provider requires it, and with cache-friendly stable prefixes.
"""

from contextkit.compaction import (
    CompactionPolicy,
    ExtractiveSummarizer,
    LLMSummarizer,
    Summarizer,
    Summary,
)
from contextkit.conversation import AsyncConversation, Conversation, Reply, tool_schema
from contextkit.errors import (
    CompactionWarning,
    ContextKitError,
    ContextOverflowError,
    ImageError,
    NotFound,
    PermissionDenied,
    StoreError,
    UnknownModelError,
    ValidationError,
)
from contextkit.models import ModelSpec, Prices, get_model, known_models, register_model
from contextkit.store import Store, Thread, open
from contextkit.tokens import Calibration, count_messages, count_tokens, image_tokens
from contextkit.types import (
    FunctionCall,
    ImagePart,
    Message,
    Role,
    TextPart,
    ThreadInfo,
    ToolCall,
)
from contextkit.window import Prompt

__all__ = [
    "AsyncConversation",
    "Calibration",
    "CompactionPolicy",
    "CompactionWarning",
    "ContextKitError",
    "ContextOverflowError",
    "Conversation",
    "ExtractiveSummarizer",
    "FunctionCall",
    "ImageError",
    "ImagePart",
    "LLMSummarizer",
    "Message",
    "ModelSpec",
    "NotFound",
    "PermissionDenied",
    "Prices",
    "Prompt",
    "Reply",
    "Role",
    "Store",
    "StoreError",
    "Summarizer",
    "Summary",
    "TextPart",
    "Thread",
    "ThreadInfo",
    "ToolCall",
    "UnknownModelError",
    "ValidationError",
    "count_messages",
    "count_tokens",
    "get_model",
    "image_tokens",
    "known_models",
    "open",
    "register_model",
    "tool_schema",
]
