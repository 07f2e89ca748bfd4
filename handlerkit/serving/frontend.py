"""TorchServe's frontend rules, in Python: an HTTP request -> a worker input; a reply -> HTTP.

The part of TorchServe written in Java (Netty): routing, the request's parameters and headers,
error bodies, and how a worker's per-request reply becomes the HTTP answer a client reads.
"""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from . import api_description, kserve, netty_forms
from .netty_forms import FormError
from .versions import Key, Versions

# TorchServe's defaults (config.properties: max_request_size; the form decoder's file type;
# Netty's longest request line, "METHOD TARGET HTTP/1.1").
WORKER_DIED = "Worker died."  # TorchServe's WorkerThread, to a batch whose worker died
MAX_REQUEST_SIZE = 6553500
FORM_FILE_TYPE = netty_forms.FILE_TYPE
MAX_INITIAL_LINE = 4095


@dataclass
class Answer:
    """One HTTP answer, as a client of TorchServe would read it: the one answer of every runner.

    Attributes:
        status: The HTTP status code (0: no answer came back; the body says why).
        body: The exact bytes of the body (`.text`, `.json()` to read it).
        headers: The headers that carry meaning (content-type, the handler's own headers); from
            a real server, every header it sent, names in lower case.
        error: When the handler failed, where and how (`HandlerError`); else None.
        seconds: Over HTTP, from sending the request to reading the answer; else 0.
    """

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    error: HandlerError | None = None
    seconds: float = field(default=0.0, compare=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        """The body parsed as JSON (raises ValueError when it is not JSON)."""
        return json.loads(self.body)

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")

    def same_as(self, other: Answer) -> bool:
        """The same status, body bytes and content type: what a client reads (the other
        headers name the server that wrote them)."""
        return (self.status, self.body, self.content_type) == (
            other.status,
            other.body,
            other.content_type,
        )

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
    """A request the frontend admitted: the model and version it goes to, and the worker input
    it becomes. `named_version`: the version its path named (None: none; TorchServe's metrics
    say "default")."""

    model: str
    request: RequestInput
    version: str
    named_version: str | None = None

    @property
    def key(self) -> Key:
        return self.model, self.version


@dataclass
class Route:
    """Where a path goes: `kind` is "ping", "predictions", "explanations", "api" (TorchServe's
    API description), "root" (the description for OPTIONS), "kserve_server" (an Open Inference
    Protocol server path, named in `url_path`), "not_allowed" or "not_found". `protocol`: the
    prediction's API, "torchserve", "kserve_v1" or "kserve_v2"."""

    kind: str
    model: str | None = None
    version: str | None = None
    url_path: str = ""
    protocol: str = "torchserve"


def route(path: str) -> Route:
    """Split an inference-API path the way TorchServe does (query strings are ignored; the path
    is percent-decoded first, as Netty's QueryStringDecoder does)."""
    decoded = _decoded_path(path)
    segments = decoded.split("/")
    while segments and segments[-1] == "":  # Java's split drops trailing empty strings
        segments.pop()
    if not segments:  # "/" answers OPTIONS with the API description; "//" nothing
        return Route("root" if decoded == "/" else "not_allowed")
    if len(segments) == 2 and segments[1] == "api-description":
        return Route("api")
    if len(segments) >= 2 and segments[1] == "ping":
        return Route("ping")
    if len(segments) >= 2 and segments[1] in ("predictions", "explanations"):
        if len(segments) < 3:
            return Route("not_found")
        version = segments[3] if len(segments) >= 4 else None
        return Route(segments[1], segments[2], version, "/".join(segments[4:]))
    return _kserve_route(segments)


def _kserve_route(segments: list[str]) -> Route:
    """KServe's paths, which TorchServe's frontend tries after its own (`kserve`)."""
    found = kserve.inference_route(segments)
    if found is not None:
        kind, model = found
        return Route(kind, model, protocol=f"kserve_{segments[1]}")
    server = kserve.server_route(segments)
    return Route("kserve_server", url_path=server) if server else Route("not_found")


def _decoded_path(target: str) -> str:
    """The path part of a request target (up to `?` or `#`), percent-decoded as Netty's
    `QueryStringDecoder.path()` does (UTF-8; a bad escape raises ValueError with its message)."""
    end = min((i for i in (target.find("?"), target.find("#")) if i != -1), default=len(target))
    out, at = bytearray(), 0
    while at < end:
        if target[at] != "%":
            out += target[at].encode("utf-8")
            at += 1
            continue
        if at + 3 > end:
            raise ValueError(f"unterminated escape sequence at index {at} of: {target}")
        pair = target[at + 1 : at + 3]
        if not all(c in "0123456789abcdefABCDEF" for c in pair):
            raise ValueError(f"invalid hex byte '{pair}' at index {at + 1} of '{target}'")
        out.append(int(pair, 16))
        at += 3
    return out.decode("utf-8", "replace")


def admit(
    path: str,
    body: bytes,
    headers: Mapping[str, str] | None,
    served: Versions,
    method: str = "POST",
    open_inference_protocol: bool = False,
) -> Answer | Job:
    """What TorchServe's frontend does with one request before any worker sees it.

    Returns the frontend's own answer (`/ping`, the API description, an unknown path, model or
    version, a body over the size limit or one its form decoder rejects), or the `Job` to
    batch for the worker of the model and version it names (`served`: what the server has).
    `open_inference_protocol`: TorchServe's `ts_open_inference_protocol` (KServe v2's server
    routes, `/v2/health/ready` and the like, are answered; else they are not found).
    """
    if len(method) + len(path) + len(" ") + len(" HTTP/1.1") > MAX_INITIAL_LINE:
        return error_answer(400, "BadRequestException", "Invalid HTTP message.")
    if len(body) > MAX_REQUEST_SIZE:
        return too_large_answer()
    try:
        where = route(path)
    except ValueError as error:  # TorchServe answers Netty's IllegalArgumentException with 403
        return error_answer(403, "IllegalArgumentException", str(error))
    if where.kind == "ping":
        return ping_answer()
    if where.kind == "kserve_server" and open_inference_protocol:
        return kserve_server_answer(where.url_path)
    if where.kind in ("not_found", "kserve_server"):
        return not_found_answer()
    if where.kind == "not_allowed" or (where.kind == "root" and method != "OPTIONS"):
        return not_allowed_answer()
    if where.kind in ("api", "root"):
        return api_description_answer()
    try:
        request = request_input(str(uuid.uuid4()), body, dict(headers or {}), where)
    except FormError as error:
        return error_answer(500, "ErrorDataDecoderException", str(error))
    if where.model not in served:
        return model_not_found_answer(where.model)
    key = served.find(where.model, where.version)
    if key is None:
        return version_not_found_answer(where.model, where.version)
    if method == "OPTIONS":  # methods are case-sensitive: "options" predicts
        return model_api_answer(where.model)
    return Job(where.model, request, key[1], named_version=where.version)


def request_input(
    request_id: str, body: bytes, headers: dict[str, str], route: Route
) -> RequestInput:
    """The worker input for one prediction request: headers plus one parameter per form field
    (as Netty's form decoder reads them; `FormError` when it rejects the body), or a single
    parameter "body" holding the raw bytes and the request's mime type as written."""
    merged = dict(headers)
    if route.protocol == "torchserve":  # TorchServe's KServe routes pass no url_path
        merged["url_path"] = route.url_path
    merged["explain"] = "True" if route.kind == "explanations" else "False"
    content_type = _header(headers, "content-type")
    mime = netty_forms.mime_type(content_type)
    multipart = netty_forms.multipart_boundary(content_type)
    if multipart is not None:
        fields = netty_forms.multipart_fields(body, *multipart)
    elif mime is not None and mime.lower() == "application/x-www-form-urlencoded":
        fields = netty_forms.urlencoded_fields(body)
    else:
        return RequestInput(request_id, merged, [Parameter("body", mime, body)])
    parameters = [Parameter(f.name, f.content_type, f.value) for f in fields]
    return RequestInput(request_id, merged, parameters)


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


def worker_died_answer(exitcode: int | None = None) -> Answer:
    """TorchServe 0.12's answer to a batch whose worker died (and is restarted): 500 "Worker
    died.", or 507 when SIGKILL ended it (Java sees exit value 137). Measured on TorchServe 0.12:
    a handler past `responseTimeout` gets 500 at the timeout, `os._exit(3)` 500, a SIGKILL 507,
    a worker that crashes writing its reply (a header that is not a str, or a non-ASCII status
    phrase, whose length ts writes in characters) 500."""
    status = 507 if exitcode == -signal.SIGKILL else 500
    return error_answer(status, "InternalServerException", WORKER_DIED)


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


def version_not_found_answer(name: str, version: str) -> Answer:
    message = f"Model version: {version} does not exist for model: {name}"
    return error_answer(404, "ModelVersionNotFoundException", message)


def not_allowed_answer() -> Answer:
    message = "Requested method is not allowed, please refer to API document."
    return error_answer(405, "MethodNotAllowedException", message)


def api_description_answer() -> Answer:
    """`OPTIONS /` or `/api-description`: TorchServe's OpenAPI description of its inference API."""
    return Answer(200, api_description.inference_api(), {"content-type": "application/json"})


def model_api_answer(name: str) -> Answer:
    """`OPTIONS /predictions/NAME`: TorchServe's OpenAPI description of the model's endpoint."""
    return Answer(200, api_description.model_api(name), {"content-type": "application/json"})


def kserve_server_answer(kind: str) -> Answer:
    """TorchServe's own answer on an Open Inference Protocol server path (`kserve.server_route`)."""
    status, body = kserve.server_answer(kind)
    return Answer(status, json_body(body), {"content-type": "application/json"})


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
