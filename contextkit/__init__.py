"""contextkit: persistent conversation context for LLM applications.

Stores multi-turn threads (SQLite or PostgreSQL) and builds, for every model call, the
message list an OpenAI-compatible chat API gets: within the token budget, with reasoning
replayed only where the provider requires it, and with cache-friendly stable prefixes.
"""

from contextkit.errors import (
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

__all__ = [
    "Calibration",
    "ContextKitError",
    "ContextOverflowError",
    "FunctionCall",
    "ImageError",
    "ImagePart",
    "Message",
    "ModelSpec",
    "NotFound",
    "PermissionDenied",
    "Prices",
    "Role",
    "Store",
    "StoreError",
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
]
