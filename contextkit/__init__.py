"""contextkit: persistent conversation context for LLM applications.

Stores multi-turn threads (SQLite or PostgreSQL) and builds, for every model call, the
message list an OpenAI-compatible chat API gets: within the token budget, with reasoning
replayed only where the provider requires it, and with cache-friendly stable prefixes.
"""

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
from contextkit.tokens import Calibration, image_tokens
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
