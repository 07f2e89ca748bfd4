"""`TorchServe`: a real local TorchServe that a notebook or a test starts, asks and stops.

The centre of `handlerkit.serve`: `process` says how to run Java, `run.launcher` runs and stops it,
`client` asks it, `logs` explain it.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import weakref
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ...serving.frontend import Answer
from ...serving.model_folder import version_of
from .. import launcher
from ..models import HOST
from .archive import archive, mar_in_store
from .client import REQUEST_TIMEOUT_S, send
from .errors import ServeError
from .logs import LOG_CONFIG, STARTED_LINE, file_size, read_from, worker_failure
from .process import choose_ports, command, environment, find_java, write_config

STOP_GRACE_S = 20.0  # for Java and its workers to exit on SIGTERM


class TorchServe:
    """A real TorchServe on 127.0.0.1 that a notebook or a test starts, asks and stops.

    Use it as a context manager so the Java server always stops, even when the body raises::

        with TorchServe("model_store", {"mnist": "mnist.mar"}) as server:
            server.predict("mnist", png_bytes).json()

    Attributes:
        model_store: Folder holding the `.mar` files.
        log_dir: Folder TorchServe writes `ts_log.log` and `model_log.log` to.
        ports: Port per endpoint (`inference`, `management`, `metrics`, `grpc_*`).
    """

    def __init__(
        self,
        model_store: str | os.PathLike,
        models: Mapping[str, str | os.PathLike | Sequence[str | os.PathLike]] | None = None,
        batch_size: int = 1,
        max_batch_delay: int = 100,
        workers: int = 1,
        startup_timeout: float = 120,
        log_dir: str | os.PathLike | None = None,
        ports: Mapping[str, int] | None = None,
        token_auth: bool = False,
        model_api: bool = True,
        model_settings: Mapping[str, Mapping[str, int]] | None = None,
        config: Mapping[str, str] | None = None,
    ) -> None:
        """Describe the server; nothing starts before `start()` or `with`.

        Args:
            model_store: Folder holding the `.mar` files.
            models: Model name -> `.mar` (a file name in `model_store` or a path in it), or a
                list of them: the model's versions side by side (each its manifest's
                version; the first is the default), registered at start.
            batch_size: Default largest batch a worker gets.
            max_batch_delay: Default milliseconds TorchServe waits to fill a batch.
            workers: Default worker processes per model.
            startup_timeout: Seconds allowed for the server, and for each model, to get ready.
            log_dir: Where the logs go; defaults to a temporary folder removed at stop.
            ports: Fixed ports by endpoint name; the others are picked free.
            token_auth: TorchServe's token authorization (its default: on); the keys are in
                `key_file.json` in the server's folder, and this object sends them.
            model_api: TorchServe's model API, registration over HTTP (its default: off).
                Off: `models` are loaded at start, and `register` is refused.
            model_settings: Per model: `batch_size`, `max_batch_delay`, `response_timeout`.
            config: More `config.properties` keys, written last (a later key wins), e.g.
                `{"service_envelope": "kservev2"}`.
        """
        self.model_store = Path(model_store).resolve()
        self.models = {
            name: list(mars) if isinstance(mars, (list, tuple)) else [mars]
            for name, mars in (models or {}).items()
        }
        self.batch_size = batch_size
        self.max_batch_delay = max_batch_delay
        self.workers = workers
        self.startup_timeout = startup_timeout
        self._log_dir_arg = Path(log_dir).resolve() if log_dir is not None else None
        self._fixed_ports = dict(ports or {})
        self.token_auth, self.model_api = token_auth, model_api
        self.model_settings = {name: dict(s) for name, s in (model_settings or {}).items()}
        self.config = dict(config or {})
        self.log_dir: Path | None = self._log_dir_arg
        self.ports: dict[str, int] = {}
        self._process: subprocess.Popen | None = None
        self._workdir: Path | None = None

    @classmethod
    def for_folder(
        cls, model_dir: str | os.PathLike, name: str, handler: str | None = None, **kwargs: Any
    ) -> TorchServe:
        """Archive one model folder into a temporary store and describe a server for it.

        Example: `with TorchServe.for_folder("data/mnist", "mnist") as server: ...`

        Args:
            model_dir: TorchServe-style model folder (see `archive`).
            name: Model name to register.
            handler: Handler file or built-in name; defaults to `handler.py`.
            **kwargs: Passed on to `TorchServe`.

        Returns:
            A server (not yet started) that registers `name` when started; its temporary
            model store goes away with the server object.
        """
        store = Path(tempfile.mkdtemp(prefix="handlerkit-store-"))
        try:
            mar = archive(model_dir, store, name, handler=handler)
        except BaseException:
            shutil.rmtree(store, ignore_errors=True)
            raise
        server = cls(store, {name: mar.name}, **kwargs)
        weakref.finalize(server, shutil.rmtree, store, True)
        return server

    # ----------------------------------------------------------------- properties

    @property
    def inference_url(self) -> str:
        """Base URL of the inference API, e.g. `http://127.0.0.1:8080`."""
        return self._url("inference")

    @property
    def management_url(self) -> str:
        """Base URL of the management API."""
        return self._url("management")

    @property
    def metrics_url(self) -> str:
        """Base URL of the metrics API."""
        return self._url("metrics")

    @property
    def running(self) -> bool:
        """True while the TorchServe process is alive."""
        return self._process is not None and self._process.poll() is None

    def __repr__(self) -> str:
        state = f"running at {self.inference_url}" if self.running else "stopped"
        return f"<TorchServe {state}, store={self.model_store}, models={list(self.models)}>"

    def _url(self, endpoint: str) -> str:
        if endpoint not in self.ports:
            raise ServeError("TorchServe is not started: use `with TorchServe(...)` or .start()")
        return f"http://{HOST}:{self.ports[endpoint]}"

    # ----------------------------------------------------------------- lifecycle

    def __enter__(self) -> TorchServe:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> TorchServe:
        """Start TorchServe, wait until it answers, and register `models`.

        Returns:
            The server itself.

        Raises:
            ServeError: Java or torchserve is missing, a port is taken, or a model failed.
        """
        if self._process is not None:
            return self
        if not self.model_store.is_dir():
            raise ServeError(f"model store {self.model_store} does not exist: call archive() first")
        java = find_java()
        self.ports = choose_ports(self._fixed_ports)
        self._workdir = Path(tempfile.mkdtemp(prefix="handlerkit-serve-"))
        self.log_dir = self._log_dir_arg or self._workdir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        config = write_config(
            self._workdir,
            self.ports,
            self.model_store,
            self.workers,
            self.startup_timeout,
            self.token_auth,
            self.model_api,
            None if self.model_api else self._startup_models(),
            self.config,
        )
        try:
            self._launch(config, java)
            self._wait_until_up()
            for name, mars in self.models.items():
                for mar in mars:
                    if self.model_api:
                        settings = self.model_settings.get(name, {})
                        self.register(name, mar, replace=False, **settings)
                    else:  # loaded at start: wait for its workers
                        version = self._version(mar)
                        self._wait_until_ready(name, self.workers, (0, 0), version)
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, config: Path, java: str) -> None:
        """Start `torchserve --foreground` in the work folder, its output in `console.log`."""
        argv = command(self.model_store, config, LOG_CONFIG, self.token_auth, self.model_api)
        env = environment(self._workdir, self.log_dir, java)
        with open(self._workdir / "console.log", "wb") as console:
            self._process = launcher.start(self, argv, console, self._workdir, env)

    def _wait_until_up(self) -> None:
        """Wait until every endpoint is bound (REST first, gRPC last) and the APIs answer."""
        try:
            launcher.wait_until_up(self._process, self._ready, self.startup_timeout, poll=0.2)
        except launcher.Exited:
            raise ServeError(self._startup_failure()) from None
        except TimeoutError:
            raise ServeError(
                f"TorchServe did not answer within {self.startup_timeout:.0f} s: raise "
                f"startup_timeout or read the log below.\n{self.logs(tail=40)}"
            ) from None

    def _ready(self) -> bool:
        """The console says TorchServe started, and the inference and management APIs answer."""
        return (
            STARTED_LINE in read_from(self._log("console.log"), 0)
            and self._answers("inference", "/ping")
            and self._answers("management", "/models")
        )

    def _answers(self, endpoint: str, path: str) -> bool:
        return launcher.answers(self._url(endpoint) + path, self.token(endpoint), timeout=2)

    def _startup_failure(self) -> str:
        """Explain why the TorchServe process exited during start."""
        taken = [f"{n} port {p}" for n, p in self.ports.items() if launcher.port_in_use(p)]
        reason = f"TorchServe exited during start (exit code {self._process.returncode})"
        if taken:
            reason += (
                f": {', '.join(taken)} on {HOST} is already in use; stop what listens there "
                "or leave ports=None to pick free ones"
            )
        return f"{reason}.\n{self.logs(tail=40, files=('console.log', 'ts_log.log'))}"

    @property
    def folder(self) -> Path | None:
        """The server's working folder (its config, `key_file.json`); None when stopped."""
        return self._workdir

    def token(self, endpoint: str) -> str | None:
        """The key TorchServe wants for `endpoint` ("inference", "management"), or None when
        token authorization is off (read from the `key_file.json` it writes at start)."""
        if not self.token_auth or endpoint not in ("inference", "management"):
            return None
        try:
            keys = json.loads((self._workdir / "key_file.json").read_text())
        except (OSError, ValueError, TypeError):
            return None  # not written yet
        return keys[endpoint]["key"]

    def _startup_models(self) -> dict[str, list[dict]]:
        """TorchServe's `models` setting: each model's versions, with each version's .mar,
        workers and batching (TorchServe's default version is the first loaded)."""
        loads = {}
        for name, mars in self.models.items():
            settings = self.model_settings.get(name, {})
            loads[name] = []
            for mar in mars:
                loads[name].append({
                    "marName": mar_in_store(self.model_store, mar),
                    "version": self._version(mar),
                    "minWorkers": self.workers,
                    "maxWorkers": self.workers,
                    "batchSize": settings.get("batch_size", self.batch_size),
                    "maxBatchDelay": settings.get("max_batch_delay", self.max_batch_delay),
                    "responseTimeout": settings.get("response_timeout", int(REQUEST_TIMEOUT_S)),
                })  # fmt: skip
        return loads

    def stop(self) -> None:
        """Stop TorchServe and its workers (SIGTERM, then SIGKILL), and remove temp folders."""
        process, self._process = self._process, None
        if process is not None:  # ask Java and its workers; `torchserve` reaps them and exits
            launcher.stop(self, process, signal.SIGTERM, STOP_GRACE_S, ask_children=True)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)  # a given log_dir lies elsewhere
        self._workdir = None
        if self._log_dir_arg is None:
            self.log_dir = None

    # ----------------------------------------------------------------- models

    def register(
        self,
        name: str,
        mar: str | os.PathLike,
        batch_size: int | None = None,
        max_batch_delay: int | None = None,
        workers: int | None = None,
        replace: bool = True,
        response_timeout: int | None = None,
    ) -> dict:
        """Register a `.mar` and wait until its workers are READY.

        Args:
            name: Model name used in `/predictions/<name>`.
            mar: `.mar` file name in `model_store`, or a path inside it.
            batch_size: Largest batch per worker call; None: the server's. Passed on as
                given, as TorchServe's API takes it (0 included).
            max_batch_delay: Milliseconds to wait to fill a batch; None: the server's.
            workers: Worker processes; None: the server's. 0 registers the model with no
                worker (TorchServe's default), ready to scale later.
            replace: Unregister a model already registered under `name` first.
            response_timeout: Seconds a batch may take (TorchServe's `responseTimeout`).

        Returns:
            The description of the version registered, from `GET /models/<name>/<version>`
            (a model's versions live side by side; the first registered is its default).

        Raises:
            ServeError: Registration failed; the message holds the handler's traceback.
        """
        if replace:
            self.unregister(name)
        version = self._version(mar)
        offsets = (file_size(self._log("model_log.log")), file_size(self._log("ts_log.log")))
        params = {
            "url": mar_in_store(self.model_store, mar),
            "model_name": name,
            "batch_size": self.batch_size if batch_size is None else batch_size,
            "max_batch_delay": self.max_batch_delay if max_batch_delay is None else max_batch_delay,
            "initial_workers": self.workers if workers is None else workers,
            "synchronous": "false",
        }
        if response_timeout is not None:
            params["response_timeout"] = int(response_timeout)
        url = f"{self.management_url}/models?{urllib.parse.urlencode(params)}"
        answer = send("POST", url, self.startup_timeout, token=self.token("management"))
        if not answer.ok:
            raise ServeError(f"TorchServe refused to register {name} from {mar}: {answer.text}")
        return self._wait_until_ready(name, params["initial_workers"], offsets, version)

    def unregister(self, name: str) -> bool:
        """Unregister a model if it is registered.

        Args:
            name: Model name.

        Returns:
            True when a model was unregistered.
        """
        url = f"{self.management_url}/models/{urllib.parse.quote(name)}"
        answer = send("DELETE", url, 60, token=self.token("management"))
        if answer.status == 404:
            return False
        if not answer.ok:
            raise ServeError(f"TorchServe could not unregister {name}: {answer.text}")
        return True

    def _version(self, mar: str | os.PathLike) -> str:
        """The version a `.mar` in the store declares (TorchServe keys its settings by it)."""
        return version_of(self.model_store / mar_in_store(self.model_store, mar))

    def describe(self, name: str, version: str | None = None) -> dict:
        """Return `GET /models/<name>[/<version>]` (batch size, workers and their status) of
        `version`, or of the default version."""
        path = "/".join(urllib.parse.quote(part, safe="") for part in (name, version) if part)
        url = f"{self.management_url}/models/{path}"
        answer = send("GET", url, 10, token=self.token("management"))
        if not answer.ok:
            raise ServeError(f"model {name} is not registered: {answer.text}")
        return answer.json()[0]

    def _wait_until_ready(
        self, name: str, workers: int, offsets: tuple[int, int], version: str | None = None
    ) -> dict:
        """Poll the model (`version`, or the default) until `workers` are READY; fail fast when
        a worker dies."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise ServeError(f"TorchServe exited while loading {name}.\n{self.logs(tail=60)}")
            model = self.describe(name, version)
            ready = [w for w in model.get("workers", []) if w.get("status") == "READY"]
            if len(ready) >= workers:
                return model
            failure = worker_failure(
                self._log("model_log.log"), self._log("ts_log.log"), name, offsets
            )
            if failure:
                self._forget(name)
                raise ServeError(
                    f"the worker for model {name} died while loading (fix the handler, then "
                    f"register again; server.logs() shows the full log). It raised:\n"
                    f"{failure}"
                )
            time.sleep(0.2)
        self._forget(name)
        raise ServeError(
            f"model {name} had no READY worker within {self.startup_timeout:.0f} s: raise "
            f"startup_timeout or read the log below.\n{self.logs(tail=60)}"
        )

    def _forget(self, name: str) -> None:
        """Unregister a model that failed, so TorchServe stops restarting its worker."""
        if not self.running:
            return
        try:
            self.unregister(name)
        except (OSError, ServeError):
            pass

    # ----------------------------------------------------------------- predictions

    def predict(
        self, name: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> Answer:
        """Send one request to `/predictions/<name>`.

        Args:
            name: Model name.
            data: Request body, e.g. PNG bytes.
            content_type: The `Content-Type` header.

        Returns:
            The `Answer` (status, body bytes, headers, seconds; `.json()` parses the body),
            also when TorchServe refuses the request before reading it all (413: the body is
            over its max_request_size).
        """
        url = f"{self.inference_url}/predictions/{urllib.parse.quote(name)}"
        return send("POST", url, REQUEST_TIMEOUT_S, data, content_type, self.token("inference"))

    def predict_many(
        self,
        name: str,
        payloads: Sequence[bytes],
        concurrency: int = 32,
        content_type: str = "application/octet-stream",
    ) -> list[Answer]:
        """Send many requests at once; answers come back in the order of `payloads`.

        Args:
            name: Model name.
            payloads: Request bodies.
            concurrency: Requests in flight at the same time.
            content_type: The `Content-Type` header.

        Returns:
            One `Answer` per payload, same order.
        """

        def one(data: bytes) -> Answer:
            try:
                return self.predict(name, data, content_type)
            except (OSError, http.client.HTTPException) as error:  # report, do not lose it
                return Answer(0, f"{type(error).__name__}: {error}".encode())

        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            return list(pool.map(one, payloads))

    # ----------------------------------------------------------------- logs

    def logs(self, tail: int = 200, files: Sequence[str] = ("ts_log.log", "model_log.log")) -> str:
        """Return the last `tail` lines of each TorchServe log, for showing in a notebook.

        Args:
            tail: Lines per file.
            files: Log file names in `log_dir` (`console.log` is the process output).

        Returns:
            The log tails, each under a `== name ==` heading.
        """
        parts = []
        for file_name in files:
            path = self._log(file_name)
            if path.is_file():
                text = path.read_text(errors="replace").splitlines()[-tail:]
                parts.append(f"== {file_name} ==\n" + "\n".join(text))
        return "\n".join(parts)

    def _log(self, file_name: str) -> Path:
        if file_name == "console.log" and self._workdir is not None:
            return self._workdir / file_name
        return (self.log_dir or Path(os.devnull)) / file_name
