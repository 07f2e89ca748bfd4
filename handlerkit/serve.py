"""Serve a TorchServe model folder with a real local TorchServe, from a notebook or a test.

`archive` packs a folder into a .mar; `TorchServe` runs the Java server on 127.0.0.1 and stops it.
"""

from __future__ import annotations

import atexit
import http.client
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

__all__ = ["Answer", "ServeError", "TorchServe", "archive", "measure"]

HOST = "127.0.0.1"
WEIGHT_SUFFIXES = (".pt", ".pth")
PORT_NAMES = ("inference", "management", "metrics", "grpc_inference", "grpc_management")
# What a Python worker prints when it could not load the model (TorchServe's model_service_worker).
DEATH_MARKERS = ("Backend worker process died", "Failed to load model")
# TorchServe's own log4j2.xml sends every ts_log line twice and copies model logs into ts_log;
# this one writes each line once, to one file per kind, and nothing to the console.
LOG4J2_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration>
  <Appenders>
    <File name="access_log" fileName={access}>
      <PatternLayout pattern="%d{{ISO8601}} - %m%n"/></File>
    <File name="metrics" fileName={metrics}>
      <PatternLayout pattern="%d{{ISO8601}} - %m%n"/></File>
    <File name="model_log" fileName={model}>
      <PatternLayout pattern="%d{{ISO8601}} [%-5p] %t %c - %m%n"/></File>
    <File name="ts_log" fileName={ts}>
      <PatternLayout pattern="%d{{ISO8601}} [%-5p] %t %c - %m%n"/></File>
  </Appenders>
  <Loggers>
    <Logger name="ACCESS_LOG" level="info" additivity="false">
      <AppenderRef ref="access_log"/></Logger>
    <Logger name="MODEL_LOG" level="all" additivity="false">
      <AppenderRef ref="model_log"/></Logger>
    <Logger name="MODEL_METRICS" level="all" additivity="false">
      <AppenderRef ref="metrics"/></Logger>
    <Logger name="TS_METRICS" level="all" additivity="false">
      <AppenderRef ref="metrics"/></Logger>
    <Logger name="org.pytorch.serve" level="info" additivity="false">
      <AppenderRef ref="ts_log"/></Logger>
    <Logger name="io.netty" level="error"/>
    <Logger name="org.apache" level="off"/>
    <Root level="info"><AppenderRef ref="ts_log"/></Root>
  </Loggers>
</Configuration>
"""
# Printed by the Java frontend once the REST and the gRPC endpoints are all bound.
STARTED_LINE = "Model server started."
STOP_GRACE_S = 20.0
REQUEST_TIMEOUT_S = 60.0

_LIVE: set[TorchServe] = set()
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServeError(RuntimeError):
    """TorchServe could not be archived, started, asked or stopped as requested."""


@dataclass(frozen=True)
class Answer:
    """One HTTP answer from TorchServe.

    Attributes:
        status: HTTP status code (200 when the handler answered).
        body: The parsed JSON body, or the text when it is not JSON.
        seconds: Wall-clock time from sending the request to reading the answer.
    """

    status: int
    body: Any
    seconds: float = field(default=0.0, compare=False)

    @property
    def ok(self) -> bool:
        """True when the status is 2xx."""
        return 200 <= self.status < 300


# --------------------------------------------------------------------------- archive


def archive(
    model_dir: str | os.PathLike,
    model_store: str | os.PathLike,
    name: str,
    handler: str | os.PathLike | None = None,
    version: str = "1.0",
    extra_files: Iterable[str | os.PathLike] = (),
    force: bool = True,
) -> Path:
    """Build ``<model_store>/<name>.mar`` from a TorchServe-style model folder.

    The folder holds one ``*.pt``/``*.pth`` weights file, optionally ``model.py`` (an eager
    model class), ``handler.py`` and ``index_to_name.json``.

    Args:
        model_dir: The model folder.
        model_store: Folder the ``.mar`` is written to (created if missing).
        name: Model name; also the ``.mar`` file name.
        handler: A handler file, or a built-in handler name such as ``"image_classifier"``.
            Defaults to ``<model_dir>/handler.py``.
        version: Model version written into the archive manifest.
        extra_files: More files to pack next to ``index_to_name.json``.
        force: Overwrite an existing ``.mar``.

    Returns:
        The path of the ``.mar`` file.

    Raises:
        ServeError: The folder is incomplete or torch-model-archiver failed.
    """
    folder = Path(model_dir).resolve()
    if not folder.is_dir():
        raise ServeError(f"model folder {folder} does not exist: pass the folder with model.pt")
    store = Path(model_store).resolve()
    store.mkdir(parents=True, exist_ok=True)
    command = [
        *_archiver_command(),
        "--model-name", name,
        "--version", version,
        "--serialized-file", str(_weights_file(folder)),
        "--handler", _handler_argument(folder, handler),
        "--export-path", str(store),
    ]  # fmt: skip
    if (folder / "model.py").is_file():
        command += ["--model-file", str(folder / "model.py")]
    extras = [str(Path(f).resolve()) for f in extra_files]
    if (folder / "index_to_name.json").is_file():
        extras.append(str(folder / "index_to_name.json"))
    if extras:
        command += ["--extra-files", ",".join(extras)]
    if force:
        command.append("--force")
    return _run_archiver(command, store / f"{name}.mar")


def _archiver_command() -> list[str]:
    """Return the command that runs torch-model-archiver, preferably with this Python."""
    if importlib.util.find_spec("model_archiver") is not None:
        return [sys.executable, "-m", "model_archiver.model_packaging"]
    script = _script("torch-model-archiver")
    if script is None:
        raise ServeError("torch-model-archiver is not installed: pip install torch-model-archiver")
    return [script]


def _script(name: str) -> str | None:
    """Return the console script ``name`` next to this Python, else the one on PATH."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.is_file() else shutil.which(name)


def _weights_file(folder: Path) -> Path:
    """Return the single weights file of a model folder."""
    found = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    if not found:
        raise ServeError(
            f"{folder} has no weights file (*.pt or *.pth): save one with "
            f"torch.save(model.state_dict(), '{folder / 'model.pt'}')"
        )
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ServeError(f"{folder} has several weights files ({names}): keep exactly one")
    return found[0]


def _handler_argument(folder: Path, handler: str | os.PathLike | None) -> str:
    """Return what to pass as ``--handler``: a file path or a built-in handler name."""
    if handler is None:
        default = folder / "handler.py"
        if not default.is_file():
            raise ServeError(
                f"{folder} has no handler.py: add one, or pass handler='image_classifier' "
                "(a TorchServe built-in) or handler='path/to/handler.py'"
            )
        return str(default)
    text = str(handler)
    if text.endswith(".py") or os.sep in text:
        path = Path(text) if Path(text).is_absolute() else folder / text
        if not path.is_file():
            path = Path(text).resolve()
        if not path.is_file():
            raise ServeError(f"handler file {text} not found in {folder} or the current folder")
        return str(path.resolve())
    return text


def _run_archiver(command: list[str], mar: Path) -> Path:
    """Run torch-model-archiver and check that it wrote ``mar``."""
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, cwd=mar.parent, check=False
    )
    if done.returncode != 0 or not mar.is_file():
        output = (done.stderr + done.stdout).strip()
        raise ServeError(f"torch-model-archiver could not build {mar}:\n{output}")
    return mar


# --------------------------------------------------------------------------- server


class TorchServe:
    """A real TorchServe on 127.0.0.1 that a notebook or a test starts, asks and stops.

    Use it as a context manager so the Java server always stops, even when the body raises::

        with TorchServe("model_store", {"mnist": "mnist.mar"}) as server:
            server.predict("mnist", png_bytes).body

    Attributes:
        model_store: Folder holding the ``.mar`` files.
        log_dir: Folder TorchServe writes ``ts_log.log`` and ``model_log.log`` to.
        ports: Port per endpoint (``inference``, ``management``, ``metrics``, ``grpc_*``).
    """

    def __init__(
        self,
        model_store: str | os.PathLike,
        models: Mapping[str, str | os.PathLike] | None = None,
        batch_size: int = 1,
        max_batch_delay: int = 100,
        workers: int = 1,
        startup_timeout: float = 120,
        log_dir: str | os.PathLike | None = None,
        ports: Mapping[str, int] | None = None,
    ) -> None:
        """Describe the server; nothing starts before ``start()`` or ``with``.

        Args:
            model_store: Folder holding the ``.mar`` files.
            models: Model name -> ``.mar`` (a file name in ``model_store`` or a path in it),
                registered at start.
            batch_size: Default largest batch a worker gets.
            max_batch_delay: Default milliseconds TorchServe waits to fill a batch.
            workers: Default worker processes per model.
            startup_timeout: Seconds allowed for the server, and for each model, to get ready.
            log_dir: Where the logs go; defaults to a temporary folder removed at stop.
            ports: Fixed ports by endpoint name; the others are picked free.
        """
        self.model_store = Path(model_store).resolve()
        self.models = dict(models or {})
        self.batch_size = batch_size
        self.max_batch_delay = max_batch_delay
        self.workers = workers
        self.startup_timeout = startup_timeout
        self._log_dir_arg = Path(log_dir).resolve() if log_dir is not None else None
        self._fixed_ports = dict(ports or {})
        self.log_dir: Path | None = self._log_dir_arg
        self.ports: dict[str, int] = {}
        self._process: subprocess.Popen | None = None
        self._workdir: Path | None = None

    @classmethod
    def for_folder(
        cls, model_dir: str | os.PathLike, name: str, handler: str | None = None, **kwargs: Any
    ) -> TorchServe:
        """Archive one model folder into a temporary store and describe a server for it.

        Example: ``with TorchServe.for_folder("data/mnist", "mnist") as server: ...``

        Args:
            model_dir: TorchServe-style model folder (see ``archive``).
            name: Model name to register.
            handler: Handler file or built-in name; defaults to ``handler.py``.
            **kwargs: Passed on to ``TorchServe``.

        Returns:
            A server (not yet started) that registers ``name`` when started; its temporary
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
        """Base URL of the inference API, e.g. ``http://127.0.0.1:8080``."""
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
        """Start TorchServe, wait until it answers, and register ``models``.

        Returns:
            The server itself.

        Raises:
            ServeError: Java or torchserve is missing, a port is taken, or a model failed.
        """
        if self._process is not None:
            return self
        if not self.model_store.is_dir():
            raise ServeError(f"model store {self.model_store} does not exist: call archive() first")
        java = _find_java()
        self.ports = _choose_ports(self._fixed_ports)
        self._workdir = Path(tempfile.mkdtemp(prefix="handlerkit-serve-"))
        self.log_dir = self._log_dir_arg or self._workdir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        _LIVE.add(self)
        try:
            self._launch(config, self._write_log_config(), java)
            self._wait_until_up()
            for name, mar in self.models.items():
                self.register(name, mar)
        except BaseException:
            self.stop()
            raise
        return self

    def _write_config(self) -> Path:
        """Write the ``config.properties`` that keeps TorchServe local, quick and quiet."""
        assert self._workdir is not None
        cores = os.cpu_count() or 1
        lines = [
            f"inference_address=http://{HOST}:{self.ports['inference']}",
            f"management_address=http://{HOST}:{self.ports['management']}",
            f"metrics_address=http://{HOST}:{self.ports['metrics']}",
            f"grpc_inference_address={HOST}",
            f"grpc_inference_port={self.ports['grpc_inference']}",
            f"grpc_management_address={HOST}",
            f"grpc_management_port={self.ports['grpc_management']}",
            "disable_token_authorization=true",
            "enable_model_api=true",
            "enable_envvars_config=false",
            f"model_store={self.model_store}",
            f"default_workers_per_model={self.workers}",
            "install_py_dep_per_model=false",
            "disable_system_metrics=true",
            f"number_of_netty_threads={max(2, cores)}",
            f"netty_client_threads={max(2, cores)}",
            "job_queue_size=1000",
            f"default_startup_timeout={int(self.startup_timeout)}",
            f"default_response_timeout={int(REQUEST_TIMEOUT_S)}",
            "unregister_model_timeout=30",
            "vmargs=-Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1",
        ]
        path = self._workdir / "config.properties"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _write_log_config(self) -> Path:
        """Write a log4j2.xml that puts each log line once into ``log_dir``."""
        assert self._workdir is not None and self.log_dir is not None
        files = {
            k: quoteattr(str(self.log_dir / f"{k}_log.log")) for k in ("access", "model", "ts")
        }
        metrics = quoteattr(str(self.log_dir / "metrics.log"))
        path = self._workdir / "log4j2.xml"
        path.write_text(LOG4J2_XML.format(metrics=metrics, **files))
        return path

    def _launch(self, config: Path, log_config: Path, java: str) -> None:
        """Start ``torchserve --foreground`` in its own process group inside the work folder."""
        assert self._workdir is not None and self.log_dir is not None
        workdir = str(self._workdir)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TS_")}
        env.update(
            LOG_LOCATION=str(self.log_dir),
            METRICS_LOCATION=str(self.log_dir),
            TMPDIR=workdir,  # torchserve's pid file: one per server, not one per machine
            TEMP=workdir,  # java.io.tmpdir: worker sockets and unpacked .mar files
            TMP=workdir,
            JAVA_HOME=str(Path(java).resolve().parent.parent),
        )
        command = [
            *_torchserve_command(),
            "--start", "--foreground", "--ncs",
            "--model-store", str(self.model_store),
            "--ts-config", str(config),
            "--log-config", str(log_config),
            "--disable-token-auth", "--enable-model-api",
        ]  # fmt: skip
        console = open(self._workdir / "console.log", "wb")  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                command, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                stdout=console, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        finally:
            console.close()

    def _wait_until_up(self) -> None:
        """Wait until every endpoint is bound (REST first, gRPC last) and the APIs answer."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise ServeError(self._startup_failure())
            started = STARTED_LINE in _read_from(self._log("console.log"), 0)
            if started and self._answers("inference", "/ping"):
                if self._answers("management", "/models"):
                    return
            time.sleep(0.2)
        raise ServeError(
            f"TorchServe did not answer within {self.startup_timeout:.0f} s: raise "
            f"startup_timeout or read the log below.\n{self.logs(tail=40)}"
        )

    def _answers(self, endpoint: str, path: str) -> bool:
        try:
            return _http("GET", self._url(endpoint) + path, timeout=2).status == 200
        except OSError:
            return False

    def _startup_failure(self) -> str:
        """Explain why the TorchServe process exited during start."""
        taken = [f"{n} port {p}" for n, p in self.ports.items() if _port_in_use(p)]
        reason = f"TorchServe exited during start (exit code {self._process.returncode})"
        if taken:
            reason += (
                f": {', '.join(taken)} on {HOST} is already in use; stop what listens there "
                "or leave ports=None to pick free ones"
            )
        return f"{reason}.\n{self.logs(tail=40, files=('console.log', 'ts_log.log'))}"

    def stop(self) -> None:
        """Stop TorchServe and its workers (SIGTERM, then SIGKILL), and remove temp folders."""
        process, self._process = self._process, None
        if process is not None:
            _stop_group(process)
        _LIVE.discard(self)
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
    ) -> dict:
        """Register a ``.mar`` and wait until its workers are READY.

        Args:
            name: Model name used in ``/predictions/<name>``.
            mar: ``.mar`` file name in ``model_store``, or a path inside it.
            batch_size: Largest batch per worker call; defaults to the server's.
            max_batch_delay: Milliseconds to wait to fill a batch; defaults to the server's.
            workers: Worker processes; defaults to the server's.
            replace: Unregister a model already registered under ``name`` first.

        Returns:
            The model description from ``GET /models/<name>``.

        Raises:
            ServeError: Registration failed; the message holds the handler's traceback.
        """
        if replace:
            self.unregister(name)
        offsets = (_file_size(self._log("model_log.log")), _file_size(self._log("ts_log.log")))
        params = {
            "url": self._mar_url(mar),
            "model_name": name,
            "batch_size": batch_size or self.batch_size,
            "max_batch_delay": self.max_batch_delay if max_batch_delay is None else max_batch_delay,
            "initial_workers": workers or self.workers,
            "synchronous": "false",
        }
        url = f"{self.management_url}/models?{urllib.parse.urlencode(params)}"
        answer = _http("POST", url, timeout=self.startup_timeout)
        if not answer.ok:
            raise ServeError(f"TorchServe refused to register {name} from {mar}: {answer.body}")
        return self._wait_until_ready(name, params["initial_workers"], offsets)

    def unregister(self, name: str) -> bool:
        """Unregister a model if it is registered.

        Args:
            name: Model name.

        Returns:
            True when a model was unregistered.
        """
        url = f"{self.management_url}/models/{urllib.parse.quote(name)}"
        answer = _http("DELETE", url, timeout=60)
        if answer.status == 404:
            return False
        if not answer.ok:
            raise ServeError(f"TorchServe could not unregister {name}: {answer.body}")
        return True

    def describe(self, name: str) -> dict:
        """Return ``GET /models/<name>`` (batch size, workers and their status)."""
        answer = _http("GET", f"{self.management_url}/models/{urllib.parse.quote(name)}", 10)
        if not answer.ok:
            raise ServeError(f"model {name} is not registered: {answer.body}")
        return answer.body[0]

    def _mar_url(self, mar: str | os.PathLike) -> str:
        """Return the ``url=`` TorchServe expects: the ``.mar`` name inside the model store."""
        path = Path(mar)
        if not path.is_absolute():
            path = self.model_store / path
        path = path.resolve()
        if path.parent != self.model_store or not path.is_file():
            raise ServeError(
                f"{mar} is not a .mar in the model store {self.model_store}: "
                f"build it there with archive(model_dir, '{self.model_store}', name)"
            )
        return path.name

    def _wait_until_ready(self, name: str, workers: int, offsets: tuple[int, int]) -> dict:
        """Poll the model until ``workers`` are READY; fail fast when a worker dies."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise ServeError(f"TorchServe exited while loading {name}.\n{self.logs(tail=60)}")
            model = self.describe(name)
            ready = [w for w in model.get("workers", []) if w.get("status") == "READY"]
            if len(ready) >= workers:
                return model
            failure = self._worker_failure(name, offsets)
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

    def _worker_failure(self, name: str, offsets: tuple[int, int]) -> str:
        """Return the handler's traceback once the logs show its worker died, else ''."""
        if not self._worker_died(name, offsets):
            return ""
        deadline = time.monotonic() + 2  # the worker's stdout reaches the log a bit later
        while True:
            lines = _model_lines(self._log("model_log.log"), name, offsets[0])
            traceback = _handler_traceback(lines)
            if traceback or time.monotonic() > deadline:
                return traceback or "\n".join(lines[-20:]) or "(the worker printed nothing)"
            time.sleep(0.2)

    def _worker_died(self, name: str, offsets: tuple[int, int]) -> bool:
        """True when the worker or the frontend logged that loading ``name`` failed."""
        lines = _model_lines(self._log("model_log.log"), name, offsets[0])
        if any(marker in line for line in lines for marker in DEATH_MARKERS):
            return True
        return f"Load model failed: {name}," in _read_from(self._log("ts_log.log"), offsets[1])

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
        """Send one request to ``/predictions/<name>``.

        Args:
            name: Model name.
            data: Request body, e.g. PNG bytes.
            content_type: The ``Content-Type`` header.

        Returns:
            The status code and the parsed JSON body.
        """
        url = f"{self.inference_url}/predictions/{urllib.parse.quote(name)}"
        return _http("POST", url, REQUEST_TIMEOUT_S, data, content_type)

    def predict_many(
        self,
        name: str,
        payloads: Sequence[bytes],
        concurrency: int = 32,
        content_type: str = "application/octet-stream",
    ) -> list[Answer]:
        """Send many requests at once; answers come back in the order of ``payloads``.

        Args:
            name: Model name.
            payloads: Request bodies.
            concurrency: Requests in flight at the same time.
            content_type: The ``Content-Type`` header.

        Returns:
            One ``Answer`` per payload, same order.
        """

        def one(data: bytes) -> Answer:
            try:
                return self.predict(name, data, content_type)
            except (OSError, http.client.HTTPException) as error:  # report, do not lose it
                return Answer(status=0, body=f"{type(error).__name__}: {error}")

        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            return list(pool.map(one, payloads))

    # ----------------------------------------------------------------- logs

    def logs(self, tail: int = 200, files: Sequence[str] = ("ts_log.log", "model_log.log")) -> str:
        """Return the last ``tail`` lines of each TorchServe log, for showing in a notebook.

        Args:
            tail: Lines per file.
            files: Log file names in ``log_dir`` (``console.log`` is the process output).

        Returns:
            The log tails, each under a ``== name ==`` heading.
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


# --------------------------------------------------------------------------- measuring


def measure(
    server: TorchServe,
    name: str,
    payloads: Sequence[bytes],
    concurrency: int = 64,
    sequential: int = 50,
) -> dict:
    """Measure served latency one request at a time, then throughput for a concurrent burst.

    With ``batch_size > 1`` a lone request waits ``max_batch_delay`` for company, so the
    sequential latency shows that delay while the burst shows the batching gain.

    Args:
        server: A started server.
        name: Registered model name.
        payloads: Request bodies; all are sent at once for the burst.
        concurrency: Requests in flight during the burst.
        sequential: How many of the payloads to also send one at a time, for latency.

    Returns:
        ``requests``, ``ok``, ``batch_size``, sequential ``p50_ms``/``p95_ms``,
        ``burst_seconds``, ``throughput_rps`` and burst ``burst_p50_ms``/``burst_p95_ms``.
    """
    server.predict(name, payloads[0])  # warm-up
    alone = [server.predict(name, data) for data in payloads[: max(1, sequential)]]
    started = time.perf_counter()
    burst = server.predict_many(name, payloads, concurrency=concurrency)
    elapsed = time.perf_counter() - started
    return {
        "requests": len(payloads),
        "ok": sum(a.ok for a in burst),
        "batch_size": server.describe(name).get("batchSize"),
        "p50_ms": _percentile_ms(alone, 50),
        "p95_ms": _percentile_ms(alone, 95),
        "burst_seconds": round(elapsed, 3),
        "throughput_rps": round(len(payloads) / elapsed, 1),
        "burst_p50_ms": _percentile_ms(burst, 50),
        "burst_p95_ms": _percentile_ms(burst, 95),
    }


def _percentile_ms(answers: Sequence[Answer], q: int) -> float:
    seconds = [a.seconds for a in answers]
    if len(seconds) < 2:
        return round(1000 * seconds[0], 2) if seconds else float("nan")
    return round(1000 * statistics.quantiles(seconds, n=100)[q - 1], 2)


# --------------------------------------------------------------------------- helpers


def _http(
    method: str,
    url: str,
    timeout: float,
    data: bytes | None = None,
    content_type: str = "application/octet-stream",
) -> Answer:
    """Send one request straight to 127.0.0.1 (never through a proxy) and parse the answer."""
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    started = time.perf_counter()
    try:
        with _NO_PROXY.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    return Answer(status=status, body=_parse(raw), seconds=time.perf_counter() - started)


def _parse(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _find_java() -> str:
    """Return the java executable, or explain how to install it."""
    java_home = os.environ.get("JAVA_HOME")
    candidates = [str(Path(java_home) / "bin" / "java")] if java_home else []
    candidates.append(shutil.which("java") or "")
    for java in candidates:
        if java and os.access(java, os.X_OK):
            _check_java_version(java)
            return java
    raise ServeError("TorchServe needs Java 17+: apt-get install openjdk-17-jre-headless")


def _check_java_version(java: str) -> None:
    done = subprocess.run(
        [java, "-version"], capture_output=True, text=True, timeout=30, check=False
    )
    match = re.search(r'version "(\d+)', done.stderr + done.stdout)
    if match and int(match.group(1)) < 17:
        raise ServeError(
            f"TorchServe needs Java 17+, but {java} is Java {match.group(1)}: "
            "apt-get install openjdk-17-jre-headless (or set JAVA_HOME to a Java 17+)"
        )


def _torchserve_command() -> list[str]:
    """Return the command that runs the ``torchserve`` launcher, preferably this Python's."""
    beside = Path(sys.executable).with_name("torchserve")
    if beside.is_file():
        return [str(beside)]
    if importlib.util.find_spec("ts") is not None:
        return [sys.executable, "-m", "ts.model_server"]
    script = shutil.which("torchserve")
    if script is None:
        raise ServeError("torchserve is not installed: pip install torchserve")
    return [script]


def _choose_ports(fixed: Mapping[str, int]) -> dict[str, int]:
    """Return one free 127.0.0.1 port per endpoint; fixed ports must be free."""
    unknown = set(fixed) - set(PORT_NAMES)
    if unknown:
        raise ServeError(f"unknown port names {sorted(unknown)}: use {', '.join(PORT_NAMES)}")
    for endpoint, port in fixed.items():
        if _port_in_use(port):
            raise ServeError(
                f"{endpoint} port {port} on {HOST} is already in use: stop what listens "
                "there, or leave it out of ports= to pick a free one"
            )
    ports, held = dict(fixed), []
    try:
        for endpoint in PORT_NAMES:
            if endpoint not in ports:
                sock = socket.socket()
                sock.bind((HOST, 0))
                held.append(sock)
                ports[endpoint] = sock.getsockname()[1]
    finally:
        for sock in held:
            sock.close()
    return ports


def _port_in_use(port: int) -> bool:
    """True when something accepts connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) == 0


def _stop_group(process: subprocess.Popen) -> None:
    """Stop the server's process group: SIGTERM, a grace period, then SIGKILL.

    Java and the Python workers get SIGTERM first, so the ``torchserve`` launcher (the group
    leader) reaps Java and exits by itself; no zombie ``java`` is left to the init process.
    """
    group = process.pid
    children = _group_members(group) - {group}
    for pid in children:
        _signal(pid, signal.SIGTERM)
    if not children or not _wait_gone(process, STOP_GRACE_S):
        _signal_group(group, signal.SIGTERM)
        if not _wait_gone(process, 5):
            _signal_group(group, signal.SIGKILL)
            _wait_gone(process, 10)


def _wait_gone(process: subprocess.Popen, seconds: float) -> bool:
    """Reap the launcher and wait until no live process of its group is left."""
    deadline = time.monotonic() + seconds
    while process.poll() is None or _group_members(process.pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_group(group: int, sig: signal.Signals) -> None:
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_members(group: int) -> set[int]:
    """Return the live (non-zombie) processes of a process group."""
    if not Path("/proc").is_dir():  # macOS: only ask whether the group still exists
        try:
            os.killpg(group, 0)
        except (ProcessLookupError, PermissionError):
            return set()
        return {group}
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == group:
            members.add(int(stat.parent.name))
    return members


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    """Return what was written to a log file after byte ``offset``."""
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _model_lines(path: Path, name: str, offset: int) -> list[str]:
    """Return the messages of ``name``'s workers written to the model log after ``offset``."""
    text = _read_from(path, offset)
    thread = re.compile(rf"\bW-\d+-{re.escape(name)}_\S*-std(?:out|err)\b.*? - (.*)$")
    messages = []
    for line in text.splitlines():
        match = thread.search(line)
        if match:
            messages.append(match.group(1))
    return messages


def _handler_traceback(lines: Sequence[str]) -> str:
    """Return the last traceback that reaches code outside TorchServe (the handler, torch...).

    A worker that fails to load logs the handler's traceback and then, often, a second one
    from TorchServe's own loop ("500 - Unknown exception"); the first is the one to show.
    """
    blocks = _tracebacks(lines)
    outside = [block for block in blocks if _reaches_outside_torchserve(block)]
    return (outside or blocks or [""])[-1]


def _tracebacks(lines: Sequence[str]) -> list[str]:
    """Split log messages into Python tracebacks (header line to exception line)."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in lines:
        if line.startswith("Traceback (most recent call last)"):
            current = [line]
            blocks.append(current)
        elif current is not None:
            current.append(line)
            if line and not line.startswith((" ", "\t")):
                current = None  # the exception line ends the traceback
    return ["\n".join(block) for block in blocks]


def _reaches_outside_torchserve(traceback: str) -> bool:
    files = re.findall(r'^\s*File "([^"]+)"', traceback, flags=re.MULTILINE)
    return any(not f.startswith("<") and not re.search(r"[\\/]ts[\\/]", f) for f in files)


@atexit.register
def _stop_all() -> None:
    """Safety net: stop every server still running when Python exits."""
    for server in list(_LIVE):
        server.stop()
