"""A long-running session that survives process restarts, with compaction along the way.

The script runs itself three times, as three separate processes (as a worker or a CLI would be
restarted), each opening the same SQLite file and continuing the same thread. The thread's
budget is small (`max_context_tokens=1_000`), so older turns are folded into a rolling summary
as the session grows; the messages themselves are all kept. At the end it prints what was
stored: every message, the summaries, where the live window starts, and the cache hit ratio.

    python examples/long_session.py                        # local DeepSeek-compatible server
    DEEPSEEK_API_KEY=sk-... python examples/long_session.py  # the real DeepSeek API
    python examples/long_session.py --db session.db          # keep the database afterwards
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import openai

import contextkit

THREAD, OWNER = "trip-planner", "dana"
SYSTEM = "You help plan trips. Answer briefly, in at most three sentences."
PHASES = [
    [
        "Hi, I'm Dana. I want to plan a 10-day trip to Japan in early April with my partner.",
        "We land in Tokyo on April 2nd and fly home from Osaka on April 12th.",
        "Our budget is about 4,000 EUR for the two of us, flights already paid.",
        "We love food markets, quiet temples and short hikes; we don't like big crowds.",
        "Which cities besides Tokyo and Kyoto would you suggest for 10 days?",
        "Is the cherry blossom season likely to have started by then?",
    ],
    [
        "I'm back. We booked 4 nights in Tokyo, near Ueno park.",
        "Should we buy a 7-day rail pass, or pay for each train separately?",
        "My partner is vegetarian. Is that hard in small towns?",
        "We'd like one night in a ryokan with an onsen. Where, between Tokyo and Kyoto?",
        "How early should we queue at Fushimi Inari to avoid the crowds?",
        "Please remind me what our budget and travel dates were.",
    ],
    [
        "Last session before we leave: we settled on Hakone for the ryokan night.",
        "What should we pack for early April weather?",
        "Do we need cash, or are cards accepted almost everywhere now?",
        "Any etiquette we should know for the onsen?",
        "Can you summarize our whole plan in a few lines?",
        "Thanks, that's everything. Wish us luck!",
    ],
]


def run_phase(n: int, db: str, base_url: str) -> None:
    """One process's share of the session: reopen the thread and continue it."""
    client = openai.OpenAI(base_url=base_url, api_key=os.environ.get("DEEPSEEK_API_KEY", "local"))
    with contextkit.open(f"sqlite:///{db}") as store:
        thread = store.thread(
            THREAD, model="deepseek-v4-flash", owner=OWNER, system=SYSTEM, max_context_tokens=1_000
        )
        print(f"phase {n} (pid {os.getpid()}): thread has {len(thread)} messages", flush=True)
        # The default summarizer is offline (extractive); pass
        # summarizer=contextkit.LLMSummarizer(client) to have the model write the summaries.
        chat = contextkit.Conversation(client, thread, max_tokens=200)
        for text in PHASES[n - 1]:
            reply = chat.send(text, thinking=False)
            note = "  <- window moved (compacted)" if reply.prompt.moved else ""
            print(
                f"  {text[:50]:<50} prompt {reply.usage.prompt_tokens:>4} tokens, "
                f"{reply.usage.cache_hit_tokens:>4} cached{note}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description="A session resumed across process restarts.")
    parser.add_argument("--db", help="SQLite file (default: a temporary one)")
    parser.add_argument("--phase", type=int, help=argparse.SUPPRESS)  # set for the children
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        run_phase(args.phase, args.db, args.base_url)
        return

    with ExitStack() as stack:
        if os.environ.get("DEEPSEEK_API_KEY"):
            base_url = "https://api.deepseek.com"
        else:
            from contextkit.testing.server import serve

            base_url = stack.enter_context(serve()).base_url
            print(f"No DEEPSEEK_API_KEY: using the local test server at {base_url}", flush=True)
        db = args.db or str(Path(stack.enter_context(tempfile.TemporaryDirectory())) / "s.db")
        for n in range(1, len(PHASES) + 1):
            cmd = [sys.executable, __file__, "--phase", str(n), "--db", db, "--base-url", base_url]
            subprocess.run(cmd, check=True)

        with contextkit.open(f"sqlite:///{db}") as store:
            thread = store.thread(THREAD, owner=OWNER)
            st = thread.stats()
            summaries = thread.summaries()
            print(f"\nmessages stored:  {st.messages} (all of them, nothing deleted)")
            print(f"history readable: {sum(1 for _ in thread.history())} messages")
            print(f"summaries:        {len(summaries)}")
            print(f"window starts at: message {st.window_start}")
            print(f"model calls:      {st.calls}, cache hit ratio {st.cache_hit_ratio:.0%}")
            print(f"cost:             ${st.cost_usd:.6f}")
            if summaries:
                print(f"latest summary (covers 1..{summaries[-1].upto_seq}):")
                for line in summaries[-1].text.splitlines()[:5]:
                    print(f"  {line}")


if __name__ == "__main__":
    main()
