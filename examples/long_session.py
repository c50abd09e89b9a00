"""A long-running session: a bulk import, compaction, and process restarts along the way.

The script runs itself as separate processes (as a worker or a CLI would be restarted), each
opening the same database and continuing the same thread. The first one imports an earlier
chat log of the same user in one transaction (`thread.extend()`, 3,600 messages by default),
far beyond the thread's 8,000-token budget: the first prompt after it folds the older part
into a rolling summary (compaction), and the later turns build on that window. The messages
themselves are all kept. At the end it prints what was stored: every message, the summaries
and the range each covers, where the live window starts, and the cache hit ratio.

    python examples/long_session.py                          # local DeepSeek-compatible server
    python examples/long_session.py --import 20000 --phases 3  # a bigger history
    python examples/long_session.py --db session.db          # keep the database afterwards
    python examples/long_session.py --db postgresql+psycopg://user@host/db
    DEEPSEEK_API_KEY=sk-... python examples/long_session.py  # the real DeepSeek API
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import openai

import contextkit

THREAD, OWNER = "trip-planner", "dana"
SYSTEM = "You help plan trips. Answer briefly, in at most three sentences."
BUDGET = 8_000  # max_context_tokens of the thread
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

# The earlier chat log to import: Dana's past trips, generated (deterministically) so the
# example needs no data set. Real imports come from another system's export.
PLACES = ["Lisbon", "Porto", "Seville", "Granada", "Bologna", "Lyon", "Ghent", "Krakow"]
TOPICS = ["trains", "a cooking class", "museums", "a day hike", "markets", "a hotel", "wine"]
ASKS = [
    "On our trip to {place}, day {day}: what about {topic}?",
    "Is {topic} in {place} worth it on day {day}, or should we skip it?",
    "We have a free afternoon in {place} on day {day}. Any ideas around {topic}?",
]
ANSWERS = [
    "For {topic} in {place}, go early on day {day}; book a day ahead and keep it short.",
    "Yes: {topic} in {place} is a good fit for day {day}, about two hours, cash helps.",
    "On day {day} in {place} I would pair {topic} with a walk through the old town.",
]


def earlier_log(n: int) -> list[dict[str, str]]:
    """`n` messages of an earlier conversation, user and assistant taking turns."""
    rng = random.Random(42)
    log = []
    for i in range(n):
        words = {"place": rng.choice(PLACES), "topic": rng.choice(TOPICS), "day": i // 40 + 1}
        role, templates = ("user", ASKS) if i % 2 == 0 else ("assistant", ANSWERS)
        log.append({"role": role, "content": rng.choice(templates).format(**words)})
    return log


def db_url(value: str) -> str:
    """A database URL as given, or a file path for an embedded SQLite database."""
    return value if "://" in value else f"sqlite:///{value}"


def run_phase(n: int, url: str, base_url: str, imported: int) -> None:
    """One process's share of the session: reopen the thread and continue it."""
    client = openai.OpenAI(base_url=base_url, api_key=os.environ.get("DEEPSEEK_API_KEY", "local"))
    with contextkit.open(url) as store:
        thread = store.thread(
            THREAD, model="deepseek-v4-flash", owner=OWNER, system=SYSTEM, max_context_tokens=BUDGET
        )
        print(f"phase {n} (pid {os.getpid()}): thread has {len(thread)} messages", flush=True)
        if n == 1 and imported:
            started = time.perf_counter()
            thread.extend(earlier_log(imported))  # one transaction: all stored, or none
            took = time.perf_counter() - started
            print(f"  imported {imported:,} earlier messages with extend() in {took:.1f} s")
        # The default summarizer is offline (extractive); pass
        # summarizer=contextkit.LLMSummarizer(client) to have the model write the summaries.
        chat = contextkit.Conversation(client, thread, max_tokens=200)
        for text in PHASES[n - 1]:
            reply = chat.send(text, thinking=False)
            note = "  <- window moved (compacted)" if reply.prompt.moved else ""
            print(
                f"  {text[:50]:<50} prompt {reply.usage.prompt_tokens:>5} tokens, "
                f"{reply.usage.cache_hit_tokens:>5} cached{note}",
                flush=True,
            )
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="A session resumed across process restarts.")
    parser.add_argument("--db", help="database URL or SQLite file (default: a temporary file)")
    parser.add_argument(
        "--import",
        dest="imported",
        type=int,
        default=3_600,
        metavar="N",
        help="messages of an earlier chat to import first (default 3,600; 0 for none)",
    )
    parser.add_argument(
        "--phases", type=int, default=3, choices=range(1, 4), help="processes to run (1-3)"
    )
    parser.add_argument("--phase", type=int, help=argparse.SUPPRESS)  # set for the children
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        run_phase(args.phase, args.db, args.base_url, args.imported)
        return

    with ExitStack() as stack:
        if os.environ.get("DEEPSEEK_API_KEY"):
            base_url = "https://api.deepseek.com"
        else:
            from contextkit.testing.server import serve

            base_url = stack.enter_context(serve()).base_url
            print(f"No DEEPSEEK_API_KEY: using the local test server at {base_url}", flush=True)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        url = db_url(args.db or str(tmp / "session.db"))
        for n in range(1, args.phases + 1):
            cmd = [sys.executable, __file__, "--phase", str(n), "--db", url]
            cmd += ["--base-url", base_url, "--import", str(args.imported)]
            subprocess.run(cmd, check=True)

        with contextkit.open(url) as store:
            thread = store.thread(THREAD, owner=OWNER)
            st = thread.stats()
            summaries = thread.summaries()
            print(f"\nmessages stored:  {st.messages} (all of them, nothing deleted)")
            print(f"history readable: {sum(1 for _ in thread.history())} messages")
            print(f"summaries:        {len(summaries)}")
            for s in summaries:
                print(
                    f"  summary {s.n}: folded in messages {s.from_seq}..{s.upto_seq}, "
                    f"{s.token_count} tokens ({s.summarizer})"
                )
            print(f"window starts at: message {st.window_start}")
            print(f"model calls:      {st.calls}, cache hit ratio {st.cache_hit_ratio:.0%}")
            print(f"cost:             ${st.cost_usd:.6f}")
            if summaries:
                print(f"latest summary (covers 1..{summaries[-1].upto_seq}):")
                for line in summaries[-1].text.splitlines()[:5]:
                    print(f"  {line}")


if __name__ == "__main__":
    main()
