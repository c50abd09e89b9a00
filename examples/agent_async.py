"""An async agent with tools: `AsyncConversation.run()` calls the model, runs the tools it asks
for (plain or `async` Python functions), and repeats until the model answers.

Thinking mode is on (the default), so the model's reasoning must be sent back on every step
of a tool-calling turn; contextkit replays it for you. Every step is stored in the thread,
and printed from there afterwards.

    python examples/agent_async.py                        # local server, scripted tool calls
    DEEPSEEK_API_KEY=sk-... python examples/agent_async.py  # the real DeepSeek API
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import operator
import os
import tempfile
import textwrap
from contextlib import ExitStack
from pathlib import Path

import openai

import contextkit
from contextkit.testing.server import DeepSeekServer, ScriptedReply, ScriptedToolCall, serve

INVENTORY = {
    "TENT-2P": {"name": "Two-person tent", "price": 189.0, "stock": 7},
    "PACK-40": {"name": "40 l trail backpack", "price": 129.5, "stock": 0},
    "BOOT-46": {"name": "Waterproof hiking boots, size 46", "price": 149.0, "stock": 3},
}
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub}
_OPS |= {ast.Mult: operator.mul, ast.Div: operator.truediv}


def calculate(expression: str) -> float:
    """Evaluate an arithmetic expression such as "3 * 189.5 + 12" (+ - * / and parentheses)."""

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        raise ValueError(f"unsupported expression: {ast.unparse(node)}")

    return round(ev(ast.parse(expression, mode="eval").body), 2)


async def check_inventory(sku: str) -> dict:
    """Look up a product by SKU (e.g. TENT-2P, PACK-40, BOOT-46): name, price in EUR, stock."""
    await asyncio.sleep(0.01)  # stands in for a database or HTTP call
    if sku.upper() not in INVENTORY:
        raise KeyError(f"no product with SKU {sku!r}")  # the model sees the error and adapts
    return {"sku": sku.upper(), **INVENTORY[sku.upper()]}


TOOLS = {"calculate": calculate, "check_inventory": check_inventory}
QUESTIONS = [
    "I want 2 TENT-2P tents and 2 PACK-40 backpacks. Are they in stock, and what's the total?",
    "Then make it the tents plus one BOOT-46 pair instead. New total?",
]


def script(server: DeepSeekServer) -> None:
    """With the local server, script the model's steps so the run is deterministic."""
    stock = (
        ScriptedToolCall("check_inventory", '{"sku": "TENT-2P"}'),
        ScriptedToolCall("check_inventory", '{"sku": "PACK-40"}'),
    )
    server.script(
        ScriptedReply(
            reasoning="I need stock and prices of both; look them up at once.", tool_calls=stock
        ),
        ScriptedReply(
            reasoning="Tents are in stock, packs are not. Price the 2 tents.",
            tool_calls=[ScriptedToolCall("calculate", '{"expression": "2 * 189.0"}')],
        ),
        ScriptedReply(
            reasoning="378 EUR.", content="2 tents: 378.00 EUR, in stock. PACK-40 is sold out."
        ),
        ScriptedReply(
            reasoning="I need the boots' price.",
            tool_calls=[ScriptedToolCall("check_inventory", '{"sku": "BOOT-46"}')],
        ),
        ScriptedReply(
            reasoning="Boots are 149 EUR, 3 in stock.",
            tool_calls=[ScriptedToolCall("calculate", '{"expression": "2 * 189 + 149"}')],
        ),
        ScriptedReply(
            reasoning="527 EUR.", content="2 tents + 1 pair of BOOT-46: 527.00 EUR, in stock."
        ),
    )


def show(messages) -> None:
    """Print agent steps from the stored messages: reasoning, tool calls, tool results."""
    for m in messages:
        if m.role.value == "assistant":
            if m.reasoning_content:
                print(f"  thinks:  {textwrap.shorten(m.reasoning_content, 90)}")
            for call in m.tool_calls:
                print(f"  calls:   {call.function.name}({call.function.arguments})")
            if m.text:
                print(f"  says:    {m.text}")
        elif m.role.value == "tool":
            print(f"  result:  {textwrap.shorten(m.text, 90)}")


async def main() -> None:
    parser = argparse.ArgumentParser(description="An async tool-using agent.")
    parser.add_argument("--db", help="SQLite file (default: a temporary one)")
    args = parser.parse_args()
    with ExitStack() as stack:
        if key := os.environ.get("DEEPSEEK_API_KEY"):
            client = openai.AsyncOpenAI(base_url="https://api.deepseek.com", api_key=key)
        else:
            server = stack.enter_context(serve())
            print(f"No DEEPSEEK_API_KEY: using the local test server at {server.base_url}")
            script(server)
            client = openai.AsyncOpenAI(base_url=server.base_url, api_key="local")
        db = Path(args.db or Path(stack.enter_context(tempfile.TemporaryDirectory())) / "agent.db")
        store = stack.enter_context(contextkit.open(f"sqlite:///{db}"))
        thread = store.thread(
            "shop-agent-1",
            model="deepseek-v4-flash",
            system="You are a shop assistant. Use the tools for stock, prices and arithmetic.",
        )
        agent = contextkit.AsyncConversation(client, thread, max_tokens=2_000)
        for question in QUESTIONS:
            print(f"\nuser: {question}")
            start = len(thread)
            reply = await agent.run(question, tools=TOOLS, max_steps=8)
            show(thread.messages(after=start + 1, before=reply.message.seq))
            print(f"  answer:  {reply.content}  ({reply.steps} model calls)")
        st = thread.stats()
        print(f"\n{st.calls} calls, cache hit ratio {st.cache_hit_ratio:.0%}, ${st.cost_usd:.6f}")
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
