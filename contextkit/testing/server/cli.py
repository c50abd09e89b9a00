"""The command line: `python -m contextkit.testing.server` serves until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from contextkit.errors import ValidationError
from contextkit.testing.server.app import serve
from contextkit.testing.server.script import read_script
from contextkit.tokens.encoding import encode

__all__ = ["SCRIPT_HELP", "main"]

SCRIPT_HELP = """\
A script is a JSON array of entries, or JSON lines (one entry a line), queued in order:
  {"content": "Paris.", "reasoning": "...", "finish_reason": "stop"}   a reply (any subset)
  {"tool_calls": [{"name": "lookup", "arguments": {"order": 7}}]}       a tool-call reply
  {"fault": {"status": 429, "times": 2, "retry_after": 1.5}}            HTTP error status
  {"fault": {"drop": true}} / {"fault": {"drop_mid_stream": true}}      dropped connection
Replies answer the next successful completions; faults hit the next requests first. While
the server runs, POST the same entries (one, or an array) to /_script to queue more."""


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m contextkit.testing.server [--host H] [--port N]`: serve until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m contextkit.testing.server",
        description="A local DeepSeek-compatible chat API for tests and demos.",
        epilog=SCRIPT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--api-key", default=None, help="require this bearer key")
    parser.add_argument(
        "--script",
        default=None,
        metavar="FILE",
        help="queue the replies and faults of this JSON / JSON-lines file (see SCRIPT_HELP)",
    )
    args = parser.parse_args(argv)
    entries = None
    if args.script is not None:
        try:
            entries = read_script(Path(args.script).read_text(encoding="utf-8"))
        except (OSError, UnicodeError, ValidationError) as exc:
            print(f"error: script {args.script}: {exc}", file=sys.stderr)
            return 2
    encode("warm up")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with serve(args.host, args.port, api_key=args.api_key) as server:
        if entries is not None:
            try:
                server.load_script(entries)
            except ValidationError as exc:
                print(f"error: script {args.script}: {exc}", file=sys.stderr)
                return 2
        print(server.base_url, flush=True)
        while not stop.wait(0.2):  # a timed wait: the handler runs between the waits
            pass
    return 0
