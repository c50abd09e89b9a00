"""contextkit against LangChain, LlamaIndex and the OpenAI Agents SDK: the script.

    python benchmarks/bench_peers.py [--quick] [--parts append,build,replay,agents]

The code is the `peers` package next to this file (what each part measures: its docstring);
this file stays the entry point `python -m benchmarks` runs, with this directory on
`sys.path` so that `peers` and its imports (`_common`, `bench_compaction`) resolve.
"""

from __future__ import annotations

from peers.run import main

if __name__ == "__main__":
    raise SystemExit(main())
