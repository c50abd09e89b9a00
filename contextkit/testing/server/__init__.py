"""A local DeepSeek-compatible chat API, for tests and the demo.

A real HTTP server on 127.0.0.1 (stdlib `ThreadingHTTPServer` in a background thread) that the
openai SDK talks to unchanged: `OpenAI(base_url=srv.base_url, api_key="test")`.

    with serve() as srv:
        srv.script(ScriptedReply("Paris."))
        client.chat.completions.create(model="deepseek-v4-flash", messages=[...])

It answers `GET /models` and `POST /chat/completions` (also under `/v1`), streaming or not,
and behaves like DeepSeek's API wherever client code depends on it:

* usage is exact for contextkit's template: `prompt_tokens` is the token count of
  `render_prompt(...)` (= `count_messages`), the prompt-cache split comes from a
  `PrefixCacheModel` per model fed every served prompt and completion, and completion tokens
  are the reasoning + content + tool-call text;
* thinking is on unless `"thinking": {"type": "disabled"}`; replies then carry
  `reasoning_content`;
* HTTP 400 (DeepSeek's error body) for a prompt + `max_tokens` over the window, retired or
  unknown model ids, tool messages without their call (or calls without their results), bad
  images, and, in thinking mode, a tool-call turn replayed without its `reasoning_content`;
  422 for a body that is JSON but not a chat request;
* replies are scripted (`script`) or a deterministic echo; `max_tokens` truncates with
  `finish_reason="length"`; faults (`fail`) return 429/5xx with `Retry-After` or drop the
  connection, before or in the middle of the response.

The package is split by job: `script` (the values a test scripts and reads back),
`validation` (what the API accepts), `completion` (what it answers and bills), `http` (the
transport), `app` (`DeepSeekServer`, `serve`) and `cli` (`main`).

`Reply` and `ToolCall` are the former names of `ScriptedReply` and `ScriptedToolCall`
(they clashed with `contextkit.Reply` and `contextkit.ToolCall`); the aliases are kept for
one release.
"""

from contextkit.testing.server.app import DeepSeekServer, serve
from contextkit.testing.server.cli import main
from contextkit.testing.server.http import MAX_BODY_BYTES
from contextkit.testing.server.script import (
    Fault,
    FaultKind,
    RecordedRequest,
    ScriptedReply,
    ScriptedToolCall,
)
from contextkit.testing.server.validation import MODELS, REASONING_REQUIRED, RETIRED_MODELS

Reply = ScriptedReply
"""Deprecated alias of `ScriptedReply`, kept for one release."""

ToolCall = ScriptedToolCall
"""Deprecated alias of `ScriptedToolCall`, kept for one release."""

__all__ = [
    "MAX_BODY_BYTES",
    "MODELS",
    "REASONING_REQUIRED",
    "RETIRED_MODELS",
    "DeepSeekServer",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "Reply",
    "ScriptedReply",
    "ScriptedToolCall",
    "ToolCall",
    "main",
    "serve",
]
