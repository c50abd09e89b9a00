"""contextkit against LangChain, LlamaIndex and the OpenAI Agents SDK, each used as documented.

Parts (`--parts`, default all four), each writing `results/peers-<part>.json`:

append  messages/s appending to a fresh SQLite file, one message per call and 100 per call,
        next to raw SQLAlchemy-core inserts on the same file settings (the ceiling);
build   latency of getting the next prompt vs history length (100 ... 100,000 messages):
        contextkit `build()`, LangChain `SQLChatMessageHistory.messages` + `trim_messages`,
        LlamaIndex `Memory.get()`, Agents SDK `SQLiteSession.get_items()`;
replay  the longest real ShareGPT conversations (stitched back together, see
        `bench_compaction`) replayed under an 8K and a 32K budget with every strategy:
        prompt tokens, predicted cache hits (`contextkit.cache`), USD at deepseek-v4-flash
        and -pro prices, budget violations, turns whose newest message was dropped;
agents  synthetic agent loops (long tool-call chains, reasoning_content on every step): per
        model call and strategy, budget violations, orphaned tool results, unanswered tool
        calls, tool-call steps of the current turn sent without their reasoning.

Every SQLite file gets contextkit's settings (WAL, synchronous=NORMAL) where the library
takes an engine; the Agents SDK's `SQLiteSession` opens its own connections (WAL, default
synchronous=FULL). Timed cases run interleaved, order rotated each round; figures are
medians. Replay and agent loops run in one process per CPU (they are judged by tokens and
dollars, not by time). Exit status 1 when contextkit breaks a rule (budget overrun, orphaned
tool message, missing reasoning, token count mismatch); peers' violations are reported.

    python benchmarks/bench_peers.py [--quick] [--parts append,build,replay,agents]

Modules: one per peer, each the only place its library is imported (`raw`: the
SQLAlchemy-core ceiling, `contextkit_side`, `langchain`, `llamaindex`, `agents_sdk`); one
per part (`append`, `build`, `replay`, `agent_loops`); shared parts (`common`: settings,
engines, synthetic history; `loop_script`: the agent sessions and the per-call audit); and
`run`, the command line that runs the parts and writes the JSON.
"""
