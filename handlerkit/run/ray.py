"""Ray Serve: TorchServe's inference API in front, one Ray Serve deployment per model behind.

As in TorchServe, the frontend batches and the workers compute. The frontend (uvicorn,
TorchServe's frontend rules) runs in one replica of its own on the serve command's machine: it
answers what TorchServe's frontend answers itself and gathers each model's requests with Ray
Serve's `@serve.batch` (`max_batch_size`, `batch_wait_timeout_s`); each batch goes to one of the
model's replicas through a `DeploymentHandle`, in one call (gRPC, Ray Serve's throughput mode),
and the replica hands it to `ts`'s worker in the model's own process (`ModelProcess`, as
TorchServe's frontend hands batches to its Python worker): one `handle` call. Ray Serve places
the replicas (`--replicas`) on the cluster's nodes (`--address`) and spreads the batches over
them; models travel as `.mar` bytes, so a replica loads its own copy on any node. Ray Serve's
HTTP proxy is not started: TorchServe's API is the frontend's.

Why not Ray Serve's own HTTP ingress: TorchServe's API answers some requests in the frontend
itself (ping, unknown models, oversized bodies) with its exact statuses and bytes, and hands the
handler whole batches of raw requests, which a FastAPI ingress per model cannot reproduce.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ray
import uvicorn
from ray import serve

from ..serving.frontend import Answer, RequestInput, error_answer, worker_died_answer
from ..serving.metrics import Metrics
from ..serving.model_folder import ModelFolder, mar_bytes, open_model
from .asgi import admit_request, bind, case_keeping_protocol, counted, send_answer, serve_metrics
from .model_process import ModelProcess
from .models import ModelSpec, Settings, served

APP_NAME = "handlerkit"
BATCHES_PER_REPLICA = 2  # in flight per replica: one computing, the next one already there
# No access log line per Ray call (each batch would write one to the replica's log file).
QUIET = {"enable_access_log": False, "log_level": "WARNING"}
# Ray Serve's throughput-optimized mode in both deployments (the frontend's calls reach the
# replicas over gRPC, not as Ray tasks; user code and routing on each replica's main loop), its
# direct ingress off: TorchServe's frontend is the HTTP server.
THROUGHPUT_MODE = {
    "env_vars": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0"}
}


@serve.deployment(
    max_ongoing_requests=BATCHES_PER_REPLICA,
    logging_config=QUIET,
    ray_actor_options={"runtime_env": THROUGHPUT_MODE},
)
class ModelReplica:
    """One replica of a model: its own unpacked `.mar`, and `ts`'s worker in a process of its
    own (`ModelProcess`); a call is a batch.

    Args:
        name: The model name.
        archive: The model as `.mar` bytes (a zip with `MAR-INF/MANIFEST.json`).
        batch_size: The model's batch size (what `ts` tells the handler).
        threads: torch's intra-op threads; None keeps Ray's (OMP_NUM_THREADS = reserved CPUs).
        response_timeout: Seconds a batch may compute before the model's process is restarted.
        envelope: TorchServe's `service_envelope` ("kserve", "kservev2"), or None.
    """

    def __init__(
        self,
        name: str,
        archive: bytes,
        batch_size: int,
        threads: int | None,
        response_timeout: float,
        envelope: str | None = None,
    ) -> None:
        self.folder = _unpack(name, archive)
        self.worker = ModelProcess(
            name,
            self.folder.path,
            batch_size,
            _gpu_id(),
            threads,
            response_timeout,
            envelope,
            leftover=self.folder.temporary,  # removed there if this replica is killed
        )
        self.compute = ThreadPoolExecutor(1)  # one batch at a time, as in TorchServe's worker

    async def run(self, batch: list[RequestInput]) -> list[Answer]:
        """One `handle` call for the batch, in the model's process; an answer per request, in
        order. The replica's event loop stays free meanwhile (Ray Serve's health checks)."""
        return await asyncio.get_running_loop().run_in_executor(
            self.compute, self.worker.run, batch
        )

    def __del__(self) -> None:  # Ray Serve calls it when the replica stops
        self.worker.close()
        self.folder.remove()


class Frontend:
    """TorchServe's frontend as an ASGI app: its own answers, or the request into its model's
    Ray Serve batch (`@serve.batch`), which one replica runs.

    Args:
        handles: Each model's deployment handle, by (name, version).
        specs: The models' versions, batch sizes and delays.
        replicas: Replicas per model (batches in flight: `BATCHES_PER_REPLICA` each).
        open_inference_protocol: Answer KServe v2's server routes (`/v2/health/ready`, ...).
    """

    def __init__(
        self,
        handles: dict,
        specs: list[ModelSpec],
        replicas: int,
        open_inference_protocol: bool = False,
    ) -> None:
        self.metrics = Metrics()  # TorchServe's frontend counters
        self.batches = {
            spec.key: batched_calls(
                handles[spec.key], spec, BATCHES_PER_REPLICA * replicas, self.metrics
            )
            for spec in specs
        }
        self.served = served(specs)
        self.open_inference_protocol = open_inference_protocol

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":  # uvicorn runs with lifespan off: http only
            return
        outcome = await admit_request(scope, receive, self.served, self.open_inference_protocol)
        answer = await counted(outcome, self._run, self.metrics)
        await send_answer(answer, scope, receive, send)

    async def _run(self, job) -> Answer:
        return await self.batches[job.key](job.request)


@serve.deployment(num_replicas=1, max_ongoing_requests=1, logging_config=QUIET)
class HttpFrontend:
    """The application's root: one replica on the serve command's node runs `Frontend` on
    uvicorn, listening on `host:port` (Ray Serve's proxy is off). A replica, so that
    `@serve.batch` runs as Ray Serve runs it; it receives no Serve requests itself.

    Args:
        handles: Each model's deployment handle, by (name, version) (Serve binds them).
        specs: The models, for their batch settings.
        replicas: Replicas per model.
        host, port: Where TorchServe's inference API listens.
        open_inference_protocol: Answer KServe v2's server routes (`/v2/health/ready`, ...).
        metrics_port, metrics_mode: TorchServe's metrics API on host:metrics_port, and its
            `metrics_mode` ("prometheus": the counters at `/metrics`).
    """

    async def __init__(
        self,
        handles: dict,
        specs: list[ModelSpec],
        replicas: int,
        host,
        port,
        open_inference_protocol: bool = False,
        metrics_port: int = 8082,
        metrics_mode: str = "log",
    ):
        frontend = Frontend(handles, specs, replicas, open_inference_protocol)
        self.metrics_server = serve_metrics(frontend.metrics, metrics_mode, host, metrics_port)
        config = uvicorn.Config(
            frontend,
            lifespan="off",
            log_level="warning",
            http=case_keeping_protocol(),  # header names as written, as TorchServe passes them
        )
        self.server = uvicorn.Server(config)
        listening = bind(host, port)  # before Serve reports the application running
        listening.listen(2048)
        # On the replica's main event loop (THROUGHPUT_MODE): the requests, their batches and
        # the calls to the replicas share one loop and one thread.
        self.serving = asyncio.get_running_loop().create_task(
            self.server.serve(sockets=[listening])
        )

    def __del__(self) -> None:
        self.server.should_exit = True
        self.metrics_server.should_exit = True


def batched_calls(handle, spec: ModelSpec, in_flight: int, metrics: Metrics):
    """A model's requests in Ray Serve batches: the function returned takes one request and
    returns its `Answer`; Ray gathers up to `spec.batch_size` requests (waiting at most
    `max_batch_delay`), and each batch is one call of a replica's `run` (when it leaves, the
    requests' queue time ends, in `metrics`)."""
    # Over gRPC, as in Ray Serve's throughput mode; the handle came from the serve command,
    # where that mode is off, so it is asked for here.
    run = handle.options(_by_reference=False).run

    async def rows(batch: list[RequestInput]) -> list[Answer]:
        for request in batch:
            metrics.scheduled(request.request_id)
        try:
            return await run.remote(batch)
        except ray.exceptions.RayActorError:  # the replica died under the batch
            return [replica_died_answer()] * len(batch)
        except Exception as error:  # Ray failed: a server fault, 5xx
            message = f"Ray Serve could not run the batch: {type(error).__name__}: {error}"
            return [error_answer(500, "InternalServerException", message)] * len(batch)

    return serve.batch(
        max_batch_size=spec.batch_size,
        batch_wait_timeout_s=spec.max_batch_delay / 1000,
        max_concurrent_batches=in_flight,
    )(rows)


def replica_died_answer() -> Answer:
    """TorchServe's answer to a batch whose worker died, for a replica that died under its batch
    (Ray then starts another). Ray does not say how its actor ended; no handler code runs in a
    replica (it runs in the model's process, whose deaths `ModelProcess` answers by their exit
    code), so a replica dies when something outside ends it: a SIGKILL, from the OOM killer or a
    person, which TorchServe 0.12 answers 507."""
    return worker_died_answer(-signal.SIGKILL)


def application(specs: list[ModelSpec], settings: Settings):
    """The Serve application: `HttpFrontend` on this node, a `ModelReplica` deployment per model.

    On a local Ray, replicas use as many torch threads as a TorchServe worker here would (Ray
    gives a replica one per reserved CPU), so they compute the same floats, bit for bit.
    """
    threads = None if settings.address else _torch_threads()
    models = {
        spec.key: ModelReplica.options(
            name=f"model-{spec.name}@{spec.version}", num_replicas=settings.replicas
        ).bind(
            spec.name,
            archive_bytes(spec),
            spec.batch_size,
            threads,
            settings.response_timeout,
            settings.service_envelope,
        )
        for spec in specs
    }
    frontend = HttpFrontend.options(
        name="frontend",
        ray_actor_options={
            "num_cpus": 0,
            "resources": _this_node(),
            "runtime_env": THROUGHPUT_MODE,
        },
    )
    return frontend.bind(
        models,
        specs,
        settings.replicas,
        settings.host,
        settings.port,
        settings.open_inference_protocol,
        settings.metrics_port,
        settings.metrics_mode,
    )


def archive_bytes(spec: ModelSpec) -> bytes:
    """The model as `.mar` bytes: the file itself, or a model folder laid out and zipped."""
    return mar_bytes(spec.source, spec.name, spec.handler)


def start_ray(specs: list[ModelSpec], settings: Settings) -> str | None:
    """Join the cluster at `settings.address`, or start a private local Ray on loopback (every
    Ray process listening on 127.0.0.1 only: `serve_cli.keep_local_ray_on_loopback`).

    Returns:
        The temp folder of a local Ray (remove it after `ray.shutdown()`), else None.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reporting home
    quiet = {"log_to_driver": False, "logging_level": "warning"}
    if settings.address:
        ray.init(address=settings.address, **quiet)
        return None
    temp = tempfile.mkdtemp(prefix="hk-ray-")  # short: Ray's socket paths must fit 107 bytes
    # Ray's processes write their temp files (the replicas' unpacked models) in it, so that
    # removing it after Ray leaves nothing, whichever process was killed meanwhile.
    os.environ["TMPDIR"] = temp
    replicas = len(specs) * settings.replicas  # each reserves one CPU, as in a cluster
    ray.init(
        num_cpus=max(os.cpu_count() or 1, replicas),
        include_dashboard=False,
        dashboard_host="127.0.0.1",  # what of the dashboard still starts (its head, agents)
        _temp_dir=temp,
        _node_ip_address="127.0.0.1",
        **quiet,
    )
    if ray.util.get_node_ip_address() != "127.0.0.1":  # Ray's processes listen beyond loopback
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        raise RuntimeError(
            "the local Ray took this machine's address, not 127.0.0.1: set "
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before ray is imported (serve_cli does)"
        )
    return temp


def deploy(specs: list[ModelSpec], settings: Settings) -> None:
    """Run the application with Serve's HTTP proxy off (the frontend listens instead)."""
    serve.start(proxy_location="Disabled")
    serve.run(application(specs, settings), name=APP_NAME, route_prefix=None)


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


def _this_node() -> dict[str, float]:
    """Ray's resource that places an actor on the node of this process (none through Ray Client,
    whose process is not a node: the frontend then runs where Ray puts it)."""
    ip = ray.util.get_node_ip_address()
    nodes = {node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]}
    return {f"node:{ip}": 0.001} if ip in nodes else {}


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
