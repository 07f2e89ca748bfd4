"""LitServe: TorchServe's inference API on a `LitServer`, one `LitAPI` (and its workers) per model.

`TorchServeFrontend`, an ASGI middleware in front of LitServe's app, is TorchServe's frontend: it
answers what the frontend answers itself and hands each admitted request, as the worker input
itself, to LitServe's request handler for its model's LitAPI (what LitServe's endpoint calls once
it has parsed a body: LitServe's endpoints read JSON or forms only, and this skips the parsing).
LitServe queues and batches them (`max_batch_size`, `batch_timeout`); the LitAPI's worker process
runs `ts`'s worker on the batch, one `handle` call, and returns each answer as the HTTP response.
"""

from __future__ import annotations

import urllib.parse

import litserve as ls
from fastapi import HTTPException
from litserve.server import RegularRequestHandler
from starlette.responses import Response

from ..offline.frontend import Answer, RequestInput, error_answer
from ..offline.server import run_batch
from ..offline.store import ModelFolder, open_model
from ..offline.worker_process import Worker
from .asgi import admit_request, http_response, send_answer
from .models import ModelSpec, Settings

API_PREFIX = "/handlerkit-model/"  # LitServe's endpoints (unused: the frontend goes round them)
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

    def decode_request(self, request: RequestInput) -> RequestInput:
        return request  # the frontend already made the worker input

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
    admitted request goes to LitServe's request handler for its model (LitServe's queue, batch
    and worker), and the worker's answer is the response. LitServe's own routes (`/health`,
    `/info`, `/docs`) are never reached: they answer 404, as on TorchServe.

    Args:
        app: LitServe's FastAPI app (what the middleware wraps).
        handlers: LitServe's request handler for each model's LitAPI, by model name.
    """

    def __init__(self, app, handlers: dict[str, RegularRequestHandler]) -> None:
        self.app, self.handlers = app, handlers

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        outcome = await admit_request(scope, receive, self.handlers)
        if isinstance(outcome, Answer):
            return await send_answer(outcome, scope, receive, send)
        try:
            response = await self.handlers[outcome.model].handle_request(
                outcome.request, RequestInput
            )
        except HTTPException as error:  # LitServe's own failures (a timeout, a dead worker)
            kind = "InternalServerException" if error.status_code >= 500 else "BadRequestException"
            answer = error_answer(error.status_code, kind, str(error.detail))
            return await send_answer(answer, scope, receive, send)
        await response(scope, receive, send)


def build(models: dict[ModelSpec, ModelFolder], settings: Settings) -> ls.LitServer:
    """A `LitServer` for unpacked models, TorchServe's API in front (not started)."""
    apis = {spec.name: ModelAPI(spec, str(folder.path)) for spec, folder in models.items()}
    server = ls.LitServer(
        list(apis.values()),
        accelerator="auto",
        workers_per_device=settings.replicas,
        timeout=RESPONSE_TIMEOUT_S,
    )
    handlers = {name: RegularRequestHandler(api, server) for name, api in apis.items()}
    # Outermost: the request never reaches LitServe's routes and middlewares (gzip).
    server.app.add_middleware(TorchServeFrontend, handlers=handlers)
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
