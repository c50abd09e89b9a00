"""HTTP plumbing: routes, bodies, error statuses, SSE streaming and dropped connections.

The API's behaviour lives in `validation`, `completion` and `DeepSeekServer`; this module
only moves bytes between them and the socket, the way DeepSeek's endpoint does.
"""

from __future__ import annotations

import json
import math
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast

from contextkit.testing.server.completion import _chunks, _completion_json
from contextkit.testing.server.script import Fault, FaultKind, RecordedRequest
from contextkit.testing.server.validation import MODELS, _ApiError, _prepare

if TYPE_CHECKING:
    from contextkit.testing.server.app import DeepSeekServer

__all__ = ["MAX_BODY_BYTES"]

MAX_BODY_BYTES = 64 * 1024 * 1024
"""Largest request body accepted (a full 1M-token prompt is a few MB of JSON)."""

_STATUS_ERRORS = {
    400: ("Invalid Format", "invalid_request_error"),
    401: ("Authentication Fails", "authentication_error"),
    402: ("Insufficient Balance", "invalid_request_error"),
    422: ("Invalid Parameters", "invalid_request_error"),
    429: ("Rate Limit Reached", "rate_limit_error"),
    500: ("Server Error", "server_error"),
    503: ("Server Overloaded", "server_error"),
}


def _models_json() -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "owned_by": "deepseek"} for m in MODELS],
    }


def _route(path: str) -> str:
    path = path.split("?", 1)[0].rstrip("/")
    return path[3:] if path.startswith("/v1/") else path


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its app and can close open keep-alive connections."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], app: DeepSeekServer) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's `getfqdn` lookup, which can stall on a sandboxed host."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """HTTP plumbing; the behaviour lives in `validation`, `completion` and `DeepSeekServer`."""

    protocol_version = "HTTP/1.1"
    server_version = "contextkit-deepseek/0.1"
    timeout = 60

    @property
    def app(self) -> DeepSeekServer:
        return cast(_HTTPServer, self.server).app

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `DeepSeekServer.requests` instead of an access log."""

    def do_GET(self) -> None:
        path = _route(self.path)
        if not self._authorized():
            return
        if path == "/models":
            self._send_json(200, _models_json())
        elif path.startswith("/models/") and path[len("/models/") :] in MODELS:
            self._send_json(200, {"id": path[8:], "object": "model", "owned_by": "deepseek"})
        else:
            self._send_error(_ApiError(404, f"Not Found: {path!r:.80}", "not_found_error"))

    def do_POST(self) -> None:
        path = _route(self.path)
        raw = self._read_body()
        if raw is None or not self._authorized():
            return
        if path == "/_script":
            self._queue_script(raw)
            return
        if path != "/chat/completions":
            self._send_error(_ApiError(404, f"Not Found: {path!r:.80}", "not_found_error"))
            return
        app = self.app
        body: Any = None
        parse_error: str | None = None
        try:
            body = json.loads(raw)
        except ValueError as exc:
            parse_error = str(exc)
        stream = isinstance(body, Mapping) and body.get("stream") is True
        if app.latency:
            time.sleep(app.latency)
        fault = app._take_fault()
        if fault is not None and fault.kind != "drop_mid_stream":
            if fault.kind == "drop":
                app._record(RecordedRequest(path, body, None, None, stream, "drop"))
                self.close_connection = True
                return
            app._record(RecordedRequest(path, body, fault.status, None, stream, "status"))
            self._send_fault(fault)
            return
        try:
            if parse_error is not None:
                raise _ApiError(400, f"Failed to parse the request body as JSON: {parse_error}")
            request = _prepare(body)
        except _ApiError as err:
            app._record(RecordedRequest(path, body, err.status, None, stream))
            self._send_error(err)
            return
        completion = app._complete(request)
        mid: FaultKind | None = "drop_mid_stream" if fault is not None else None
        app._record(RecordedRequest(path, body, 200, completion.usage, request.stream, mid))
        cid = app._new_id()
        if request.stream:
            after = fault.after if fault is not None else None
            self._stream(_chunks(cid, request, completion), drop=mid is not None, after=after)
        else:
            self._send_json(200, _completion_json(cid, request, completion), drop=mid is not None)

    def _queue_script(self, raw: bytes) -> None:
        """`POST /_script`: queue replies and faults (a JSON entry or array of them, as in a
        `--script` file) for the next chat requests; 400 and nothing queued if one is bad."""
        try:
            replies, faults = self.app.load_script(json.loads(raw))
        except ValueError as exc:  # JSON errors and ValidationError alike
            self._send_error(_ApiError(400, f"bad script: {exc}"))
            return
        self._send_json(200, {"replies": replies, "faults": faults})

    def _authorized(self) -> bool:
        key = self.app.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._send_error(
            _ApiError(401, "Authentication Fails, Your api key is invalid", "authentication_error")
        )
        return False

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                total += size
                if total > MAX_BODY_BYTES:
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        else:
            try:
                size = int(length or 0)
            except ValueError:
                size = -1
            if 0 <= size <= MAX_BODY_BYTES:
                return self.rfile.read(size)
        self.close_connection = True
        self._send_error(_ApiError(413, "Request body too large or of unknown length."))
        return None

    def _send_json(self, status: int, payload: Mapping[str, Any], drop: bool = False) -> None:
        self._send_bytes(status, json.dumps(payload, ensure_ascii=False).encode(), drop=drop)

    def _send_bytes(
        self,
        status: int,
        data: bytes,
        headers: Mapping[str, str] | None = None,
        drop: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if drop:
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        self.wfile.write(data)

    def _send_error(self, err: _ApiError) -> None:
        self._send_json(err.status, err.body())

    def _send_fault(self, fault: Fault) -> None:
        default, kind = _STATUS_ERRORS.get(fault.status, ("Error", "server_error"))
        err = _ApiError(fault.status, fault.message or default, kind)
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(math.ceil(fault.retry_after))
            headers["retry-after-ms"] = str(max(1, round(fault.retry_after * 1000)))
        self._send_bytes(fault.status, json.dumps(err.body()).encode(), headers)

    def _stream(
        self, events: Sequence[Mapping[str, Any]], drop: bool, after: int | None = None
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        cut = (max(1, len(events) // 2) if after is None else after) if drop else len(events)
        for event in events[:cut]:
            self._chunk(b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n")
        if drop:
            self.close_connection = True
            return
        self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
