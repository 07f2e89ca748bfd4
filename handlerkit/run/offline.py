"""`OfflineServer`: TorchServe's inference API for `.mar` files and model folders, in-process.

No Java and no sockets: a request is routed and turned into a worker input as TorchServe's
frontend does (`frontend`), run through `ts`'s own worker code (`worker_process`), and its reply
turned into the status and bytes TorchServe would send. Calls from several threads take turns
(each answer carries its own error); a handler that raises `SystemExit` or `KeyboardInterrupt`
answers as a dead worker and is loaded again; `isolate=True` runs each model in a process of its
own, where `os._exit` and a hung handler (`response_timeout`) are contained too.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Mapping, Sequence

from ..serving import frontend, kserve, metrics
from ..serving.frontend import Answer, HandlerError, Job
from ..serving.model_folder import open_model
from ..serving.versions import Key, Versions
from ..serving.worker import Worker, run_batch
from .host_state import HostState
from .models import setting_for

Headers = Mapping[str, str] | None
Source = str | os.PathLike


class OfflineServer:
    """Serve TorchServe models in this process, answering exactly as TorchServe 0.12 does.

    Example:
        with OfflineServer({"mnist": "mnist.mar"}) as server:
            answer = server.request("POST", "/predictions/mnist", png_bytes)
            answer.status, answer.body, answer.error

    Args:
        models: Model name -> a `.mar` file, an unpacked `.mar`, or a model folder; or a list
            of `.mar` files, the model's versions side by side (each its manifest's version;
            the first is the default, as TorchServe's `--models m=a.mar m=b.mar`).
        batch_size: Largest batch per `handle` call: one int, or {name: int}. `batch()` splits
            its requests into calls of at most this many; None: one call for all of them.
        handler: For model folders, what `torch-model-archiver --handler` takes (a builtin
            name, a file, `file:function`): one string, or {name: string}.
        gpu_id: The `gpu_id` the handler's context carries (CUDA is used when available).
        limit_max_image_pixels: TorchServe's `limit_max_image_pixels` setting.
        isolate: Run each model in a process of its own (`handler()` is then unavailable): a
            handler that calls `os._exit` or hangs cannot take this process with it.
        response_timeout: With `isolate`, seconds a batch may compute before its process is
            killed and restarted and its requests answered TorchServe's 500 "Worker died."
        service_envelope: TorchServe's `service_envelope`: "kserve" (KServe v1's
            `{"instances": [...]}`) or "kservev2" (the Open Inference Protocol's tensors), applied
            to every request by `ts`'s envelope code; None: the request as it came.
        open_inference_protocol: TorchServe's `ts_open_inference_protocol`: KServe v2's server
            routes (`/v2`, `/v2/health/live`, `/v2/health/ready`) answer.
        metrics_mode: TorchServe's `metrics_mode`: "prometheus" to read the counters as
            Prometheus text from `metrics_api()`; "log" (TorchServe's default) answers none.
    """

    def __init__(
        self,
        models: Mapping[str, Source | Sequence[Source]],
        batch_size: int | Mapping[str, int] | None = None,
        handler: str | Mapping[str, str] | None = None,
        gpu_id: int | None = None,
        limit_max_image_pixels: bool = True,
        isolate: bool = False,
        response_timeout: float | None = None,
        service_envelope: str | None = None,
        open_inference_protocol: bool = False,
        metrics_mode: str = "log",
    ) -> None:
        if response_timeout is not None and not isolate:
            raise ValueError(
                "response_timeout needs isolate=True: a hung handler in this process's thread "
                "cannot be stopped, its own process can"
            )
        self.models = {
            name: list(sources) if isinstance(sources, (list, tuple)) else [sources]
            for name, sources in models.items()
        }
        self.isolate, self.response_timeout = isolate, response_timeout
        self._turn = threading.Lock()  # one request or batch at a time
        self._host: HostState | None = None
        self._batch_size = batch_size
        self._handler = handler
        self.gpu_id = gpu_id
        self.limit_max_image_pixels = limit_max_image_pixels
        self.service_envelope = kserve.check_envelope(service_envelope)
        self.open_inference_protocol = open_inference_protocol
        self.metrics_mode = _metrics_mode(metrics_mode)
        self.metrics = metrics.Metrics()  # TorchServe's frontend counters (`metrics_api`)
        self.workers: dict[Key, Worker] = {}  # (name, version) -> its worker
        self.served = Versions()
        self._sources: dict[Key, Source] = {}
        weakref.finalize(self, _close_all, self.workers)  # unpacked folders go with the server

    # ---- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> OfflineServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> OfflineServer:
        """Unpack and load every model (a model that fails to load answers 503, as TorchServe)."""
        if self._host is None:
            self._host = HostState.save()
        if self.workers:
            return self
        try:
            for name, sources in self.models.items():
                for source in sources:
                    worker = self._load(name, source)
                    key = name, worker.folder.version
                    self.workers[key], self._sources[key] = worker, source
                    self.served.add(*key)  # the same version twice: ValueError
        except BaseException:  # a model that cannot be opened: nothing is left unpacked
            self.close()
            raise
        return self

    def _load(self, name: str, source: Source):
        folder = open_model(source, name, setting_for(self._handler, name))
        size = self.batch_size(name) or 1
        if self.isolate:
            from .model_process import RESPONSE_TIMEOUT_S, Isolated

            timeout = self.response_timeout or RESPONSE_TIMEOUT_S
            return Isolated(name, folder, size, self.gpu_id, timeout, self.service_envelope)
        return Worker(
            name,
            folder,
            size,
            self.gpu_id,
            self.limit_max_image_pixels,
            envelope=self.service_envelope,
        )

    def close(self) -> None:
        """Drop the handlers, remove the unpacked folders, and put back what the handlers
        changed in this process (`HostState`)."""
        _close_all(self.workers)
        self.served, self._sources = Versions(), {}
        if self._host is not None:
            self._host.restore()
            self._host = None

    def batch_size(self, name: str) -> int | None:
        return setting_for(self._batch_size, name)

    # ---- what a client sees ------------------------------------------------------------------
    def handler(self, name: str, version: str | None = None):
        """The live handler object of model `name` (a function entry point: its module), of
        `version` or the default one."""
        return self.worker(name, version).entry

    def load_error(self, name: str, version: str | None = None) -> HandlerError | None:
        """Why model `name` (`version`, or the default) failed to load (stage "initialize",
        with the traceback), or None."""
        return self.worker(name, version).load_error

    def request(self, method: str, path: str, body: bytes = b"", headers: Headers = None) -> Answer:
        """One request to TorchServe's inference API: `/ping`, `/predictions/{name}`, ...

        TorchServe predicts whatever the method; OPTIONS answers the API's description, and a
        HEAD request's answer has no body."""
        answer = self._send(path, [(body, headers)], method)[0]
        if method == "HEAD":
            answer.body = b""
        return answer

    def predict(self, name: str, body: bytes = b"", headers: Headers = None) -> Answer:
        """`POST /predictions/{name}` with `body`."""
        return self.request("POST", f"/predictions/{name}", body, headers)

    def batch(self, path: str, requests: Sequence[tuple[bytes, Headers]]) -> list[Answer]:
        """Requests that arrive together: delivered in one `handle` call (or in calls of at most
        `batch_size` requests), as TorchServe's batching delivers them; answers in order."""
        return self._send(path, [(body, headers) for body, headers in requests])

    # ---- the frontend's part -----------------------------------------------------------------
    def _send(
        self, path: str, requests: list[tuple[bytes, Headers]], method: str = "POST"
    ) -> list[Answer]:
        if not self.workers:
            self.start()
        admitted = [
            frontend.admit(path, body, headers, self.served, method, self.open_inference_protocol)
            for body, headers in requests
        ]
        jobs = [(i, job) for i, job in enumerate(admitted) if isinstance(job, Job)]
        if jobs:
            self._run_jobs(jobs, admitted)
        for answer in admitted:
            self.metrics.answered(answer.status)
        return admitted

    def _run_jobs(self, jobs: list[tuple[int, Job]], answers: list) -> None:
        """Each job's answer into its place in `answers`, in calls of at most `batch_size`."""
        for _, job in jobs:
            self.metrics.admitted(job)
        with self._turn:  # a worker's last error belongs to the batch it ran
            key = jobs[0][1].key  # one path: one model and version
            size = self.batch_size(key[0]) or len(jobs)
            for start in range(0, len(jobs), size):
                chunk = [job for _, job in jobs[start : start + size]]
                for job in chunk:
                    self.metrics.scheduled(job.request.request_id)
                for (i, _), answer in zip(jobs[start : start + size], self._run(key, chunk)):
                    answers[i] = answer
                for job in chunk:
                    self.metrics.finished(job)

    def metrics_api(self, target: str = "/metrics") -> Answer:
        """A GET to TorchServe's metrics API (its own address there): `/metrics`, or
        `/metrics?name[]=ts_inference_requests_total`; Prometheus text in `prometheus` mode."""
        answer = metrics.api_answer(self.metrics, target, self.metrics_mode)
        self.metrics.answered(answer.status)
        return answer

    def _run(self, key: Key, jobs: list[Job]) -> list[Answer]:
        """One `handle` call; a handler that raised SystemExit or KeyboardInterrupt is a dead
        worker, as in TorchServe (500 "Worker died." each), and is loaded again."""
        worker = self.worker(*key)
        try:
            return run_batch(worker, [job.request for job in jobs])
        except (SystemExit, KeyboardInterrupt):
            worker.close()
            self.workers[key] = self._load(key[0], self._sources[key])
            died = frontend.error_answer(500, "InternalServerException", "Worker died.")
            return [died] * len(jobs)

    def worker(self, name: str, version: str | None = None) -> Worker:
        """The worker of model `name` (`version`, or the default): its last warnings, its
        process with `isolate`."""
        if not self.workers:
            self.start()
        if name not in self.served:
            raise KeyError(f"no model {name!r}; this server has {self.served.names()}")
        key = self.served.find(name, version)
        if key is None:
            raise KeyError(f"model {name!r} has no version {version}: {self.served.of(name)}")
        return self.workers[key]

    def __repr__(self) -> str:
        return f"<OfflineServer models={list(self.models)}>"


def _metrics_mode(mode: str) -> str:
    if mode not in metrics.MODES:
        raise ValueError(f"metrics_mode={mode!r}: choose one of {', '.join(metrics.MODES)}")
    return mode


def _close_all(workers: dict[Key, Worker]) -> None:
    for worker in workers.values():
        worker.close()
    workers.clear()
