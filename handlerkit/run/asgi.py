"""TorchServe's frontend on ASGI: one HTTP request -> `serving.frontend.admit` -> answer or job.

The engines' HTTP servers speak ASGI (uvicorn). Both put this in front: it reads the whole
request, applies TorchServe's frontend rules, and sends the frontend's own answers itself; an
admitted request goes on as a `Job`, to LitServe's request handler or to a Ray Serve batch, and
its `Answer` comes back as the HTTP response it was.
"""

from __future__ import annotations

import socket

from ..serving.frontend import Answer, Job, admit


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
    """The request read in full and put through TorchServe's frontend rules: the frontend's own
    `Answer` (`/ping`, unknown paths and models, a body over the limit) or the model's `Job`."""
    body = await read_body(receive)
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    query = scope.get("query_string", b"").decode("latin-1")
    path = scope["path"] + (f"?{query}" if query else "")
    return admit(path, body, headers, models)


async def read_body(receive) -> bytes:
    """The request's body, however many messages it came in (short when the client left)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def http_response(answer: Answer):
    """The `Answer` as a Starlette response: the same status, bytes and headers."""
    from starlette.responses import Response  # the engines' dependency, not the core's

    return Response(answer.body, answer.status, dict(answer.headers))


async def send_answer(answer: Answer, scope: dict, receive, send) -> None:
    """The `Answer` sent as the HTTP response."""
    await http_response(answer)(scope, receive, send)
