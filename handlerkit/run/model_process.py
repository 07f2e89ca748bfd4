"""A model's `ts` worker in a process of its own, as TorchServe runs it; the engine sends it
each batch through a pipe and gets one answer per request back.

An engine's own process (a LitServe worker, a Ray Serve replica) has threads of its own (queues,
RPC, an event loop) that would share one interpreter lock with the handler. TorchServe's Python
worker has its process to itself, and so does the handler here: it computes in the child while
the engine's threads carry the next batch in and the last answers out.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import threading
import time
from pathlib import Path

from ..serving.frontend import Answer, RequestInput, worker_died_answer
from ..serving.model_folder import open_model
from ..serving.worker import Worker, run_batch
from .models import RESPONSE_TIMEOUT_S

PARENT_CHECK_S = 0.5  # how often the model's process looks whether its parent is still there


class ModelProcess:
    """One model loaded in a child process; `run(batch)` is one `handle` call there.

    Args:
        name: The model name.
        folder: The unpacked model (a folder with `MAR-INF/MANIFEST.json`); the child reads it.
        batch_size: The model's batch size (what `ts` tells the handler).
        gpu_id: The GPU the handler gets, or None for the CPU.
        threads: torch's intra-op threads in the child; None keeps torch's default there.
        response_timeout: Seconds a batch may take; past them the child is killed, the batch
            answered "Worker died." and a new child started (TorchServe's `responseTimeout`).
        envelope: TorchServe's `service_envelope` ("kserve", "kservev2"), or None.
        leftover: A folder the child removes if it finds this process gone (killed, so its own
            cleanup never ran): a Ray replica's unpacked model. The child then runs in a
            session of its own, out of reach of Ray's SIGKILL to a dead replica's process group.
    """

    def __init__(
        self,
        name: str,
        folder: Path,
        batch_size: int,
        gpu_id: int | None,
        threads: int | None = None,
        response_timeout: float = RESPONSE_TIMEOUT_S,
        envelope: str | None = None,
        leftover: Path | None = None,
    ) -> None:
        leftover = str(leftover) if leftover else None
        self.args = (name, str(folder), batch_size, gpu_id, threads, envelope, leftover)
        self.response_timeout = response_timeout
        self.process = None
        self.pipe = None
        self.start()

    def start(self) -> None:
        """Start the child and wait until its model is loaded (a failed load is answered 503
        per request, as TorchServe does, by the child)."""
        context = multiprocessing.get_context("spawn")  # no copy of the engine's threads
        self.pipe, child_end = context.Pipe()
        self.process = context.Process(
            target=serve_batches, args=(child_end, *self.args), daemon=True
        )
        self.process.start()
        child_end.close()
        self.pipe.recv()

    def run(self, batch: list[RequestInput]) -> list[Answer]:
        """The batch's answers, in order. A child that died, or ran past the response timeout
        (then it is killed), is started again for the next batch; the batch it was computing
        gets TorchServe's "Worker died." each (`worker_died_answer`)."""
        if not self.process.is_alive():
            self._stop_child()
            self.start()
        try:
            self.pipe.send(batch)
            if self.pipe.poll(self.response_timeout):
                return self.pipe.recv()
            self.process.kill()  # hung: TorchServe kills the worker at its response timeout
            exitcode = None
        except (EOFError, OSError):
            self.process.join(timeout=5)  # its exit code tells a SIGKILL from a crash
            exitcode = self.process.exitcode
        self._stop_child()  # the next batch starts a new one
        return [worker_died_answer(exitcode)] * len(batch)

    def close(self) -> None:
        """Stop the child (it also stops by itself when this process's end of the pipe goes)."""
        self._stop_child()

    def _stop_child(self) -> None:
        if self.pipe is not None:
            self.pipe.close()
        if self.process is not None:
            self.process.join(timeout=5)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()


class Isolated(ModelProcess):
    """`OfflineServer(isolate=True)`'s model: a `ModelProcess` that owns its unpacked folder."""

    def __init__(self, name, folder, batch_size, gpu_id, response_timeout, envelope=None) -> None:
        self.name, self.folder = name, folder
        self.entry = None  # the handler lives in the child
        self.load_error = None
        super().__init__(name, folder.path, batch_size, gpu_id, None, response_timeout, envelope)

    def close(self) -> None:
        super().close()
        self.folder.remove()


def _exit_with_parent(parent: int, leftover: str | None) -> None:
    """End this process once its parent has ended (SIGKILL, SIGTERM: no cleanup ran there),
    removing what the parent would have removed."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    _remove(leftover)
    os._exit(1)


def _remove(leftover: str | None) -> None:
    if leftover:
        shutil.rmtree(leftover, ignore_errors=True)


def serve_batches(
    pipe,
    name: str,
    folder: str,
    batch_size: int,
    gpu_id: int | None,
    threads: int | None,
    envelope: str | None = None,
    leftover: str | None = None,
) -> None:
    """In the child: load the model, then answer batches until the parent's end closes (or the
    parent is gone: a busy handler would not see the pipe close); then remove `leftover`, which
    the parent, stopping or gone, no longer needs."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the engine, which stops this
    if leftover:  # a Ray replica's: Ray kills a dead replica's process group, this with it,
        os.setsid()  # before it could remove the folder; it ends by itself (_exit_with_parent)
    watch = threading.Thread(target=_exit_with_parent, args=(os.getppid(), leftover), daemon=True)
    watch.start()
    if threads:
        import torch

        torch.set_num_threads(threads)
    model = open_model(Path(folder), name)
    worker = Worker(name, model, batch_size, gpu_id, resident=True, envelope=envelope)
    try:
        pipe.send(None)  # loaded (a failed load: run_batch answers 503 per request)
        while True:
            try:
                batch = pipe.recv()
            except (EOFError, OSError):  # the parent closed its end, or died (a reset pipe)
                break
            answers = run_batch(worker, batch)
            try:
                pipe.send(answers)
            except OSError:  # the parent died while the batch ran
                break
    finally:
        worker.close()
    _remove(leftover)
