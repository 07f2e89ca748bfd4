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


async def admit_request(scope: dict, receive, models, versions=None) -> Answer | Job:
    """The request read in full and put through TorchServe's frontend rules: the frontend's own
    `Answer` (`/ping`, unknown paths, models and versions, a body over the limit) or the
    model's `Job`. Header names reach the handler as the client wrote them, as on TorchServe."""
    body = await read_body(receive)
    names = scope.get(HEADER_NAMES) or [k for k, _ in scope["headers"]]
    headers = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, (_, value) in zip(names, scope["headers"])
    }
    query = scope.get("query_string", b"").decode("latin-1")
    path = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
    path += f"?{query}" if query else ""
    answer = admit(path, body, headers, models, scope["method"], versions)
    if scope["method"] == "HEAD" and isinstance(answer, Answer):
        answer = Answer(answer.status, b"", answer.headers, answer.error)
    return answer


HEADER_NAMES = "handlerkit.header_names"  # the scope's key for the names as written


def case_keeping_protocol():
    """uvicorn's httptools protocol, also keeping each header name as the client wrote it (in
    the scope, under `HEADER_NAMES`): ASGI lower-cases them, TorchServe's handlers see them
    as sent. Written against uvicorn 0.55 (`HttpToolsProtocol.on_message_begin` makes the
    scope, `on_header` is called per header, in order)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class CaseKeepingHttpToolsProtocol(HttpToolsProtocol):
        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.scope[HEADER_NAMES] = self._names = []

        def on_header(self, name: bytes, value: bytes) -> None:
            self._names.append(name)
            super().on_header(name, value)

    return CaseKeepingHttpToolsProtocol


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
