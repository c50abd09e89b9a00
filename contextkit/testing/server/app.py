"""`DeepSeekServer`: the running server's state (script, faults, request log, prefix caches).

It starts the HTTP transport in a daemon thread and answers each validated request through
`completion`; `serve()` is the context manager tests and the demo use.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

from contextkit.cache import PrefixCacheModel
from contextkit.errors import ValidationError
from contextkit.testing.server.completion import _bill, _Completion, _draft, _generated
from contextkit.testing.server.http import _HTTPServer
from contextkit.testing.server.script import (
    Fault,
    FaultKind,
    RecordedRequest,
    ScriptedReply,
    ScriptedToolCall,
    _QueuedFault,
)
from contextkit.testing.server.validation import _Request

__all__ = ["DeepSeekServer", "serve"]


class DeepSeekServer:
    """A running (after `start`) local DeepSeek API; all methods are thread-safe.

    One prefix cache per model, shared by every client of this server, as the provider's
    cache is per account. Use `serve()` or `with DeepSeekServer() as srv:`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, api_key: str | None = None):
        self._address = (host, port)
        self.api_key = api_key
        self._lock = threading.Lock()
        self._replies: deque[ScriptedReply] = deque()
        self._faults: deque[_QueuedFault] = deque()
        self._log: list[RecordedRequest] = []
        self._caches: dict[str, PrefixCacheModel] = {}
        self._next_call = 0
        self._next_id = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._latency = 0.0

    @property
    def host(self) -> str:
        return str(self._running().server_address[0])

    @property
    def port(self) -> int:
        return int(self._running().server_address[1])

    @property
    def base_url(self) -> str:
        """What to pass as the openai SDK's `base_url`, e.g. "http://127.0.0.1:PORT"."""
        return f"http://{self.host}:{self.port}"

    def _running(self) -> _HTTPServer:
        if self._httpd is None:
            raise RuntimeError("the server is not running: call start() or use `with serve()`")
        return self._httpd

    def start(self) -> DeepSeekServer:
        """Bind and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer(self._address, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"deepseek-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection (idle keep-alives included)."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> DeepSeekServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def script(self, *replies: ScriptedReply | str) -> None:
        """Queue replies for the next successful completions, in order (a str is content)."""
        queued = [r if isinstance(r, ScriptedReply) else ScriptedReply(content=r) for r in replies]
        with self._lock:
            self._replies.extend(queued)

    def load_script(self, entries: object) -> tuple[int, int]:
        """Queue parsed script entries (see `script.parse_script`): replies with `script`,
        faults with `fail`. All entries are checked first, so a bad one queues nothing.
        Returns (replies, faults) queued."""
        from contextkit.testing.server.script import parse_script

        items = parse_script(entries)
        faults = [item for item in items if isinstance(item, dict)]
        for n, fault in enumerate(faults, 1):  # check every fault before queueing anything
            try:
                DeepSeekServer().fail(**fault)
            except (TypeError, ValidationError) as exc:
                raise ValidationError(f"script fault {n}: {exc}") from None
        replies = [item for item in items if isinstance(item, ScriptedReply)]
        self.script(*replies)
        for fault in faults:
            self.fail(**fault)
        return len(replies), len(faults)

    @property
    def pending_replies(self) -> int:
        """Scripted replies not yet consumed."""
        with self._lock:
            return len(self._replies)

    def fail(
        self,
        status: int = 429,
        *,
        times: int = 1,
        retry_after: float | None = 0.0,
        drop: bool = False,
        drop_mid_stream: bool = False,
        message: str | None = None,
        after: int | None = None,
    ) -> None:
        """Make the next `times` chat requests fail (queued after earlier `fail` calls).

        By default answer `status` with DeepSeek's error body and, unless `retry_after` is
        None, `Retry-After` (whole seconds) and `retry-after-ms` (at least 1, so the openai SDK
        waits that long instead of its own backoff). `drop=True` closes the connection without
        a response; `drop_mid_stream=True` processes the request and closes the connection
        halfway through the body (SSE chunks for a stream), or for a stream after the first
        `after` events (a slice bound: 0 sends none, -1 all but the usage chunk, a large
        number all of them but not `[DONE]`).
        """
        if drop and drop_mid_stream:
            raise ValidationError("choose one of drop and drop_mid_stream")
        if after is not None and (
            not drop_mid_stream or isinstance(after, bool) or not isinstance(after, int)
        ):
            raise ValidationError(f"after is an event count for drop_mid_stream, got {after!r:.40}")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValidationError(f"times must be a positive integer, got {times!r:.40}")
        if not drop and not drop_mid_stream and not 400 <= status <= 599:
            raise ValidationError(f"status must be an HTTP error status, got {status!r:.40}")
        if retry_after is not None and (not math.isfinite(retry_after) or retry_after < 0):
            raise ValidationError(f"retry_after must be >= 0 seconds, got {retry_after!r}")
        kind: FaultKind = "drop" if drop else "drop_mid_stream" if drop_mid_stream else "status"
        fault = Fault(kind, status, retry_after, message, after)
        with self._lock:
            self._faults.append(_QueuedFault(fault, times))

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the chat requests received so far, oldest first."""
        with self._lock:
            return list(self._log)

    def clear_requests(self) -> None:
        """Forget the request log."""
        with self._lock:
            self._log.clear()

    def reset_cache(self) -> None:
        """Empty the prefix cache of every model, as if the provider evicted it."""
        with self._lock:
            self._caches.clear()

    def set_latency(self, seconds: float) -> None:
        """Answer every chat request `seconds` late, as a model that takes time to reply
        (each request waits on its own connection; other requests are served meanwhile)."""
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not (0 <= seconds <= 600)
        ):
            raise ValidationError(f"latency must be 0..600 seconds, got {seconds!r:.40}")
        with self._lock:
            self._latency = float(seconds)

    @property
    def latency(self) -> float:
        """The delay of every chat reply, in seconds (`set_latency`)."""
        with self._lock:
            return self._latency

    def reset(self) -> None:
        """Back to a fresh server: no cache, script, faults, latency or log (ids go on)."""
        with self._lock:
            self._latency = 0.0
            self._caches.clear()
            self._replies.clear()
            self._faults.clear()
            self._log.clear()

    def _take_fault(self) -> Fault | None:
        with self._lock:
            if not self._faults:
                return None
            entry = self._faults[0]
            entry.left -= 1
            if entry.left <= 0:
                self._faults.popleft()
            return entry.fault

    def _record(self, entry: RecordedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def _new_id(self) -> str:
        with self._lock:
            self._next_id += 1
            return f"chatcmpl-{self._next_id:08d}"

    def _complete(self, request: _Request) -> _Completion:
        """Generate the reply (scripted or default), cut it to budget, and bill it."""
        with self._lock:
            reply = self._replies.popleft() if self._replies else None
        draft = _draft(request, reply)
        with self._lock:
            named = []
            for call in draft.tool_calls:
                if call.id is None:
                    self._next_call += 1
                    call = ScriptedToolCall(call.name, call.arguments, f"call_{self._next_call}")
                named.append(call)
            calls = tuple(named)
        generated = _generated(draft, calls)
        with self._lock:
            cache = self._caches.setdefault(request.model, PrefixCacheModel())
            usage = _bill(cache, request, draft, generated)
        return _Completion(draft.reasoning, draft.content, calls, draft.finish_reason, usage)


@contextmanager
def serve(
    host: str = "127.0.0.1", port: int = 0, *, api_key: str | None = None
) -> Iterator[DeepSeekServer]:
    """A started `DeepSeekServer` (port 0: a free one), stopped when the block ends."""
    server = DeepSeekServer(host, port, api_key=api_key)
    with server:
        yield server
