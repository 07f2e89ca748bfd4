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

A dead LitAPI worker is restarted as TorchServe restarts a dead worker (`WorkerWatch`, in place of
LitServe's own watch, which stops the server), and the requests it had taken get TorchServe's
"Worker died." answer; the rest stay queued for the new worker.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
import signal
import threading
import time
import urllib.parse

import litserve as ls
from fastapi import HTTPException
from litserve.loops.simple_loops import BatchedLoop
from litserve.server import RegularRequestHandler
from litserve.utils import LitAPIStatus, ResponseBufferItem

from ..serving.frontend import Answer, RequestInput, error_answer, worker_died_answer
from ..serving.metrics import Metrics
from ..serving.model_folder import ModelFolder, open_model
from ..serving.versions import Key, Versions
from .asgi import admit_request, case_keeping_protocol, counted, send_answer, serve_metrics
from .model_process import ModelProcess
from .models import ModelSpec, Settings, served

API_PREFIX = "/handlerkit-model/"  # LitServe's endpoints (unused: the frontend goes round them)
WATCH_EVERY_S = 0.2  # how often the worker watch looks for a dead LitAPI worker
LOST_GRACE_S = 30  # past the response timeout, a request no worker answered is answered "died"


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

    def __init__(
        self, spec: ModelSpec, folder: str, response_timeout: float, envelope: str | None = None
    ) -> None:
        super().__init__(
            max_batch_size=spec.batch_size,
            batch_timeout=spec.max_batch_delay / 1000,
            api_path=API_PREFIX + "/".join(urllib.parse.quote(k, safe="") for k in spec.key),
            loop=GatheringLoop() if spec.batch_size > 1 else "auto",
        )
        self.name, self.folder, self.batch_size = spec.name, folder, spec.batch_size
        self.key = spec.key
        self.response_timeout, self.envelope = response_timeout, envelope
        self.worker: ModelProcess | None = None

    def setup(self, device: str) -> None:
        """In LitServe's worker process: load the model in a child, as TorchServe's worker."""
        gpu_id = int(device.split(":")[1]) if device.startswith("cuda:") else None
        self.worker = ModelProcess(
            self.name,
            self.folder,
            self.batch_size,
            gpu_id,
            response_timeout=self.response_timeout,
            envelope=self.envelope,
        )

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


class ModelRequests(RegularRequestHandler):
    """LitServe's request handler for one model, waiting as TorchServe's frontend waits: a request
    whose LitAPI worker died, or that no worker answered in time, gets "Worker died."

    Written against LitServe 0.2.19: `_submit_request`, `response_buffer` and the START message
    that names the worker that took a request (sent when `restart_workers` is on).
    """

    def __init__(self, lit_api: ModelAPI, server: ls.LitServer, response_timeout: float) -> None:
        super().__init__(lit_api, server)
        self.waiting: dict[str, ResponseBufferItem] = {}
        self.patience = response_timeout + LOST_GRACE_S
        self.metrics: Metrics | None = None  # the frontend's, counting each request's queue time

    async def answer(self, request: RequestInput) -> Answer:
        uid, _ = await self._submit_request(request)  # no await inside: nothing answers before
        if self.metrics is not None:  # LitServe gathers the batch in its worker: its wait there
            self.metrics.scheduled(request.request_id)  # counts as inference time
        item = self.server.response_buffer[uid] = ResponseBufferItem(asyncio.Event())
        self.waiting[uid] = item
        try:
            await asyncio.wait_for(item.event.wait(), self.patience)
        except asyncio.TimeoutError:
            return worker_died_answer()
        finally:
            self.waiting.pop(uid, None)
            self.server.response_buffer.pop(uid, None)
        response, status = item.response
        if status != LitAPIStatus.ERROR:
            return response
        if isinstance(response, HTTPException):  # LitServe's own failures (a queue timeout)
            kind = "InternalServerException" if response.status_code >= 500 else "BadRequest"
            return error_answer(response.status_code, kind + "Exception", str(response.detail))
        return error_answer(500, "InternalServerException", f"LitServe failed: {response}")

    def worker_died(self, worker_id: int, exitcode: int | None) -> None:
        """Answer the requests the dead worker had taken (its START message named it)."""
        for item in list(self.waiting.values()):
            if item.worker_id == worker_id and not item.event.is_set():
                item.response = (worker_died_answer(exitcode), LitAPIStatus.OK)
                item.event.set()


class WorkerWatch:
    """Restarts a dead LitAPI worker, as TorchServe restarts a dead worker, and tells the API
    server (a process LitServe forks) which one died, so that its requests are answered.

    In place of LitServe's own watch, which stops the whole server when a worker dies (LitServe
    0.2.19: `restart_workers` restarts, but fails the requests of every model's worker with the
    same number, in a process that does not hold them).
    """

    def __init__(self, server: ls.LitServer, apis: list[ModelAPI]) -> None:
        self.server, self.apis = server, apis
        self.deaths = multiprocessing.get_context("fork").SimpleQueue()  # to the API server
        self.stopping = threading.Event()

    def start(self) -> None:
        """Watch from a thread of this (the main) process; LitServe's own watch stays off."""
        _litserve_watch_off(self.server)
        threading.Thread(target=self._watch, daemon=True, name="handlerkit-worker-watch").start()

    def _watch(self) -> None:
        while not hasattr(self.server, "inference_workers"):  # set by LitServer.run
            time.sleep(WATCH_EVERY_S)
        while not self.stopping.wait(WATCH_EVERY_S):
            workers = self.server.inference_workers
            per_api = len(workers) // len(self.apis)  # LitServe lists them API by API
            for index, process in enumerate(list(workers)):
                if process.is_alive() or self.stopping.is_set():
                    continue
                api, worker_id = self.apis[index // per_api], index % per_api
                self.deaths.put((api.key, worker_id, process.exitcode))
                workers[index] = self.server.launch_single_inference_worker(api, worker_id)

    def listen(self, handlers: dict[Key, ModelRequests]) -> None:
        """In the API server: answer the requests of each worker reported dead."""
        loop = asyncio.get_running_loop()

        def read() -> None:
            while True:
                key, worker_id, exitcode = self.deaths.get()
                loop.call_soon_threadsafe(handlers[key].worker_died, worker_id, exitcode)

        threading.Thread(target=read, daemon=True, name="handlerkit-deaths").start()


def _litserve_watch_off(server: ls.LitServer) -> None:
    """LitServe 0.2.19 has no public switch for its worker watch (`_monitor_workers`)."""
    if not hasattr(server, "_monitor_workers"):
        raise RuntimeError("LitServe changed: _monitor_workers is gone; update WorkerWatch")
    server._monitor_workers = False


class TorchServeFrontend:
    """ASGI middleware: every request goes through TorchServe's frontend rules first.

    `/ping`, unknown paths and models, and bodies over the size limit are answered here; an
    admitted request goes to LitServe's request handler for its model (LitServe's queue, batch
    and worker), and the worker's answer is the response. LitServe's own routes (`/health`,
    `/info`, `/docs`) are never reached: they answer 404, as on TorchServe.

    Args:
        app: LitServe's FastAPI app (what the middleware wraps).
        handlers: The request handler for each model's LitAPI, by (name, version).
        watch: What reports dead workers to this (the API server's) process.
        served: The models' versions, and each model's default.
        open_inference_protocol: Answer KServe v2's server routes (`/v2/health/ready`, ...).
        metrics_address: (host, port) of TorchServe's metrics API, served beside this one.
        metrics_mode: TorchServe's `metrics_mode` ("prometheus": the counters at `/metrics`).
    """

    def __init__(
        self,
        app,
        handlers: dict[Key, ModelRequests],
        watch: WorkerWatch,
        served: Versions,
        open_inference_protocol: bool = False,
        metrics_address: tuple[str, int] | None = None,
        metrics_mode: str = "log",
    ) -> None:
        self.app, self.handlers, self.watch, self.served = app, handlers, watch, served
        self.open_inference_protocol = open_inference_protocol
        self.metrics_address, self.metrics_mode = metrics_address, metrics_mode
        self.metrics = Metrics()
        self.listening = False

    async def __call__(self, scope, receive, send) -> None:
        if not self.listening:  # the first call (lifespan) runs in the API server's process
            self.listening = True
            self.watch.listen(self.handlers)
            for handler in self.handlers.values():
                handler.metrics = self.metrics
            if self.metrics_address is not None:
                serve_metrics(self.metrics, self.metrics_mode, *self.metrics_address)
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        outcome = await admit_request(scope, receive, self.served, self.open_inference_protocol)
        answer = await counted(outcome, self._run, self.metrics)
        await send_answer(answer, scope, receive, send)

    async def _run(self, job) -> Answer:
        return await self.handlers[job.key].answer(job.request)


def build(
    models: dict[ModelSpec, ModelFolder], settings: Settings
) -> tuple[ls.LitServer, WorkerWatch]:
    """A `LitServer` for unpacked models, TorchServe's API in front, and the watch that restarts
    its workers (neither started)."""
    timeout, envelope = settings.response_timeout, settings.service_envelope
    apis = {
        spec.key: ModelAPI(spec, str(folder.path), timeout, envelope)
        for spec, folder in models.items()
    }
    server = ls.LitServer(
        list(apis.values()),
        accelerator="auto",
        workers_per_device=settings.replicas,
        timeout=False,  # TorchServe never times out a queued request; a batch: response_timeout
        restart_workers=True,  # the workers name themselves in each request's START message
    )
    watch = WorkerWatch(server, list(apis.values()))
    handlers = {key: ModelRequests(api, server, timeout) for key, api in apis.items()}
    # Outermost: the request never reaches LitServe's routes and middlewares (gzip).
    server.app.add_middleware(
        TorchServeFrontend,
        handlers=handlers,
        watch=watch,
        served=served(list(models)),
        open_inference_protocol=settings.open_inference_protocol,
        metrics_address=(settings.host, settings.metrics_port),
        metrics_mode=settings.metrics_mode,
    )
    return server, watch


def run_forever(specs: list[ModelSpec], settings: Settings, ready=None) -> None:
    """Serve `specs` on LitServe in the foreground until interrupted (Ctrl-C)."""
    folders = {}
    try:
        for spec in specs:
            folders[spec] = open_model(spec.source, spec.name, spec.handler)
        server, watch = build(folders, settings)
        watch.start()
        if ready is not None:
            ready()
        _stop_watch_on_signals(watch)
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


def _stop_watch_on_signals(watch: WorkerWatch) -> None:
    """Ctrl-C or SIGTERM: LitServe stops its workers next, and the watch must not restart them."""
    main = os.getpid()
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(signum)

        def stop(number, frame, previous=previous):
            if os.getpid() == main:
                watch.stopping.set()
            if callable(previous):
                return previous(number, frame)
            raise KeyboardInterrupt

        signal.signal(signum, stop)
