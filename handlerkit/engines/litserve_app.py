"""LitServe: TorchServe's inference API on a `LitServer`, one `LitAPI` (and its workers) per model.

`TorchServeFrontend`, an ASGI middleware in front of LitServe's app, is TorchServe's frontend: it
answers what the frontend answers itself and hands each admitted request to its model's LitAPI as
JSON (LitServe's endpoints read JSON or forms only). LitServe batches them (`max_batch_size`,
`batch_timeout`); the LitAPI's worker process runs `ts`'s worker on the batch, one `handle` call,
and returns each answer as the HTTP response itself.
"""

from __future__ import annotations

import json
import urllib.parse

import litserve as ls
from starlette.responses import Response

from ..offline.frontend import Answer, Job, RequestInput, admit
from ..offline.server import run_batch
from ..offline.store import ModelFolder, open_model
from ..offline.worker_process import Worker
from .models import ModelSpec, Settings
from .wire import http_response, input_from_json, input_to_json

API_PREFIX = "/handlerkit-model/"  # LitServe's own endpoints; clients never see them
RESPONSE_TIMEOUT_S = 120  # TorchServe's default_response_timeout


class ModelAPI(ls.LitAPI):
    """One model on LitServe: `setup` loads it with `ts`, `predict` is one `handle` call.

    Args:
        spec: The model, its batch size and delay (LitServe's `max_batch_size`, `batch_timeout`).
        folder: The model unpacked (a folder with `MAR-INF/MANIFEST.json`).
    """

    def __init__(self, spec: ModelSpec, folder: str) -> None:
        super().__init__(
            max_batch_size=spec.batch_size,
            batch_timeout=spec.max_batch_delay / 1000,
            api_path=API_PREFIX + urllib.parse.quote(spec.name, safe=""),
        )
        self.name, self.folder, self.batch_size = spec.name, folder, spec.batch_size
        self.worker: Worker | None = None

    def setup(self, device: str) -> None:
        """In LitServe's worker process: load the model as TorchServe's worker does."""
        gpu_id = int(device.split(":")[1]) if device.startswith("cuda:") else None
        self.worker = Worker(self.name, open_model(self.folder, self.name), self.batch_size, gpu_id)

    def decode_request(self, request: dict) -> RequestInput:
        return input_from_json(request)

    def batch(self, inputs: list[RequestInput]) -> list[RequestInput]:
        return list(inputs)  # TorchServe's handle takes the list of requests as it is

    def predict(self, x: RequestInput | list[RequestInput]) -> Answer | list[Answer]:
        """One `handle` call for LitServe's batch (a single request when batching is off)."""
        if isinstance(x, list):
            return run_batch(self.worker, x)
        return run_batch(self.worker, [x])[0]

    def unbatch(self, output: list[Answer]) -> list[Answer]:
        return output

    def encode_response(self, output: Answer) -> Response:
        return http_response(output)


class TorchServeFrontend:
    """ASGI middleware: every request goes through TorchServe's frontend rules first.

    `/ping`, unknown paths and models, and bodies over the size limit are answered here; an
    admitted request is re-sent to LitServe's endpoint for its model as a JSON worker input, with
    no other header, so LitServe neither parses its body nor compresses the answer.
    """

    def __init__(self, app, models: list[str]) -> None:
        self.app, self.models = app, set(models)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        body = await _read_body(receive)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        query = scope.get("query_string", b"").decode("latin-1")
        path = scope["path"] + (f"?{query}" if query else "")
        outcome = admit(path, body, headers, self.models)
        if isinstance(outcome, Answer):
            return await http_response(outcome)(scope, receive, send)
        await self.app(_inner_scope(scope, outcome), _once(_job_body(outcome), receive), send)


def build(models: dict[ModelSpec, ModelFolder], settings: Settings) -> ls.LitServer:
    """A `LitServer` for unpacked models, TorchServe's API in front (not started)."""
    apis = [ModelAPI(spec, str(folder.path)) for spec, folder in models.items()]
    server = ls.LitServer(
        apis,
        accelerator="auto",
        workers_per_device=settings.replicas,
        timeout=RESPONSE_TIMEOUT_S,
    )
    # Outermost, so LitServe's own middlewares (gzip) only ever see the inner JSON request.
    server.app.add_middleware(TorchServeFrontend, models=[spec.name for spec in models])
    return server


def run_forever(specs: list[ModelSpec], settings: Settings, ready=None) -> None:
    """Serve `specs` on LitServe in the foreground until interrupted (Ctrl-C)."""
    folders = {}
    try:
        for spec in specs:
            folders[spec] = open_model(spec.source, spec.name, spec.handler)
        server = build(folders, settings)
        if ready is not None:
            ready()
        server.run(
            host=settings.host,
            port=settings.port,
            num_api_servers=1,
            log_level="warning",
            generate_client_file=False,
        )
    finally:
        for folder in folders.values():
            folder.remove()


def _inner_scope(scope: dict, job: Job) -> dict:
    path = API_PREFIX + urllib.parse.quote(job.model, safe="")
    headers = [(b"content-type", b"application/json")]
    return dict(
        scope, method="POST", path=path, raw_path=path.encode(), query_string=b"", headers=headers
    )


def _job_body(job: Job) -> bytes:
    return json.dumps(input_to_json(job.request)).encode()


async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _once(body: bytes, receive):
    """The inner request's `receive`: its body once, then the client's own messages."""
    sent = False

    async def inner() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return inner
