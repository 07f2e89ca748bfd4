"""Ray Serve: TorchServe's inference API as a Ray Serve application, one deployment per model.

The first model's deployment is also the ingress, TorchServe's frontend: it answers what the
frontend answers itself, batches its own requests and sends the others to their model's
deployment; `ModelReplica.predict` is `@serve.batch`ed, so a replica runs `ts`'s worker once per
Ray batch. Models travel as `.mar` bytes, so replicas load them on any node of a cluster
(`--address`), each replica holding its own copy.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import Response

from ..offline.frontend import Answer, RequestInput, admit
from ..offline.server import run_batch
from ..offline.store import ModelFolder, open_model
from ..offline.worker_process import Worker
from .models import ModelSpec, Settings
from .wire import http_response

APP_NAME = "handlerkit"
QUEUE_PER_REPLICA = 256  # requests a model replica holds (TorchServe's job queue is 100)
INGRESS_QUEUE = 10_000  # the ingress replicas also hold the requests for the other models


@serve.deployment(max_ongoing_requests=QUEUE_PER_REPLICA)
class ModelReplica:
    """One replica of a model: its own unpacked `.mar` and `ts` worker.

    The first model's replicas are also the ingress (`__call__`, TorchServe's frontend rules):
    its own requests go straight to its batch, the other models' to their deployments. A
    separate frontend deployment would cost every request one more hop between Ray processes.

    Args:
        name: The model name.
        archive: The model as `.mar` bytes (a zip with `MAR-INF/MANIFEST.json`).
        batch_size: Largest Ray batch (`@serve.batch`'s `max_batch_size`).
        max_batch_delay: Milliseconds to fill a batch (`batch_wait_timeout_s`).
        threads: torch's intra-op threads; None keeps Ray's (OMP_NUM_THREADS = reserved CPUs).
        others: The ingress only: the other models' deployment handles, by name.
    """

    def __init__(
        self,
        name: str,
        archive: bytes,
        batch_size: int,
        max_batch_delay: int,
        threads: int | None,
        others: dict | None = None,
    ) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.name, self.others = name, others or {}
        self.models = {name, *self.others}  # what this replica admits as the ingress
        self.folder = _unpack(name, archive)
        self.worker = Worker(name, self.folder, batch_size, _gpu_id())
        self.predict.set_max_batch_size(batch_size)
        self.predict.set_batch_wait_timeout_s(max_batch_delay / 1000)

    async def __call__(self, request: Request) -> Response:
        """The ingress: TorchServe's frontend rules, then this model's batch or another's."""
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        outcome = admit(path, await request.body(), dict(request.headers), self.models)
        if isinstance(outcome, Answer):
            return http_response(outcome)
        if outcome.model == self.name:
            return http_response(await self.predict(outcome.request))
        return http_response(await self.others[outcome.model].predict.remote(outcome.request))

    @serve.batch(max_batch_size=1, batch_wait_timeout_s=0.0)
    async def predict(self, batch: list[RequestInput]) -> list[Answer]:
        """One `handle` call per Ray batch, off the event loop so the next batch can fill."""
        return await asyncio.get_running_loop().run_in_executor(None, run_batch, self.worker, batch)

    def __del__(self) -> None:  # Ray Serve calls it when the replica stops
        self.worker.close()


def application(specs: list[ModelSpec], settings: Settings):
    """The Serve application: a `ModelReplica` deployment per model, the first one the ingress.

    On a local Ray, replicas use as many torch threads as a TorchServe worker here would (Ray
    gives a replica one per reserved CPU), so they compute the same floats, bit for bit.
    """
    threads = None if settings.address else _torch_threads()

    def deployment(spec: ModelSpec, queue: int, others: dict | None = None):
        options = ModelReplica.options(
            name=f"model-{spec.name}", num_replicas=settings.replicas, max_ongoing_requests=queue
        )
        archive = archive_bytes(spec)
        return options.bind(
            spec.name, archive, spec.batch_size, spec.max_batch_delay, threads, others
        )

    first, *rest = specs
    others = {
        spec.name: deployment(spec, max(QUEUE_PER_REPLICA, 2 * spec.batch_size)) for spec in rest
    }
    return deployment(first, INGRESS_QUEUE, others)


def archive_bytes(spec: ModelSpec) -> bytes:
    """The model as `.mar` bytes: the file itself, or a model folder laid out and zipped."""
    if spec.source.is_file():
        return spec.source.read_bytes()
    folder = open_model(spec.source, spec.name, spec.handler)
    try:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for path in sorted(folder.path.rglob("*")):
                if path.is_file():  # links followed: the archive holds the files themselves
                    archive.write(path, path.relative_to(folder.path).as_posix())
        return buffer.getvalue()
    finally:
        folder.remove()


def start_ray(specs: list[ModelSpec], settings: Settings) -> str | None:
    """Join the cluster at `settings.address`, or start a private local Ray on loopback.

    Returns:
        The temp folder of a local Ray (remove it after `ray.shutdown()`), else None.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reporting home
    quiet = {"log_to_driver": False, "logging_level": "warning"}
    if settings.address:
        ray.init(address=settings.address, **quiet)
        return None
    temp = tempfile.mkdtemp(prefix="hk-ray-")  # short: Ray's socket paths must fit 107 bytes
    replicas = len(specs) * settings.replicas  # each reserves one CPU, as in a cluster
    ray.init(
        num_cpus=max(os.cpu_count() or 1, replicas),
        include_dashboard=False,
        _temp_dir=temp,
        _node_ip_address="127.0.0.1",
        **quiet,
    )
    return temp


def deploy(specs: list[ModelSpec], settings: Settings) -> None:
    """Start Serve's HTTP proxy on `settings.host:port` and run the application."""
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(application(specs, settings), name=APP_NAME, route_prefix="/")


def run_forever(specs: list[ModelSpec], settings: Settings, ready=None) -> None:
    """Serve `specs` on Ray Serve in the foreground until interrupted (Ctrl-C)."""
    temp = start_ray(specs, settings)
    try:
        deploy(specs, settings)
        if ready is not None:
            ready()
        while True:
            time.sleep(3600)
    finally:
        if settings.address:
            serve.delete(APP_NAME)  # a shared cluster keeps Serve for its other applications
        else:
            serve.shutdown()
        ray.shutdown()
        if temp:
            shutil.rmtree(temp, ignore_errors=True)


def _unpack(name: str, archive: bytes) -> ModelFolder:
    with tempfile.NamedTemporaryFile(suffix=".mar") as mar:
        mar.write(archive)
        mar.flush()
        return open_model(Path(mar.name), name)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()  # this process is not a Ray worker: torch's own default


def _gpu_id() -> int | None:
    import torch

    return 0 if torch.cuda.is_available() else None  # Ray shows a replica only its own GPUs
