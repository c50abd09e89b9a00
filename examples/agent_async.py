"""An async agent with tools: `AsyncConversation.run()` calls the model, runs the tools it asks
for (plain or `async` Python functions), and repeats until the model answers.

Thinking mode is on (the default), so the model's reasoning must be sent back on every step
of a tool-calling turn; contextkit replays it for you. Every step is stored in the thread,
and printed from there afterwards.

Every step being stored is what lets an agent survive a crash. With `--crash-after N` the
agent runs in a child process that dies (`os._exit`, no cleanup) when the model asks for
tool call N+1, that is with N tool results stored; a second process opens the same
database, finds the calls left unanswered (`await thread.pending_tool_calls()`) and goes on
with `await agent.run(None, tools=...)`, which runs them and continues the loop to the answer.

The store is `contextkit.open_async()`: every database operation is awaited and never blocks
the event loop; the tools of one step run concurrently, their results stored in call order.

    python examples/agent_async.py                        # local server, scripted tool calls
    python examples/agent_async.py --crash-after 1        # crash mid-loop, resume in a new process
    python examples/agent_async.py --db postgresql+psycopg://user@host/db --crash-after 3
    DEEPSEEK_API_KEY=sk-... python examples/agent_async.py  # the real DeepSeek API
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import inspect
import operator
import os
import subprocess
import sys
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
SCHEMAS = [contextkit.tool_schema(fn, name) for name, fn in TOOLS.items()]
THREAD = "shop-agent-1"
SYSTEM = "You are a shop assistant. Use the tools for stock, prices and arithmetic."
CRASHED = 3  # the exit code of a process that died mid-loop
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


def db_url(value: str) -> str:
    """A database URL as given, or a file path for an embedded SQLite database."""
    return value if "://" in value else f"sqlite:///{value}"


def dying_after(n: int) -> dict:
    """TOOLS, wrapped so that the process dies when tool call n+1 starts (n results stored).

    Each tool result is stored as soon as it and the results before it are in, in call
    order. The tools of one step run concurrently, so tool n+1 waits a moment before it
    dies, to let the earlier results of its step be stored: a crash mid-loop, at the worst
    moment.
    """
    started = 0

    def wrap(name, fn):
        async def tool(**kwargs):
            nonlocal started
            if started >= n:
                await asyncio.sleep(0.5)
                print(f"  ** process {os.getpid()} dies before running {name} **", flush=True)
                os._exit(CRASHED)
            started += 1
            result = fn(**kwargs)
            return await result if inspect.isawaitable(result) else result

        return tool

    return {name: wrap(name, fn) for name, fn in TOOLS.items()}


async def ask(agent, thread, question: str, tools: dict) -> None:
    print(f"\nuser: {question}", flush=True)
    start = (await thread.info()).message_count
    reply = await agent.run(question, tools=tools, schemas=SCHEMAS, max_steps=8)
    show([m async for m in thread.messages(after=start + 1, before=reply.message.seq)])
    print(f"  answer:  {reply.content}  ({reply.steps} model calls)", flush=True)


async def resume(agent, thread) -> None:
    """Finish the turn a crashed process left, then ask the questions it did not get to."""
    pending = await thread.pending_tool_calls()
    messages = [m async for m in thread.messages()]
    print(f"  found {len(messages)} messages, {len(pending)} unanswered tool call(s)")
    for call in pending:
        print(f"  pending: {call.function.name}({call.function.arguments})")
    last = messages[-1] if messages else None
    if last is not None and (last.role.value != "assistant" or last.tool_calls):
        asked = max(m.seq for m in messages if m.role.value == "user")
        print("\nresuming the interrupted turn: run(None, tools=...)", flush=True)
        reply = await agent.run(None, tools=TOOLS, schemas=SCHEMAS, max_steps=8)
        show([m async for m in thread.messages(after=asked, before=reply.message.seq)])
        print(f"  answer:  {reply.content}  ({reply.steps} model calls)", flush=True)
    done = sum(m.role.value == "user" for m in messages)
    for question in QUESTIONS[done:]:
        await ask(agent, thread, question, TOOLS)


async def agent_process(url: str, base_url: str, *, crash_after: int | None) -> None:
    """One process's work on the thread: a run that may crash, or the resume after it."""
    key = os.environ.get("DEEPSEEK_API_KEY", "local")
    client = openai.AsyncOpenAI(base_url=base_url, api_key=key)
    async with await contextkit.open_async(url) as store:
        thread = await store.thread(THREAD, model="deepseek-v4-flash", system=SYSTEM)
        agent = contextkit.AsyncConversation(client, thread, max_tokens=2_000)
        if crash_after is None:
            print(f"\nprocess 2 (pid {os.getpid()}) opens the thread", flush=True)
            await resume(agent, thread)
        else:
            print(f"process 1 (pid {os.getpid()}), dying after {crash_after} tool results")
            tools = dying_after(crash_after)
            for question in QUESTIONS:
                await ask(agent, thread, question, tools)
    await client.close()


async def report(url: str) -> None:
    async with await contextkit.open_async(url) as store:
        st = await (await store.thread(THREAD)).stats()
    print(f"\n{st.calls} calls, cache hit ratio {st.cache_hit_ratio:.0%}, ${st.cost_usd:.6f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description="An async tool-using agent.")
    parser.add_argument("--db", help="database URL or SQLite file (default: a temporary file)")
    parser.add_argument(
        "--crash-after",
        type=int,
        metavar="N",
        help="run in a process that dies with N tool results stored, then resume in another",
    )
    parser.add_argument("--child", choices=["crash", "resume"], help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        crash_after = args.crash_after if args.child == "crash" else None
        await agent_process(args.db, args.base_url, crash_after=crash_after)
        return
    with ExitStack() as stack:
        if key := os.environ.get("DEEPSEEK_API_KEY"):
            base_url = "https://api.deepseek.com"
        else:
            server = stack.enter_context(serve())
            print(f"No DEEPSEEK_API_KEY: using the local test server at {server.base_url}")
            script(server)
            base_url = server.base_url
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        url = db_url(args.db or str(tmp / "agent.db"))
        if args.crash_after is None:
            client = openai.AsyncOpenAI(base_url=base_url, api_key=key or "local")
            async with await contextkit.open_async(url) as store:
                thread = await store.thread(THREAD, model="deepseek-v4-flash", system=SYSTEM)
                agent = contextkit.AsyncConversation(client, thread, max_tokens=2_000)
                for question in QUESTIONS:
                    await ask(agent, thread, question, TOOLS)
            await client.close()
        else:
            child = [sys.executable, __file__, "--db", url, "--base-url", base_url]
            crash = [*child, "--child", "crash", "--crash-after", str(args.crash_after)]
            first = await asyncio.to_thread(subprocess.run, crash)
            died = " (died mid-loop)" if first.returncode == CRASHED else ""
            print(f"process 1 exited with code {first.returncode}{died}", flush=True)
            if first.returncode not in (0, CRASHED):
                raise SystemExit(f"process 1 failed with exit code {first.returncode}")
            await asyncio.to_thread(subprocess.run, [*child, "--child", "resume"], check=True)
        await report(url)


if __name__ == "__main__":
    asyncio.run(main())
