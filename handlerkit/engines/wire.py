"""How an engine carries a request to a model's worker and its answer back to the client.

Between `offline.frontend` (HTTP -> `Job`, reply -> `Answer`) and the engine: an `Answer` as the
HTTP response the engine sends, and a worker input as JSON for engines that only pass JSON.
"""

from __future__ import annotations

import base64

from ..offline.frontend import Answer, Parameter, RequestInput


def http_response(answer: Answer):
    """The `Answer` as a Starlette response: the same status, bytes and headers."""
    from starlette.responses import Response

    return Response(answer.body, answer.status, dict(answer.headers))


def input_to_json(request: RequestInput) -> dict:
    """A worker input as JSON-ready data (each parameter's bytes in base64)."""
    return {
        "request_id": request.request_id,
        "headers": request.headers,
        "parameters": [
            [p.name, p.content_type, base64.b64encode(p.value).decode("ascii")]
            for p in request.parameters
        ],
    }


def input_from_json(data: dict) -> RequestInput:
    """The worker input `input_to_json` wrote, exactly as it was."""
    parameters = [
        Parameter(name, content_type, base64.b64decode(value))
        for name, content_type, value in data["parameters"]
    ]
    return RequestInput(data["request_id"], dict(data["headers"]), parameters)
