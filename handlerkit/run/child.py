"""`EngineServer`: `python -m handlerkit serve ...` in a child process, for a notebook or a test.

Through `launcher`: starts the command in its own process group, waits until it says it is ready
and `/ping` answers, stops it the way a person would (Ctrl-C), then kills what it left running.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import launcher
from .models import ENGINES, RESPONSE_TIMEOUT_S, Settings
from .serve_cli import READY

STOP_GRACE_S = 60.0


class EngineServer:
    """One engine serving models behind TorchServe's inference API, in a child process.

    Example:
        with EngineServer({"mnist": "data/mnist"}, engine="litserve", batch_size=8) as server:
            server.url  # http://127.0.0.1:PORT/predictions/mnist takes the digit's PNG

    Args:
        models: Model name -> a `.mar` file or a model folder, or a list of `.mar` files: the
            model's versions side by side (the first is the default).
        engine: "torchserve", "litserve" or "ray".
        batch_size: Largest batch per `handle` call: one int, or {name: int}.
        max_batch_delay: Milliseconds to fill a batch: one int, or {name: int}.
        handler: For model folders without `handler.py`: a builtin name or a handler file.
        startup_timeout: Seconds allowed until `/ping` answers.
        **settings: `Settings` fields: port (default: a free one), host, replicas, address,
            response_timeout, token_auth (torchserve; default False here), model_api,
            service_envelope, open_inference_protocol, metrics_port (default: a free one),
            metrics_mode.
    """

    def __init__(
        self,
        models: Mapping[str, str | os.PathLike | Sequence[str | os.PathLike]],
        engine: str,
        batch_size: int | Mapping[str, int] = 1,
        max_batch_delay: int | Mapping[str, int] = 100,
        handler: str | None = None,
        startup_timeout: float = 300,
        **settings,
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
        self.models = {
            name: [Path(s) for s in sources]
            if isinstance(sources, (list, tuple))
            else [Path(sources)]
            for name, sources in models.items()
        }
        self.engine, self.handler, self.startup_timeout = engine, handler, startup_timeout
        self.batch_size, self.max_batch_delay = batch_size, max_batch_delay
        # A local helper whose clients carry no keys: TorchServe's token authorization off
        # unless asked for (the command's default is TorchServe's: on).
        self.settings = Settings(**{"port": 0, "metrics_port": 0, "token_auth": False, **settings})
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self.metrics_port: int | None = None
        self._log = None
        self.leftovers: dict[int, str] = {}  # what was still running after Ctrl-C

    @property
    def url(self) -> str:
        """The inference API's base URL, e.g. http://127.0.0.1:8080."""
        return f"http://{self.settings.host}:{self.port}"

    @property
    def metrics_url(self) -> str:
        """The metrics API's base URL (`/metrics` below it)."""
        return f"http://{self.settings.host}:{self.metrics_port}"

    def command(self) -> list[str]:
        """The command line this server runs."""
        s = self.settings
        argv = [sys.executable, "-m", "handlerkit", "serve"]
        argv += [f"{name}={source}" for name, sources in self.models.items() for source in sources]
        argv += ["--engine", self.engine, "--port", str(self.port), "--host", s.host]
        argv += _per_model("--batch-size", self.batch_size)
        argv += _per_model("--max-batch-delay", self.max_batch_delay)
        argv += ["--replicas", str(s.replicas)]
        if s.response_timeout != RESPONSE_TIMEOUT_S:
            argv += ["--response-timeout", str(s.response_timeout)]
        if self.engine == "torchserve":
            argv += [] if s.token_auth else ["--disable-token-auth"]
            argv += ["--enable-model-api"] if s.model_api else []
        argv += ["--service-envelope", s.service_envelope] if s.service_envelope else []
        argv += ["--open-inference-protocol"] if s.open_inference_protocol else []
        argv += ["--metrics-port", str(self.metrics_port)] if self.metrics_port else []
        argv += ["--metrics-mode", s.metrics_mode] if s.metrics_mode != "log" else []
        argv += ["--address", s.address] if s.address else []
        argv += ["--handler", self.handler] if self.handler else []
        return argv

    # ---- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> EngineServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> EngineServer:
        """Start the engine and wait until its models are loaded and it answers `/ping`."""
        self.port, self.metrics_port = launcher.free_ports(2)
        self.port = self.settings.port or self.port
        self.metrics_port = self.settings.metrics_port or self.metrics_port
        self._log = tempfile.TemporaryFile()
        self.process = launcher.start(self, self.command(), self._log)
        try:
            self._wait_until_up()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_up(self) -> None:
        try:
            launcher.wait_until_up(self.process, self._ready, self.startup_timeout)
        except launcher.Exited as exited:
            raise RuntimeError(
                f"{self.engine} exited during start (code {exited.code}):\n{self.output(tail=40)}"
            ) from None
        except TimeoutError:
            raise TimeoutError(
                f"{self.engine} did not answer /ping within {self.startup_timeout:.0f} s: raise "
                f"startup_timeout or read its output:\n{self.output(tail=40)}"
            ) from None

    def _ready(self) -> bool:
        """The command said it is ready, and `/ping` answers."""
        return READY in self.output(tail=20) and launcher.answers(f"{self.url}/ping", self.token)

    @property
    def token(self) -> str | None:
        """TorchServe's inference key as the command announced it (token authorization on)."""
        found = re.search(r"Authorization: Bearer (\S+)", self.output(tail=40))
        return found.group(1) if found else None

    def stop(self) -> None:
        """Ctrl-C the command and wait for it to clean up; kill what it left (`.leftovers`)."""
        process, self.process = self.process, None
        if process is not None:
            self.leftovers = launcher.stop(self, process, signal.SIGINT, STOP_GRACE_S)
        if self._log is not None:
            self._last_output = self.output()
            self._log.close()
            self._log = None

    def output(self, tail: int = 200) -> str:
        """The last `tail` lines the command printed."""
        if self._log is None:
            return getattr(self, "_last_output", "")
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").splitlines()
        return "\n".join(lines[-tail:])

    def __repr__(self) -> str:
        state = f"running at {self.url}" if self.process else "stopped"
        return f"<EngineServer {self.engine} {state}, models={list(self.models)}>"


def _per_model(option: str, value: int | Mapping[str, int]) -> list[str]:
    if isinstance(value, Mapping):
        return [arg for name, v in value.items() for arg in (option, f"{name}={v}")]
    return [option, str(value)]
