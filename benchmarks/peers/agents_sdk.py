"""The OpenAI Agents SDK: `SQLiteSession` / `SQLAlchemySession`, and `Runner` for the loops.

The only module that imports `agents`, always inside the functions that use it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import (
    SYSTEM,
    BuildCase,
    Msg,
    Target,
    async_engine_settings,
    async_sqlite_engine,
    chunks,
    read_settings,
)
from .loop_script import AGENTS_LIMIT, Audit, Turn


def preload() -> None:
    """Import the SDK (before forking)."""
    import agents  # noqa: F401


def normal_session(session_id: str, db_path: Path | str, **kwargs: Any) -> Any:
    """A `SQLiteSession` on contextkit's SQLite settings: the SDK opens its own connections
    with WAL and SQLite's default synchronous=FULL and offers no setting for it, so this
    subclass adds synchronous=NORMAL to the SDK's own per-connection setup."""
    from agents import SQLiteSession

    class NormalSQLiteSession(SQLiteSession):
        @staticmethod
        def _configure_connection(conn: Any) -> None:
            SQLiteSession._configure_connection(conn)
            conn.execute("PRAGMA synchronous=NORMAL")

    return NormalSQLiteSession(session_id, db_path, **kwargs)


def session_settings(session: Any) -> tuple[str, int]:
    """(journal_mode, synchronous) of a connection the session opens for its work."""
    return read_settings(session._get_connection())


def agents_item(m: Msg) -> Msg:
    """A plain user/assistant message as an Agents SDK input item."""
    return {"role": m["role"], "content": m["content"]}


# --- 1. append ---------------------------------------------------------------------------------


def append_target(tmp: Path, kind: str) -> Target:
    from agents.extensions.memory import SQLAlchemySession

    loop = asyncio.new_event_loop()
    engine = None
    session: Any
    if kind == "sqlite":
        session = normal_session("bench", tmp / "agents.db")
        name = "Agents SDK SQLiteSession.add_items"
    else:
        engine = async_sqlite_engine(tmp / "agents-sqlalchemy.db")
        session = SQLAlchemySession("bench", engine=engine, create_tables=True)
        name = "Agents SDK SQLAlchemySession.add_items"

    async def add(items: list[Any], batch: int) -> None:
        for i in range(0, len(items), batch):
            await session.add_items(items[i : i + batch])

    def load(msgs: list[Msg]) -> list[Any]:
        return [agents_item(m) for m in msgs]

    def close() -> None:
        if engine is not None:
            loop.run_until_complete(engine.dispose())
        else:
            session.close()
        loop.close()

    def settings() -> tuple[str, int]:
        if engine is not None:
            return loop.run_until_complete(async_engine_settings(engine))
        return session_settings(session)

    return Target(name, load, lambda i, b: loop.run_until_complete(add(i, b)), close, settings)


# --- 2. build ----------------------------------------------------------------------------------


def build_case(tmp: Path, history: list[Msg], limit: int | None) -> BuildCase:
    loop = asyncio.new_event_loop()
    session = normal_session("bench", tmp / f"agents-{limit}.db")

    async def fill() -> None:
        for chunk in chunks(history, 1_000):
            await session.add_items([agents_item(m) for m in chunk])

    loop.run_until_complete(fill())

    def call() -> list[Any]:
        got: list[Any] = loop.run_until_complete(session.get_items(limit=limit))
        return got

    def prompt(result: list[Any]) -> list[Msg]:
        return [{"role": "system", "content": SYSTEM}, *result]

    def close() -> None:
        session.close()
        loop.close()

    label = "all" if limit is None else f"limit={limit}"
    return BuildCase(f"Agents SDK SQLiteSession.get_items({label})", call, prompt, close)


# --- agent loops -------------------------------------------------------------------------------


def _responses_to_chat(system: str | None, items: Sequence[Any]) -> list[Msg]:
    """Agents SDK (Responses-format) input items as chat messages, to audit and count.

    A reasoning item becomes the `reasoning_content` of the assistant message that follows
    it; an assistant text and the function calls right after it (one model step) form one
    assistant message.
    """
    out: list[Msg] = [{"role": "system", "content": system or ""}]
    reasoning: str | None = None
    open_step = False
    for raw in items:
        item = raw if isinstance(raw, dict) else raw.model_dump(exclude_unset=True)
        kind = item.get("type", "message")
        if kind == "reasoning":
            parts = item.get("summary") or item.get("content") or []
            reasoning = "".join(p.get("text", "") for p in parts)
            open_step = False
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            if open_step:
                out[-1].setdefault("tool_calls", []).append(call)
            else:
                msg: Msg = {"role": "assistant", "content": "", "tool_calls": [call]}
                if reasoning is not None:
                    msg["reasoning_content"] = reasoning
                out.append(msg)
                reasoning, open_step = None, True
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else json.dumps(output)
            out.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
            open_step = False
        else:
            content = item.get("content")
            if not isinstance(content, str):
                content = "".join(p.get("text", "") for p in content or ())
            if item.get("role") == "assistant":
                msg = {"role": "assistant", "content": content}
                if reasoning is not None:
                    msg["reasoning_content"] = reasoning
                out.append(msg)
                reasoning, open_step = None, True  # calls right after it are its calls
            else:
                out.append({"role": item.get("role", "user"), "content": content})
                reasoning, open_step = None, False
    return out


def run_agents_sdk(script: list[Turn], budget: int, seed: int, base: str) -> Audit:
    """The Agents SDK as an app runs it: `Runner.run` per user turn with a session whose
    `limit` trims the history it loads; its scripted test model replays the loop's steps
    and records every input it is given."""
    from agents import Agent, RunConfig, Runner, function_tool
    from agents.memory import SessionSettings
    from agents.testing.model import ScriptedModel, assistant_message, function_call
    from openai.types.responses import ResponseReasoningItem
    from openai.types.responses.response_reasoning_item import Summary

    results: dict[str, str] = {}

    @function_tool
    def search(query: str, ref: str) -> str:
        """Search the knowledge base; returns matching passages."""
        return results[ref]

    @function_tool
    def read_file(query: str, ref: str) -> str:
        """Read a file of the project; returns its text."""
        return results[ref]

    model = ScriptedModel()
    agent = Agent(name="bench", instructions=SYSTEM, model=model, tools=[search, read_file])
    session = normal_session(
        f"loop-{seed}",
        Path(base) / f"agents-loop-{seed}-{budget}.db",
        session_settings=SessionSettings(limit=AGENTS_LIMIT),
    )
    config = RunConfig(tracing_disabled=True)
    audit = Audit()
    loop = asyncio.new_event_loop()
    n = 0

    def reasoning_item(text: str) -> Any:
        nonlocal n
        n += 1
        return ResponseReasoningItem(
            id=f"rs_{seed}_{n}", type="reasoning", summary=[Summary(text=text, type="summary_text")]
        )

    try:
        for t, turn in enumerate(script):
            newest: list[Msg] = [{"role": "user", "content": turn.user}]
            for step in turn.steps:
                output: list[Any] = [reasoning_item(step.reasoning)]
                if step.content:
                    output.append(assistant_message(step.content, item_id=f"msg_{seed}_{t}_{n}"))
                for (cid, name, args), result in zip(step.calls, step.results, strict=True):
                    results[json.loads(args)["ref"]] = result
                    output.append(function_call(name, args, call_id=cid, item_id=f"fc_{cid}"))
                model.enqueue(output)
                newest.append(
                    {"role": "tool", "tool_call_id": step.calls[-1][0], "content": step.results[-1]}
                )
            model.enqueue(
                [
                    reasoning_item(turn.reasoning),
                    assistant_message(turn.answer, item_id=f"msg_{seed}_{t}"),
                ]
            )
            before = len(model.calls)
            loop.run_until_complete(
                Runner.run(agent, turn.user, session=session, run_config=config, max_turns=100)
            )
            calls = model.calls[before:]
            assert len(calls) == len(newest), (len(calls), len(newest))
            for call, expected in zip(calls, newest, strict=True):
                items = (
                    [{"role": "user", "content": call.input}]
                    if isinstance(call.input, str)
                    else call.input
                )
                audit.check(_responses_to_chat(call.system_instructions, items), expected, budget)
    finally:
        session.close()
        loop.close()
    return audit
