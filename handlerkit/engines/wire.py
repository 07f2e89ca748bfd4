"""How an engine sends a worker's answer back: an `Answer` as the HTTP response it was.

Between `offline.frontend` (HTTP -> `Job`, reply -> `Answer`) and the engine's HTTP server.
"""

from __future__ import annotations

from ..offline.frontend import Answer


def http_response(answer: Answer):
    """The `Answer` as a Starlette response: the same status, bytes and headers."""
    from starlette.responses import Response

    return Response(answer.body, answer.status, dict(answer.headers))
