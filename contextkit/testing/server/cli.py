"""The command line: `python -m contextkit.testing.server` serves until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence

from contextkit.testing.server.app import serve
from contextkit.tokens.encoding import encode

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m contextkit.testing.server [--host H] [--port N]`: serve until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m contextkit.testing.server",
        description="A local DeepSeek-compatible chat API for tests and demos.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--api-key", default=None, help="require this bearer key")
    args = parser.parse_args(argv)
    encode("warm up")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with serve(args.host, args.port, api_key=args.api_key) as server:
        print(server.base_url, flush=True)
        while not stop.wait(0.2):  # a timed wait: the handler runs between the waits
            pass
    return 0
