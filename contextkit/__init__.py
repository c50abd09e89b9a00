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
from contextkit.models import ModelSpec, get_model, known_models, register_model
from contextkit.store import Store, Thread, open
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
    "ContextKitError",
    "ContextOverflowError",
    "FunctionCall",
    "ImageError",
    "ImagePart",
    "Message",
    "ModelSpec",
    "NotFound",
    "PermissionDenied",
    "Role",
    "Store",
    "StoreError",
    "TextPart",
    "Thread",
    "ThreadInfo",
    "ToolCall",
    "UnknownModelError",
    "ValidationError",
    "get_model",
    "known_models",
    "open",
    "register_model",
]
