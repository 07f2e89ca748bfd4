"""TorchServe's frontend on ASGI: one HTTP request -> `offline.frontend.admit` -> answer or job.

The engines' HTTP servers speak ASGI (uvicorn). Both put this in front: it reads the request,
applies TorchServe's frontend rules, and sends the frontend's own answers itself; an admitted
request goes on as a `Job`, to LitServe's request handler or to a Ray Serve batch, and its
`Answer` comes back as the HTTP response it was. TorchServe's limits hold while reading, as in
Netty: a body past `max_request_size` (declared or streamed) is answered 413 before it is
buffered, headers past 8 KiB 400; uvicorn's h11 parser bounds what it buffers before that.
"""

from __future__ import annotations

import socket

from ..offline.frontend import MAX_REQUEST_SIZE, Answer, Job, admit, error_answer

MAX_HEADER_SIZE = 8192  # Netty's, in TorchServe 0.12: 8,000 bytes of headers pass, 9,000 get 400
# uvicorn's settings for both engines: h11 (its httptools parser has no limit on headers), which
# refuses to buffer more than this of an incomplete request head.
UVICORN_LIMITS = {"http": "h11", "h11_max_incomplete_event_size": 4 * MAX_HEADER_SIZE}


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


async def admit_request(scope: dict, receive, models) -> Answer | Job:
    """The request read and put through TorchServe's frontend rules: the frontend's own `Answer`
    (`/ping`, unknown paths and models, headers or a body over the limits) or the model's `Job`."""
    if sum(len(k) + len(v) + 2 for k, v in scope["headers"]) > MAX_HEADER_SIZE:
        return error_answer(400, "BadRequestException", "Invalid HTTP message.")
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    try:
        if int(headers.get("content-length", 0)) > MAX_REQUEST_SIZE:
            raise _TooLarge
        body = await read_body(receive)
    except _TooLarge:
        return TOO_LARGE
    except ValueError:
        return error_answer(400, "BadRequestException", "Invalid HTTP message.")
    query = scope.get("query_string", b"").decode("latin-1")
    path = scope["path"] + (f"?{query}" if query else "")
    return admit(path, body, headers, models)


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
