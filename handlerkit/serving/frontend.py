"""TorchServe's frontend rules, in Python: an HTTP request -> a worker input; a reply -> HTTP.

The part of TorchServe written in Java (Netty): routing, the request's parameters and headers,
error bodies, and how a worker's per-request reply becomes the HTTP answer a client reads.
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import HTTP

# TorchServe's defaults (config.properties: max_request_size; the form decoder's file type).
MAX_REQUEST_SIZE = 6553500
FORM_FILE_TYPE = "application/octet-stream"


@dataclass
class Answer:
    """One HTTP answer, as a client of TorchServe would read it.

    Attributes:
        status: The HTTP status code.
        body: The exact bytes of the body.
        headers: The headers that carry meaning (content-type, the handler's own headers).
        error: When the handler failed, where and how (`HandlerError`); else None.
    """

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    error: HandlerError | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        """The body parsed as JSON (raises ValueError when it is not JSON)."""
        return json.loads(self.body)

    def __repr__(self) -> str:
        body = self.text if len(self.body) <= 200 else self.text[:200] + "..."
        error = f", error in {self.error.stage}" if self.error else ""
        return f"Answer({self.status}, {body!r}{error})"


@dataclass
class HandlerError:
    """What a handler raised: the stage it came from, the message and the traceback text."""

    stage: str  # "initialize", "preprocess", "inference", "postprocess", "handle", ...
    message: str
    traceback: str = ""
    missing: str | None = None  # a module that is not installed (ModuleNotFoundError's name)

    def __str__(self) -> str:
        return f"{self.stage} failed: {self.message}"


@dataclass
class Parameter:
    """One input of a request, as the worker receives it: a name, a content type, bytes."""

    name: str
    content_type: str | None
    value: bytes


@dataclass
class RequestInput:
    """One request as TorchServe's frontend hands it to a worker: id, headers, parameters."""

    request_id: str
    headers: dict[str, str]
    parameters: list[Parameter]


@dataclass
class Job:
    """A request the frontend admitted: the model it goes to and the worker input it becomes."""

    model: str
    request: RequestInput


@dataclass
class Route:
    """Where a path goes: `kind` is "ping", "predictions", "explanations" or "not_found"."""

    kind: str
    model: str | None = None
    version: str | None = None
    url_path: str = ""


def route(path: str) -> Route:
    """Split an inference-API path the way TorchServe does (query strings are ignored)."""
    segments = urllib.parse.urlsplit(path).path.split("/")
    while segments and segments[-1] == "":  # Java's split drops trailing empty strings
        segments.pop()
    if len(segments) >= 2 and segments[1] == "ping":
        return Route("ping")
    if len(segments) >= 2 and segments[1] in ("predictions", "explanations"):
        if len(segments) < 3:
            return Route("not_found")
        version = segments[3] if len(segments) >= 4 else None
        return Route(segments[1], segments[2], version, "/".join(segments[4:]))
    return Route("not_found")


def admit(
    path: str, body: bytes, headers: Mapping[str, str] | None, models: Container[str]
) -> Answer | Job:
    """What TorchServe's frontend does with one request before any worker sees it.

    Returns the frontend's own answer (`/ping`, an unknown path or model, a body over the size
    limit), or the `Job` to batch for the model's worker.
    """
    where = route(path)
    if where.kind == "ping":
        return ping_answer()
    if where.kind == "not_found":
        return not_found_answer()
    if where.model not in models:
        return model_not_found_answer(where.model)
    if len(body) > MAX_REQUEST_SIZE:
        return too_large_answer()
    return Job(where.model, request_input(str(uuid.uuid4()), body, dict(headers or {}), where))


def request_input(
    request_id: str, body: bytes, headers: dict[str, str], route: Route
) -> RequestInput:
    """The worker input for one prediction request: headers plus one parameter per form field,
    or a single parameter "body" holding the raw bytes."""
    merged = dict(headers)
    merged["url_path"] = route.url_path
    merged["explain"] = "True" if route.kind == "explanations" else "False"
    content_type = _header(headers, "content-type")
    mime = content_type.split(";", 1)[0].strip() if content_type else None
    if mime and mime.lower() == "multipart/form-data":
        parameters = multipart_fields(body, content_type)
    elif mime and mime.lower() == "application/x-www-form-urlencoded":
        parameters = urlencoded_fields(body)
    else:
        parameters = [Parameter("body", mime, body)]
    return RequestInput(request_id, merged, parameters)


def multipart_fields(body: bytes, content_type: str) -> list[Parameter]:
    """A multipart form's fields: a file keeps its content type, a plain field has none."""
    header = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    boundary = message_from_bytes(header, policy=HTTP).get_boundary()
    if boundary is not None:
        body = complete_parts(body, boundary.encode("latin-1"))
    message = message_from_bytes(header + body, policy=HTTP)
    fields = []
    for part in message.iter_parts() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        if name is None:
            continue
        value = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            fields.append(Parameter(name, part.get_content_type() or FORM_FILE_TYPE, value))
        else:
            fields.append(Parameter(name, None, value))
    return fields


def complete_parts(body: bytes, boundary: bytes) -> bytes:
    """The form up to its last delimiter, closed there. Netty's decoder (TorchServe's) hands on
    only the parts a delimiter ends: a part the body stops inside, with no closing
    ``--boundary--`` after it, is no field at all (Python's email parser would keep it)."""
    delimiter = b"--" + boundary
    end = body.rfind(b"\r\n" + delimiter)
    if end < 0:
        return b""
    return body[:end] + b"\r\n" + delimiter + b"--\r\n"


def urlencoded_fields(body: bytes) -> list[Parameter]:
    """An x-www-form-urlencoded body's fields, each value percent-decoded to its bytes."""
    pairs = urllib.parse.parse_qsl(
        body.decode("latin-1"), keep_blank_values=True, encoding="latin-1"
    )
    return [Parameter(name, None, value.encode("latin-1")) for name, value in pairs]


def json_body(value) -> bytes:
    """JSON as TorchServe's frontend writes it (Gson, pretty, no HTML escaping) plus a newline."""
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def error_answer(code: int, kind: str, message: str, error: HandlerError | None = None) -> Answer:
    """TorchServe's error body: {"code", "type", "message"}."""
    body = json_body({"code": code, "type": kind, "message": message})
    return Answer(code, body, {"content-type": "application/json"}, error)


def worker_error_answer(code: int, message: str, error: HandlerError | None) -> Answer:
    """A whole batch failed in the worker: every request gets the frontend's error body.

    TorchServe's REST job sends 413 (a `PredictionException` with that code) as 507.
    """
    code = 507 if code == 413 else code
    return error_answer(code, "InternalServerException", message, error)


def ping_answer() -> Answer:
    return Answer(200, json_body({"status": "Healthy"}), {"content-type": "application/json"})


def not_found_answer() -> Answer:
    return error_answer(
        404,
        "ResourceNotFoundException",
        "Requested resource is not found, please refer to API document.",
    )


def model_not_found_answer(name: str) -> Answer:
    return error_answer(404, "ModelNotFoundException", f"Model not found: {name}")


def too_large_answer() -> Answer:
    """Netty's answer to a body over `max_request_size`: 413 with an empty body."""
    return Answer(413, b"", {"content-length": "0"})


def no_worker_answer(name: str, error: HandlerError | None) -> Answer:
    """The model has no worker that loaded: TorchServe's 503 for it.

    When a module was missing, the body says so too (TorchServe's says it only in its log; a
    learner without `ts` installed would otherwise never see why)."""
    message = (
        f'Model "{name}" has no worker to serve inference request. Please use scale workers '
        "API to add workers. If this is a sequence inference, please check if it is closed, "
        "or expired; or exceeds maxSequenceJobQueueSize"
    )
    if error is not None and error.missing:
        message += f". The model did not load: {error.message}"
    return error_answer(503, "ServiceUnavailableException", message, error)


def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None
