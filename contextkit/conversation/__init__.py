"""`Conversation` / `AsyncConversation`: one call to the model on a persisted thread.

`send()` appends the user message, builds the prompt (compacting when due), calls
`client.chat.completions.create`, and records the reply with its usage and cost. `run()`
loops over tool calls until the model answers. Retries are the openai SDK's own
(`max_retries`, backoff, `Retry-After`); the user message is appended once, before the call,
so a retried or failed call never duplicates it, and the thread stays valid for the next one.
A stream records nothing unless it completes.

Modules: `reply` (the values handed back), `tools` (describing and running tools),
`streaming` (streamed replies), `base` (every decision, shared), `client` (the two twins,
which only do I/O).
"""

from contextkit.conversation.client import AsyncConversation, Conversation
from contextkit.conversation.reply import Delta, Reply
from contextkit.conversation.streaming import AsyncReplyStream, ReplyStream
from contextkit.conversation.tools import tool_schema
from contextkit.errors import LengthWarning

__all__ = [
    "AsyncConversation",
    "AsyncReplyStream",
    "Conversation",
    "Delta",
    "LengthWarning",
    "Reply",
    "ReplyStream",
    "tool_schema",
]
