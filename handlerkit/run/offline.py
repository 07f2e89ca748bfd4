"""`OfflineServer`: TorchServe's inference API for `.mar` files and model folders, in-process.

No Java and no sockets: a request is routed and turned into a worker input as TorchServe's
frontend does (`frontend`), run through `ts`'s own worker code (`worker_process`), and its reply
turned into the status and bytes TorchServe would send.
"""

from __future__ import annotations

import os
import struct
import weakref
from collections.abc import Mapping, Sequence

from ..serving import frontend
from ..serving.frontend import Answer, HandlerError, Job, RequestInput
from ..serving.model_folder import open_model
from ..serving.worker import Worker
from .models import setting_for

Headers = Mapping[str, str] | None


class OfflineServer:
    """Serve TorchServe models in this process, answering exactly as TorchServe 0.12 does.

    Example:
        with OfflineServer({"mnist": "mnist.mar"}) as server:
            answer = server.request("POST", "/predictions/mnist", png_bytes)
            answer.status, answer.body, answer.error

    Args:
        models: Model name -> a `.mar` file, an unpacked `.mar`, or a model folder.
        batch_size: Largest batch per `handle` call: one int, or {name: int}. `batch()` splits
            its requests into calls of at most this many; None: one call for all of them.
        handler: For model folders, what `torch-model-archiver --handler` takes (a builtin
            name, a file, `file:function`): one string, or {name: string}.
        gpu_id: The `gpu_id` the handler's context carries (CUDA is used when available).
        limit_max_image_pixels: TorchServe's `limit_max_image_pixels` setting.
    """

    def __init__(
        self,
        models: Mapping[str, str | os.PathLike],
        batch_size: int | Mapping[str, int] | None = None,
        handler: str | Mapping[str, str] | None = None,
        gpu_id: int | None = None,
        limit_max_image_pixels: bool = True,
    ) -> None:
        self.models = dict(models)
        self._batch_size = batch_size
        self._handler = handler
        self.gpu_id = gpu_id
        self.limit_max_image_pixels = limit_max_image_pixels
        self.workers: dict[str, Worker] = {}
        weakref.finalize(self, _close_all, self.workers)  # unpacked folders go with the server

    # ---- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> OfflineServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> OfflineServer:
        """Unpack and load every model (a model that fails to load answers 503, as TorchServe)."""
        for name, source in self.models.items():
            if name not in self.workers:
                folder = open_model(source, name, setting_for(self._handler, name))
                self.workers[name] = Worker(
                    name,
                    folder,
                    self.batch_size(name) or 1,
                    self.gpu_id,
                    self.limit_max_image_pixels,
                )
        return self

    def close(self) -> None:
        """Drop the handlers and remove the unpacked folders."""
        _close_all(self.workers)

    def batch_size(self, name: str) -> int | None:
        return setting_for(self._batch_size, name)

    # ---- what a client sees ------------------------------------------------------------------
    def handler(self, name: str):
        """The live handler object of model `name` (a function entry point: its module)."""
        return self._worker(name).entry

    def load_error(self, name: str) -> HandlerError | None:
        """Why model `name` failed to load (stage "initialize", with the traceback), or None."""
        return self._worker(name).load_error

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
        versions = {name: worker.folder.version for name, worker in self.workers.items()}
        admitted = [
            frontend.admit(path, body, headers, self.models, method, versions)
            for body, headers in requests
        ]
        jobs = [(i, job) for i, job in enumerate(admitted) if isinstance(job, Job)]
        if not jobs:
            return admitted
        worker = self._worker(jobs[0][1].model)
        size = self.batch_size(worker.name) or len(jobs)
        for start in range(0, len(jobs), size):
            chunk = jobs[start : start + size]
            for (i, _), answer in zip(chunk, run_batch(worker, [job.request for _, job in chunk])):
                admitted[i] = answer
        return admitted

    def _worker(self, name: str) -> Worker:
        if not self.workers:
            self.start()
        if name not in self.workers:
            raise KeyError(f"no model {name!r}; this server has {sorted(self.workers)}")
        return self.workers[name]

    def __repr__(self) -> str:
        return f"<OfflineServer models={list(self.models)}>"


def run_batch(worker: Worker, batch: list[RequestInput]) -> list[Answer]:
    """One `handle` call for `batch`; the reply mapped to HTTP answers, one per request, as
    TorchServe's batch aggregator does. A model that failed to load answers 503 to each."""
    if worker.service is None:
        return [frontend.no_worker_answer(worker.name, worker.load_error) for _ in batch]
    try:
        reply = worker.predict(batch)
    except (UnicodeDecodeError, struct.error):  # ts wrote a reply its frontend cannot read
        return [frontend.worker_died_answer() for _ in batch]  # (a non-ASCII status phrase)
    if reply.code != 200:
        error = worker.last_error or HandlerError("handle", reply.message)
        return [frontend.worker_error_answer(reply.code, reply.message, error) for _ in batch]
    by_id = {p.request_id: p for p in reply.predictions}
    answers = []
    for request in batch:
        prediction = by_id[request.request_id]
        headers = dict(prediction.headers)
        if prediction.content_type:
            headers["content-type"] = prediction.content_type
        answers.append(Answer(prediction.status, prediction.body, headers))
    return answers


def _close_all(workers: dict[str, Worker]) -> None:
    for worker in workers.values():
        worker.close()
    workers.clear()
