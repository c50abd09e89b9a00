"""`contextkit demo`: a scripted conversation against the local DeepSeek-compatible server.

Chat turns, an image, a tool loop in thinking mode and enough turns for a compaction, on a
real SQLite file through the real openai SDK over HTTP: no API key, no network.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from attrs import frozen

__all__ = ["DemoCall", "run_demo"]

_QUESTIONS = [
    "Hi! I'm Ada Lovelace and my order number is 4711. It hasn't arrived yet.",
    "I prefer email updates over phone calls, please.",
    "What does the parcel look like in this photo?",
    "Where is my parcel right now? Please check the tracking system.",
    "Can you also remind me what the return policy is for damaged items?",
    "How long do refunds usually take to show up on a credit card?",
    "Is there any way to change the delivery address while it is in transit?",
    "What if nobody is home when the courier arrives?",
    "Could you summarize what we have discussed so far?",
    "Do you remember my order number and how I want to be contacted?",
    "Thanks. One more: can I get the invoice as a PDF?",
    "And what are your support hours on weekends?",
    "Great, that's all for today. Have a nice evening!",
]


@frozen
class DemoCall:
    """One row of the demo's call table."""

    n: int
    kind: str
    prompt_tokens: int
    cache_hit_tokens: int
    completion_tokens: int
    cost_usd: float
    compacted: bool


def _photo() -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (640, 480), (235, 225, 200))
    draw = ImageDraw.Draw(image)
    draw.rectangle((180, 140, 460, 360), fill=(170, 120, 70), outline=(90, 60, 30), width=6)
    draw.line((180, 250, 460, 250), fill=(240, 240, 240), width=12)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def track(order: str) -> dict[str, str]:
    """Look up a parcel's tracking status."""
    return {"order": order, "status": "in transit", "location": "Leeds depot"}


def run_demo(
    url: str | None = None, *, on_call: Callable[[DemoCall], None] | None = None
) -> tuple[Any, list[DemoCall]]:
    """Run the scripted conversation; returns the thread's stats and the calls made."""
    import openai

    import contextkit
    from contextkit.testing.server import ScriptedReply, ScriptedToolCall, serve

    if url is None:
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='contextkit-demo-')) / 'demo.db'}"
    store = contextkit.open(url)
    calls: list[DemoCall] = []
    with serve() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="demo", max_retries=3)
        thread = store.thread(
            f"demo-{len(list(store.threads(owner='demo'))) + 1}",
            model="deepseek-v4-flash",
            owner="demo",
            system="You are a friendly support agent for a parcel delivery company.",
            max_context_tokens=1_600,
        )
        conv = contextkit.Conversation(client, thread, max_tokens=300)
        # The same tools on every call: DeepSeek renders them at the start of the prompt, so
        # adding or removing them would break the cached prefix.
        tools = [contextkit.tool_schema(track)]

        def note(reply: Any, kind: str) -> None:
            call = DemoCall(
                n=len(calls) + 1,
                kind=kind,
                prompt_tokens=reply.usage.prompt_tokens,
                cache_hit_tokens=reply.usage.cache_hit_tokens,
                completion_tokens=reply.usage.completion_tokens,
                cost_usd=reply.cost_usd or 0.0,
                compacted=reply.prompt.moved,
            )
            calls.append(call)
            if on_call is not None:
                on_call(call)

        for question in _QUESTIONS:
            if "photo" in question:
                note(conv.send(question, images=[_photo()], tools=tools), "chat + image")
            elif "tracking" in question:
                server.script(
                    ScriptedReply(
                        reasoning="The user wants the parcel location; call the tracker.",
                        tool_calls=[ScriptedToolCall("track", '{"order": "4711"}')],
                    ),
                    ScriptedReply(
                        reasoning="The tracker says it is in Leeds.",
                        content="Order 4711 is in transit, currently at the Leeds depot.",
                    ),
                )
                first = conv.send(question, tools=tools)
                note(first, "tool call")
                for tool_call in first.tool_calls:
                    thread.append(
                        {
                            "role": "tool",
                            "tool_call_id": tool_call.id,
                            "content": str(track("4711")),
                        }
                    )
                note(conv.send(None, tools=tools), "tool answer")
            else:
                note(conv.send(question, tools=tools), "chat")
        stats = thread.stats()
    store.close()
    return stats, calls
