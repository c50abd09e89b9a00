"""Store a short conversation and read it back: what `append` and `messages` return.

Runs offline on an embedded SQLite file; no API key needed.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import contextkit


def main(db_path: str | None = None) -> None:
    path = Path(db_path or Path(tempfile.mkdtemp()) / "quickstart.db")
    store = contextkit.open(f"sqlite:///{path}")
    thread = store.thread(
        "support-42",
        model="deepseek-v4-flash",
        owner="alice",
        system="You are a helpful support agent.",
        max_context_tokens=32_000,
    )
    print(f"store:  {store.url}")
    print(f"thread: {thread.id} (owner {thread.owner}, model {thread.model})\n")

    turns = [
        {"role": "user", "content": "Where is my order 5512?"},
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "I should look the order up before answering.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": '{"order": 5512}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}'},
        {"role": "assistant", "content": "Order 5512 has shipped.", "reasoning_content": "Done."},
    ]
    for turn in turns:
        stored = thread.append(turn, idempotency_key=f"demo-{len(thread) + 1}")
        print(f"append -> seq {stored.seq}: {stored.role.value:<9} {stored.text or '(tool call)'}")

    # A retried append with the same idempotency key is stored once.
    retry = thread.append(turns[-1], idempotency_key="demo-4")
    print(f"\nretry with the same idempotency key -> seq {retry.seq} (no new row)")

    print("\nmessages():")
    for message in thread.messages():
        print(f"  {json.dumps(message.to_openai(), ensure_ascii=False)}")
    info = thread.info()
    print(f"\n{info.message_count} messages stored in {path}")
    store.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
