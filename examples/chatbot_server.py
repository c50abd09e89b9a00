"""A multi-user streaming chatbot: a FastAPI app on uvicorn, one stored thread per conversation.

    pip install "contextkit[async]" fastapi uvicorn
    python examples/chatbot_server.py --db sqlite:///chat.db --port 8000
    DEEPSEEK_API_KEY=sk-... python examples/chatbot_server.py --db postgresql+psycopg://...

Without `DEEPSEEK_API_KEY` the replies come from contextkit's local DeepSeek-compatible
server (it echoes), started in this process. The API:

    POST /chat/{conversation_id}   header X-User, body {"message": "..."}: the reply streamed
                                   as server-sent events, `delta` events of {"kind", "text"}
                                   then one `done` event with the stored reply's seq and usage
    GET  /conversations            the user's conversations
    GET  /conversations/{id}       its messages, and its stats: calls, cache hit ratio, cost
    GET  /health                   {"ok": true} once the store is open

    curl -N -H 'X-User: alice' -d '{"message": "Hi!"}' localhost:8000/chat/trip-1

The user from `X-User` is the thread's `owner=`, and thread ids are unique per owner: a
conversation id names one of this user's conversations, so another user's id reveals
nothing (404, or a new conversation of one's own when posting to it).
In a real app the user comes from your authentication, not from a header the client sets.

The endpoints are `async def` and use the async twins: `contextkit.open_async()` gives an
`AsyncStore` whose database work is awaited (aiosqlite / psycopg async) and never blocks the
event loop, and `AsyncConversation` on `openai.AsyncOpenAI` awaits the model. One
`AsyncStore` and one client are shared by every request (both are safe to share between the
tasks of one event loop); a thread handle and an `AsyncConversation` are made per request
(cheap, and a conversation is not meant to be shared between concurrent tasks).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from typing import Any

import openai
import uvicorn
from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

import contextkit

MODEL = "deepseek-v4-flash"
SYSTEM = (
    "You are the support assistant of Northwind Outfitters, an outdoor gear shop. "
    "Answer in two sentences at most. Orders ship in 2 business days; returns are free "
    "within 30 days; the warranty on tents and backpacks is 2 years; boots can be returned "
    "unworn only. Never reveal one customer's orders or messages to another customer."
)


class ChatRequest(BaseModel):
    message: str = Field(min_length=1, max_length=20_000)


def db_url(value: str) -> str:
    """A database URL as given, or a file path for an embedded SQLite database."""
    return value if "://" in value else f"sqlite:///{value}"


def sse(event: str, data: Any) -> str:
    """One server-sent event (the data is JSON on one line)."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def stats_of(thread: contextkit.AsyncThread) -> dict[str, Any]:
    st = await thread.stats()
    return {
        "messages": st.messages,
        "calls": st.calls,
        "prompt_tokens": st.prompt_tokens,
        "cache_hit_tokens": st.cache_hit_tokens,
        "cache_hit_ratio": round(st.cache_hit_ratio, 4),
        "cost_usd": st.cost_usd,
        "compactions": st.compactions,
        "window_start": st.window_start,
    }


def create_app(url: str, client: openai.AsyncOpenAI, *, max_tokens: int = 400) -> FastAPI:
    """The app: opens the store at `url` on startup, closes it on shutdown."""
    state: dict[str, contextkit.AsyncStore] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        async with await contextkit.open_async(url) as store:
            print(f"store: {store.url.render_as_string(hide_password=True)}", flush=True)
            state["store"] = store
            yield
        state.clear()
        print("store closed", flush=True)

    app = FastAPI(title="contextkit chatbot", lifespan=lifespan)

    async def user_thread(
        conversation_id: str, user: str | None, *, create: bool
    ) -> contextkit.AsyncThread:
        """The user's thread for this conversation, or the HTTP error that says why not."""
        if not user:
            raise HTTPException(401, "send the user id in the X-User header")
        store = state["store"]
        try:
            if create:
                return await store.thread(conversation_id, model=MODEL, owner=user, system=SYSTEM)
            return await store.get_thread(conversation_id, owner=user)
        except contextkit.NotFoundError:
            raise HTTPException(404, f"no conversation {conversation_id!r}") from None
        except contextkit.ValidationError as exc:
            raise HTTPException(422, str(exc)) from None

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": "store" in state}

    @app.post("/chat/{conversation_id}")
    async def chat(
        conversation_id: str, body: ChatRequest, x_user: str | None = Header(None)
    ) -> StreamingResponse:
        thread = await user_thread(conversation_id, x_user, create=True)
        # predict_cache=False: a Conversation made per request has no cache history to
        # predict from; the provider still reports the real hits, which are recorded.
        conv = contextkit.AsyncConversation(
            client, thread, max_tokens=max_tokens, predict_cache=False
        )
        try:  # appends the user message and opens the model's stream, before any byte is sent
            stream = await conv.send(body.message, stream=True, thinking=False)
        except contextkit.ValidationError as exc:
            raise HTTPException(422, str(exc)) from None
        except openai.APIError as exc:
            raise HTTPException(502, f"the model call failed: {exc}") from None

        async def events() -> AsyncIterator[str]:
            try:
                async with stream:  # a client that disconnects ends it: what arrived is stored
                    async for delta in stream:
                        yield sse("delta", {"kind": delta.kind, "text": delta.text})
            except Exception as exc:  # the stream broke off: what arrived is recorded
                yield sse("error", {"error": f"{type(exc).__name__}: {exc}"})
                return
            reply = stream.reply
            assert reply is not None  # a completed stream is recorded
            usage = reply.usage
            yield sse(
                "done",
                {
                    "seq": reply.message.seq,
                    "finish_reason": reply.finish_reason,
                    "prompt_tokens": usage.prompt_tokens if usage else None,
                    "cache_hit_tokens": usage.cache_hit_tokens if usage else None,
                    "cost_usd": reply.cost_usd,
                },
            )

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/conversations")
    async def conversations(x_user: str | None = Header(None)) -> list[dict[str, Any]]:
        if not x_user:
            raise HTTPException(401, "send the user id in the X-User header")
        try:
            threads = [t async for t in state["store"].threads(owner=x_user)]
        except contextkit.ValidationError as exc:
            raise HTTPException(422, str(exc)) from None
        return [{"id": t.id, "messages": (await t.info()).message_count} for t in threads]

    @app.get("/conversations/{conversation_id}")
    async def conversation(
        conversation_id: str, x_user: str | None = Header(None)
    ) -> dict[str, Any]:
        thread = await user_thread(conversation_id, x_user, create=False)
        messages = [
            {"seq": m.seq, "role": m.role.value, "content": m.text} async for m in thread.messages()
        ]
        return {
            "id": thread.id,
            "owner": thread.owner,
            "messages": messages,
            "stats": await stats_of(thread),
        }

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="A multi-user streaming chatbot server.")
    parser.add_argument("--db", default="chatbot.db", help="database URL or SQLite file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args()

    with ExitStack() as stack:
        if key := os.environ.get("DEEPSEEK_API_KEY"):
            client = openai.AsyncOpenAI(base_url="https://api.deepseek.com", api_key=key)
        else:
            from contextkit.testing.server import serve

            server = stack.enter_context(serve())
            print(f"No DEEPSEEK_API_KEY: using the local test server at {server.base_url}")
            client = openai.AsyncOpenAI(base_url=server.base_url, api_key="local")
        app = create_app(db_url(args.db), client)
        print(f"chatbot on http://{args.host}:{args.port}", flush=True)
        # SIGTERM (what a process manager sends) shuts down like Ctrl-C: uvicorn finishes the
        # open requests, the store is closed, and the process exits 0.
        signal.signal(signal.SIGTERM, signal.getsignal(signal.SIGINT))
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level="warning",
            access_log=args.access_log,
        )


if __name__ == "__main__":
    main()
