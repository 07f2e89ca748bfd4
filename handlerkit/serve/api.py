"""TorchServe's REST API as methods: register, unregister and describe a model, then predict.

`TorchServe` inherits these; it supplies the URLs, the defaults and the logs they use.
"""

from __future__ import annotations

import http.client
import os
import time
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .client import REQUEST_TIMEOUT_S, Answer, _http
from .errors import ServeError
from .logs import _file_size, _worker_failure


class _ModelApi:
    """The model half of `TorchServe`: what it asks of the management and inference APIs."""

    # Set by TorchServe.__init__; management_url, inference_url, running, logs() and _log()
    # are TorchServe's too.
    model_store: Path
    batch_size: int
    max_batch_delay: int
    workers: int
    startup_timeout: float

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
            failure = _worker_failure(
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
