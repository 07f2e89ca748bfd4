"""TorchServe's frontend on ASGI: one HTTP request -> `serving.frontend.admit` -> answer or job.

The engines' HTTP servers speak ASGI (uvicorn). Both put this in front: it reads the request,
applies TorchServe's frontend rules, and sends the frontend's own answers itself; an admitted
request goes on as a `Job`, to LitServe's request handler or to a Ray Serve batch, and its
`Answer` comes back as the HTTP response it was. TorchServe's limits hold while reading, as in
Netty: a body past `max_request_size` (declared or streamed) is answered 413 before it is
buffered, headers past 8 KiB 400; uvicorn's h11 parser bounds what it buffers before that.
Every answer is counted in TorchServe's metrics (`counted`), which its metrics API, on a port of
its own, writes as Prometheus text (`serve_metrics`).
"""

from __future__ import annotations

import socket

from ..serving import metrics
from ..serving.frontend import MAX_REQUEST_SIZE, Answer, Job, admit, error_answer
from ..serving.versions import Versions

MAX_HEADER_SIZE = 8192  # Netty's, in TorchServe 0.12: 8,000 bytes of headers pass, 9,000 get 400
# The most of a request head (request line and headers) the HTTP parser buffers; past it the
# connection gets uvicorn's own 400 and is closed, before any more is read.
HEAD_BUFFER_LIMIT = 4 * MAX_HEADER_SIZE

DRAIN_LIMIT = 64 << 20  # bytes of a refused body read and dropped after the 413 is sent
# Netty's answer to a body over max_request_size, sent as soon as the limit is passed.
TOO_LARGE = Answer(413, b"", {"content-length": "0"})


class _TooLarge(Exception):
    """The body passed `max_request_size` while it was read."""


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port for the inference API (raises OSError when taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    bound = socket.socket(family, socket.SOCK_STREAM)
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        bound.bind((host, port))
    except OSError:
        bound.close()
        raise
    return bound


async def admit_request(
    scope: dict, receive, served: Versions, open_inference_protocol: bool = False
) -> Answer | Job:
    """The request read and put through TorchServe's frontend rules: the frontend's own `Answer`
    (`/ping`, unknown paths, models and versions, headers or a body over the limits, KServe v2's
    server routes) or the model's `Job`. Header names reach the handler as the client wrote
    them, as on TorchServe."""
    if sum(len(k) + len(v) + 2 for k, v in scope["headers"]) > MAX_HEADER_SIZE:
        return error_answer(400, "BadRequestException", "Invalid HTTP message.")
    names = scope.get(HEADER_NAMES) or [k for k, _ in scope["headers"]]
    headers = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, (_, value) in zip(names, scope["headers"])
    }
    try:
        if int(_header(headers, "content-length") or 0) > MAX_REQUEST_SIZE:
            raise _TooLarge
        body = await read_body(receive)
    except _TooLarge:
        return TOO_LARGE
    except ValueError:
        return error_answer(400, "BadRequestException", "Invalid HTTP message.")
    path = _target(scope)
    answer = admit(path, body, headers, served, scope["method"], open_inference_protocol)
    if scope["method"] == "HEAD" and isinstance(answer, Answer):
        answer = Answer(answer.status, b"", answer.headers, answer.error)
    return answer


def _target(scope: dict) -> str:
    """The request target as sent: the raw path and the query string."""
    query = scope.get("query_string", b"").decode("latin-1")
    path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
    return path + (f"?{query}" if query else "")


async def counted(outcome: Answer | Job, run, counters: metrics.Metrics) -> Answer:
    """The frontend's own answer, or the job's answer from `run(job)` (a coroutine function),
    counted as TorchServe's frontend counts (`serving.metrics.Metrics`)."""
    if isinstance(outcome, Job):
        counters.admitted(outcome)
        answer = await run(outcome)
        counters.finished(outcome)
        outcome = answer
    counters.answered(outcome.status)
    return outcome


def metrics_app(counters: metrics.Metrics, mode: str):
    """TorchServe's metrics API as an ASGI app (`/metrics`; Prometheus text in prometheus mode)."""

    async def app(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        answer = metrics.api_answer(counters, _target(scope), mode)
        counters.answered(answer.status)
        await send_answer(answer, scope, receive, send)

    return app


def serve_metrics(counters: metrics.Metrics, mode: str, host: str, port: int):
    """Start the metrics API on host:port, on this event loop; returns the uvicorn server (set
    its `should_exit` to stop it)."""
    import asyncio

    import uvicorn  # the engines' dependency, not the core's

    config = uvicorn.Config(metrics_app(counters, mode), lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    listening = bind(host, port)
    listening.listen(128)
    asyncio.get_running_loop().create_task(server.serve(sockets=[listening]))
    return server


HEADER_NAMES = "handlerkit.header_names"  # the scope's key for the names as written


def case_keeping_protocol():
    """uvicorn's httptools protocol, also keeping each header name as the client wrote it (in
    the scope, under `HEADER_NAMES`): ASGI lower-cases them, TorchServe's handlers see them
    as sent. It also bounds the request head: past `HEAD_BUFFER_LIMIT` bytes before the
    headers end, the connection gets uvicorn's 400 and closes (httptools itself would buffer a
    header of any size). Written against uvicorn 0.55 (`HttpToolsProtocol.on_message_begin`
    makes the scope, `on_header` is called per header, in order, `send_400_response` closes)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class CaseKeepingHttpToolsProtocol(HttpToolsProtocol):
        _head_bytes, _in_head, _tail = 0, True, b""

        def data_received(self, data: bytes) -> None:
            if self._in_head:  # count the head only: a chunk may carry the body's start too
                window = self._tail + data
                end = window.find(b"\r\n\r\n")
                self._head_bytes += len(data) if end < 0 else max(0, end - len(self._tail))
                self._tail = window[-3:]
                if self._head_bytes > HEAD_BUFFER_LIMIT:
                    self.send_400_response("Request head too large.")
                    return
            super().data_received(data)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.scope[HEADER_NAMES] = self._names = []

        def on_header(self, name: bytes, value: bytes) -> None:
            self._names.append(name)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_head, self._head_bytes, self._tail = False, 0, b""
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_head = True  # the next request on this connection starts with its head
            super().on_message_complete()

    return CaseKeepingHttpToolsProtocol


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


async def read_body(receive, limit: int = MAX_REQUEST_SIZE) -> bytes:
    """The request's body, however many messages it came in (short when the client left);
    raises `_TooLarge` as soon as more than `limit` bytes came."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            raise _TooLarge
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def drain(receive, limit: int = DRAIN_LIMIT) -> None:
    """Read and drop the rest of a refused body, up to `limit` bytes, so that a client still
    sending it reads the 413 instead of a reset connection (past `limit`, uvicorn closes it)."""
    size = 0
    while size <= limit:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        size += len(message.get("body", b""))


def http_response(answer: Answer):
    """The `Answer` as a Starlette response: the same status, bytes and headers."""
    from starlette.responses import Response  # the engines' dependency, not the core's

    return Response(answer.body, answer.status, dict(answer.headers))


async def send_answer(answer: Answer, scope: dict, receive, send) -> None:
    """The `Answer` sent as the HTTP response (then a refused body's rest is drained)."""
    await http_response(answer)(scope, receive, send)
    if answer is TOO_LARGE:
        await drain(receive)
