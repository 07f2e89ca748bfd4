"""`TorchServe`: a real local TorchServe that a notebook or a test starts, asks and stops.

The centre of `handlerkit.serve`: it uses `process` to run Java, `client` to ask, `logs` to explain.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .api import _ModelApi
from .archive import archive
from .client import _http
from .errors import ServeError
from .logs import STARTED_LINE, _read_from, _write_log_config
from .process import (
    HOST,
    _choose_ports,
    _find_java,
    _launch,
    _port_in_use,
    _stop_group,
    _write_config,
)

__all__ = ["TorchServe"]

_LIVE: set[TorchServe] = set()


class TorchServe(_ModelApi):
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
        config = _write_config(
            self._workdir, self.ports, self.model_store, self.workers, self.startup_timeout
        )
        _LIVE.add(self)
        try:
            log_config = _write_log_config(self._workdir, self.log_dir)
            self._process = _launch(
                self._workdir, self.log_dir, self.model_store, config, log_config, java
            )
            self._wait_until_up()
            for name, mar in self.models.items():
                self.register(name, mar)
        except BaseException:
            self.stop()
            raise
        return self

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


@atexit.register
def _stop_all() -> None:
    """Safety net: stop every server still running when Python exits."""
    for server in list(_LIVE):
        server.stop()
