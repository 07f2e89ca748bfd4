"""Ask a running TorchServe over HTTP: `send` one request, get one `Answer`.

The HTTP side of `handlerkit.serve`: `TorchServe`'s API methods and `measure` send through it.
"""

from __future__ import annotations

import http.client
import time
import urllib.parse

from ...serving.frontend import Answer

REQUEST_TIMEOUT_S = 60.0


def send(
    method: str,
    url: str,
    timeout: float,
    data: bytes | None = None,
    content_type: str = "application/octet-stream",
    token: str | None = None,
) -> Answer:
    """Send one request straight to its host (never through a proxy) and read its answer.

    TorchServe may answer before it has read the whole body (413 when the body is over its
    `max_request_size`) and close the connection; the answer it sent is still read and returned.
    """
    parts = urllib.parse.urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"Content-Type": content_type} if data is not None else {}
    if token is not None:  # TorchServe's token authorization
        headers["Authorization"] = f"Bearer {token}"
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    started = time.perf_counter()
    try:
        try:
            connection.request(method, target, body=data, headers=headers)
        except (BrokenPipeError, ConnectionResetError) as error:
            unsent = error  # the server stopped reading: its answer may be waiting
        else:
            unsent = None
        try:
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            if unsent is None:
                raise
            raise unsent from None  # no answer came back: the send failing is the error
    finally:
        connection.close()
    replied = {name.lower(): value for name, value in response.getheaders()}
    return Answer(response.status, body, replied, seconds=time.perf_counter() - started)
