"""A support chatbot serving many users: one stored thread per user conversation.

Shows how `owner=` keeps users apart (thread ids are per owner: another user's id names
no thread of yours, `contextkit.NotFound`), how interleaved users share one store, and what
each user's conversation cost (`thread.stats()`: calls, prompt-cache hit ratio, USD).

    python examples/chatbot.py                        # local DeepSeek-compatible server
    DEEPSEEK_API_KEY=sk-... python examples/chatbot.py  # the real DeepSeek API
    python examples/chatbot.py --db support.db        # keep the database afterwards
"""

from __future__ import annotations

import argparse
import os
import tempfile
import textwrap
from contextlib import ExitStack
from pathlib import Path

import openai

import contextkit

MODEL = "deepseek-v4-flash"
SYSTEM = (
    "You are the support assistant of Northwind Outfitters, an outdoor gear shop. "
    "Answer in two sentences at most. Orders ship in 2 business days; returns are free "
    "within 30 days; the warranty on tents and backpacks is 2 years."
)
BOT = textwrap.TextWrapper(width=96, initial_indent="    bot: ", subsequent_indent=" " * 9)
# Each user's questions, one per turn; the users take turns, as real traffic interleaves.
QUESTIONS = {
    "alice": [
        "Hi, my order 5512 has not arrived yet. When does it ship?",
        "It was a two-person tent, the green one.",
        "Can I still return it if it arrives late?",
        "Thanks! Is the tent covered by a warranty?",
    ],
    "bob": [
        "Do you sell waterproof hiking boots in size 46?",
        "I mostly hike in the Alps in spring.",
        "What is your return policy on boots that were worn once?",
        "OK, I'll order them today. How fast is shipping?",
    ],
    "carol": [
        "The zipper on my backpack broke after three months.",
        "It's the 40-litre trail pack, bought in March.",
        "Do I need the receipt for a warranty claim?",
        "Great, how do I send it in?",
    ],
}


def connect(stack: ExitStack) -> openai.OpenAI:
    """The real API with DEEPSEEK_API_KEY, otherwise a local DeepSeek-compatible server."""
    key = os.environ.get("DEEPSEEK_API_KEY")
    if key:
        return openai.OpenAI(base_url="https://api.deepseek.com", api_key=key)
    from contextkit.testing.server import serve

    server = stack.enter_context(serve())
    print(f"No DEEPSEEK_API_KEY: using the local test server (it echoes) at {server.base_url}\n")
    return openai.OpenAI(base_url=server.base_url, api_key="local")


def main() -> None:
    parser = argparse.ArgumentParser(description="A multi-user support chatbot.")
    parser.add_argument("--db", help="SQLite file (default: a temporary one)")
    args = parser.parse_args()

    with ExitStack() as stack:
        client = connect(stack)
        db = Path(args.db or Path(stack.enter_context(tempfile.TemporaryDirectory())) / "chat.db")
        store = stack.enter_context(contextkit.open(f"sqlite:///{db}"))

        # One conversation per user; in a web app you would open the thread per request
        # from the session's user id and conversation id, exactly like this.
        chats = {}
        for user in QUESTIONS:
            thread = store.thread(f"{user}-conv-1", model=MODEL, owner=user, system=SYSTEM)
            chats[user] = contextkit.Conversation(client, thread, max_tokens=300)

        for turn in range(4):
            for user, questions in QUESTIONS.items():
                reply = chats[user].send(questions[turn], thinking=False)
                print(f"[{user}] {questions[turn]}")
                print(BOT.fill(reply.content))

        print("\nOwner isolation:")
        try:
            store.get_thread("alice-conv-1", owner="bob")
        except contextkit.NotFound as exc:
            print(f"  bob asking for alice's thread id -> NotFound: {exc}")
        mine = [t.id for t in store.threads(owner="bob")]
        print(f"  bob's threads: {mine}")

        print("\nPer-user stats:")
        for user, chat in chats.items():
            st = chat.thread.stats()
            print(
                f"  {user:<6} calls={st.calls} messages={st.messages} "
                f"cache hit ratio={st.cache_hit_ratio:.0%} cost=${st.cost_usd:.6f}"
            )
        if args.db:
            print(f"\nThreads stored in {db}")


if __name__ == "__main__":
    main()
