"""LitServe: TorchServe's inference API on a `LitServer`, one `LitAPI` (and its workers) per model.

`TorchServeFrontend`, an ASGI middleware in front of LitServe's app, is TorchServe's frontend: it
answers what the frontend answers itself and hands each admitted request, as the worker input
itself, to LitServe's request handler for its model's LitAPI (what LitServe's endpoint calls once
it has parsed a body: LitServe's endpoints read JSON or forms only, and this skips the parsing).
LitServe queues and batches them (`max_batch_size`, `batch_timeout`; `GatheringLoop` gathers the
next batch while one computes); the LitAPI's worker process hands each batch to `ts`'s worker in
the model's own process (`ModelProcess`), one `handle` call, and returns each answer as the HTTP
response.

Why not LitServe's own `decode_request` / `predict` / `encode_response`: a TorchServe handler takes
the whole batch of raw requests in one `handle` call and answers each with its own status and
headers, so decoding and encoding belong to the handler and to TorchServe's frontend rules.
"""

from __future__ import annotations

import queue
import threading
import urllib.parse

import litserve as ls
from fastapi import HTTPException
from litserve.loops.simple_loops import BatchedLoop
from litserve.server import RegularRequestHandler

from ..serving.frontend import Answer, RequestInput, error_answer
from ..serving.model_folder import ModelFolder, open_model
from .asgi import admit_request, case_keeping_protocol, send_answer
from .model_process import ModelProcess
from .models import ModelSpec, Settings

API_PREFIX = "/handlerkit-model/"  # LitServe's endpoints (unused: the frontend goes round them)
RESPONSE_TIMEOUT_S = 120  # TorchServe's default_response_timeout


class GatheringLoop(BatchedLoop):
    """LitServe's batched loop, with two threads beside it: one gathers the next batch (LitServe's
    own `collate_requests`: `max_batch_size`, `batch_timeout`) while the current one computes,
    as TorchServe's frontend queues requests while its worker computes; one sends the answers
    back to LitServe's API server while the next batch starts."""

    def __init__(self) -> None:
        super().__init__()
        self.gathered: queue.Queue | None = None
        self.outbox: queue.Queue | None = None

    def get_batch_requests(self, lit_api, request_queue, transport):
        if self.gathered is None:  # first call, in the worker process: start both threads
            self.gathered, self.outbox = queue.Queue(maxsize=1), queue.Queue()
            threading.Thread(target=self._send, daemon=True).start()
            threading.Thread(
                target=self._gather, args=(lit_api, request_queue, transport), daemon=True
            ).start()
        item = self.gathered.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def put_response(self, transport, response_queue_id, uid, response_data, status, response_type):
        self.outbox.put((transport, response_queue_id, uid, response_data, status, response_type))

    def _send(self) -> None:
        while True:
            super().put_response(*self.outbox.get())

    def _gather(self, lit_api, request_queue, transport) -> None:
        while True:
            try:
                batch, timed_out = super().get_batch_requests(lit_api, request_queue, transport)
            except BaseException as error:  # LitServe's stop signal, or a broken queue
                self.gathered.put(error)
                return
            if batch or timed_out:
                self.gathered.put((batch, timed_out))


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
            loop=GatheringLoop() if spec.batch_size > 1 else "auto",
        )
        self.name, self.folder, self.batch_size = spec.name, folder, spec.batch_size
        self.worker: ModelProcess | None = None

    def setup(self, device: str) -> None:
        """In LitServe's worker process: load the model in a child, as TorchServe's worker."""
        gpu_id = int(device.split(":")[1]) if device.startswith("cuda:") else None
        self.worker = ModelProcess(self.name, self.folder, self.batch_size, gpu_id)

    def decode_request(self, request: RequestInput) -> RequestInput:
        return request  # the frontend already made the worker input

    def batch(self, inputs: list[RequestInput]) -> list[RequestInput]:
        return list(inputs)  # TorchServe's handle takes the list of requests as it is

    def predict(self, x: RequestInput | list[RequestInput]) -> Answer | list[Answer]:
        """One `handle` call for LitServe's batch (a single request when batching is off)."""
        if isinstance(x, list):
            return self.worker.run(x)
        return self.worker.run([x])[0]

    def unbatch(self, output: list[Answer]) -> list[Answer]:
        return output

    def encode_response(self, output: Answer) -> Answer:
        return output  # the frontend writes it as the HTTP response, as TorchServe's does


class TorchServeFrontend:
    """ASGI middleware: every request goes through TorchServe's frontend rules first.

    `/ping`, unknown paths and models, and bodies over the size limit are answered here; an
    admitted request goes to LitServe's request handler for its model (LitServe's queue, batch
    and worker), and the worker's answer is the response. LitServe's own routes (`/health`,
    `/info`, `/docs`) are never reached: they answer 404, as on TorchServe.

    Args:
        app: LitServe's FastAPI app (what the middleware wraps).
        handlers: LitServe's request handler for each model's LitAPI, by model name.
        versions: Each model's version (its manifest's), by model name.
    """

    def __init__(
        self, app, handlers: dict[str, RegularRequestHandler], versions: dict[str, str]
    ) -> None:
        self.app, self.handlers, self.versions = app, handlers, versions

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        outcome = await admit_request(scope, receive, self.handlers, self.versions)
        if isinstance(outcome, Answer):
            return await send_answer(outcome, scope, receive, send)
        try:
            answer = await self.handlers[outcome.model].handle_request(
                outcome.request, RequestInput
            )
        except HTTPException as error:  # LitServe's own failures (a timeout, a dead worker)
            kind = "InternalServerException" if error.status_code >= 500 else "BadRequestException"
            answer = error_answer(error.status_code, kind, str(error.detail))
        await send_answer(answer, scope, receive, send)


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
    versions = {spec.name: folder.version for spec, folder in models.items()}
    server.app.add_middleware(TorchServeFrontend, handlers=handlers, versions=versions)
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
            http=case_keeping_protocol(),  # header names as written, as TorchServe passes them
        )
    finally:
        for folder in folders.values():
            folder.remove()
