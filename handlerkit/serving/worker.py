"""One model's worker, in this process: `ts`'s own loader and service, kept apart from the rest.

TorchServe runs each model in its own Python process, started in the model folder with that
folder on `sys.path`. Here a model is loaded and called with the same folder as the working
directory and on `sys.path`, and with the modules its folder defines (`handler`, `model`, ...)
visible only while it runs, so two models with a `model.py` each never see each other's. A
worker that has its process to itself (`resident`: a LitServe worker, a Ray Serve replica)
enters its folder once and stays, as TorchServe's worker does.
"""

from __future__ import annotations

import logging
import os
import struct
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from ..requirements import install_hint
from ..tracing import STAGES
from . import contract, frontend
from .frontend import WORKER_DIED, Answer, HandlerError, RequestInput
from .model_folder import ModelFolder
from .wire import Reply, decode_batch, decode_reply, encode_batch

# The working directory and sys.modules are the process's: one model runs at a time.
_PROCESS_LOCK = threading.RLock()
# ts logs each failure with its traceback; while a model runs here, Answer.error carries it.
_SILENT = logging.NullHandler()
# The handler methods a failure can be named after: its stages, between loading and handle.
HANDLER_METHODS = ("initialize", *STAGES, "handle")


class Worker:
    """A loaded model: `predict(batch)` runs one `handle` call through `ts.service.Service`.

    Attributes:
        name: The model name.
        folder: The unpacked model.
        service: `ts`'s Service (None when loading failed).
        entry: What `handle` is: the handler object, or the module of a function entry point.
        load_error: Why loading failed, as a `HandlerError` (stage "initialize"), else None.
        last_error: What the handler raised in the last `predict`, or the rule of TorchServe's
            its answer broke (`contract.breach`), else None.
        last_warnings: What in the last answers TorchServe sends with 200 although a client
            cannot read it as meant (`contract.misleading`: a tensor, NaN, a Python repr).
        resident: The process is this model's alone: it works in the model folder for good,
            instead of entering it (and leaving it) at each call.
        envelope: TorchServe's `service_envelope` ("kserve", "kservev2"): `ts`'s request
            envelope around the handler, loaded by `ts`'s own loader, or None.
    """

    def __init__(
        self,
        name: str,
        folder: ModelFolder,
        batch_size: int = 1,
        gpu_id: int | None = None,
        limit_max_image_pixels: bool = True,
        resident: bool = False,
        envelope: str | None = None,
    ) -> None:
        self.name, self.folder, self.resident = name, folder, resident
        self.envelope = envelope
        self.service = None
        self.entry = None
        self.load_error: HandlerError | None = None
        self.last_error: HandlerError | None = None
        self.last_warnings: list[contract.Breach] = []
        self._modules: dict[str, object] = {}
        self._own_names = _own_module_names(folder.path)  # the folder's .py files, listed once
        try:
            if resident:
                self._settle()
                self._load(batch_size, gpu_id, limit_max_image_pixels)
            else:
                with self._inside():
                    self._load(batch_size, gpu_id, limit_max_image_pixels)
        except (Exception, SystemExit, KeyboardInterrupt) as error:  # the worker dies; we report
            self.load_error = HandlerError(
                "initialize", _load_message(error), traceback.format_exc(), _missing_name(error)
            )

    def _load(self, batch_size: int, gpu_id: int | None, limit_max_image_pixels: bool) -> None:
        import ts
        from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl
        from ts.model_loader import TsModelLoader

        metrics = MetricsCacheYamlImpl(Path(ts.__file__).parent / "configs" / "metrics.yaml")
        metrics.initialize_cache()
        metrics.model_name = self.name
        service = TsModelLoader().load(
            self.name,
            str(self.folder.path),
            self.folder.handler,
            gpu_id,
            batch_size,
            self.envelope,
            limit_max_image_pixels,
            metrics,
        )
        service.set_cl_socket(None)
        holder, attribute = _entry_holder(service, self.envelope)
        entry = getattr(holder, attribute)
        self.entry = getattr(entry, "__self__", None) or sys.modules[entry.__module__]
        function = entry.__name__
        # Look the entry point up at each call, so a trace that wraps it is seen, and keep
        # what it raises: the stage it came from and the traceback.
        setattr(holder, attribute, lambda data, context: self._call(function, data, context))
        self.service = service

    def _call(self, function: str, data, context):
        try:
            returned = getattr(self.entry, function)(data, context)
        except Exception as error:
            self.last_error = HandlerError(
                failing_stage(error), f"{type(error).__name__}: {error}", traceback.format_exc()
            )
            raise
        self._judge(returned, len(data or ()), context)
        return returned

    def _judge(self, returned, requests: int, context) -> None:
        """Name the rule of TorchServe's that the answer breaks, before ts's encoder meets it."""
        stage = "postprocess" if hasattr(self.entry, "postprocess") else "handle"
        broken = contract.breach(returned, requests, context, stage)
        if broken is not None:
            self.last_error = HandlerError(stage, str(broken))
        self.last_warnings = contract.misleading(returned, requests, context)

    def predict(self, batch: list[RequestInput]) -> Reply:
        """Send one batch through `ts`'s decoder, its Service and its encoder."""
        self.last_error, self.last_warnings = None, []
        try:
            with _ts_root_logs_kept(), nullcontext() if self.resident else self._inside():
                reply = self.service.predict(decode_batch(encode_batch(batch)))
        except Exception as error:  # noqa: BLE001 - ts's reply writer failed: its worker dies
            self.last_error = self.last_error or HandlerError(
                "handle", f"{type(error).__name__}: {error}", traceback.format_exc()
            )
            return Reply(500, WORKER_DIED, [])
        return decode_reply(bytes(reply))

    def _settle(self) -> tuple[str, bool]:
        """Work in the model folder, with it on sys.path and `ts`'s log quiet, as TorchServe's
        worker process does. Returns what to restore: the working directory, the log's
        propagation."""
        sys.path.insert(0, str(self.folder.path))
        cwd = os.getcwd()
        os.chdir(self.folder.path)
        ts_logger = logging.getLogger("ts")
        propagates, ts_logger.propagate = ts_logger.propagate, False
        ts_logger.addHandler(_SILENT)
        return cwd, propagates

    @contextmanager
    def _inside(self) -> Iterator[None]:
        """`_settle` for one call: the folder, and only its modules, seen while it runs."""
        folder = str(self.folder.path)
        with _PROCESS_LOCK:
            shadowed = _take_modules(self._own_names)
            before = set(sys.modules)
            sys.modules.update(self._modules)
            cwd, propagates = self._settle()
            try:
                yield
            finally:
                ts_logger = logging.getLogger("ts")
                ts_logger.propagate = propagates
                ts_logger.removeHandler(_SILENT)
                os.chdir(cwd)
                sys.path.remove(folder)
                for name in set(sys.modules) - before | set(self._modules):
                    module = sys.modules.get(name)
                    if _defined_in(module, folder):
                        self._modules[name] = sys.modules.pop(name)
                sys.modules.update(shadowed)

    def close(self) -> None:
        if self.resident and os.getcwd() == str(self.folder.path):
            os.chdir(self.folder.path.parent)  # the folder is removed next
        self.service = None
        self.entry = None
        self._modules.clear()
        self.folder.remove()


def _entry_holder(service, envelope: str | None) -> tuple[object, str]:
    """Where `ts` keeps the handler's entry point: the Service's `_entry_point`, or, with a
    service envelope, the envelope's `_handle_fn` (the Service then calls the envelope's
    `handle`). Written against torchserve 0.12 (`ts.model_loader`, `request_envelope.base`)."""
    if envelope is None:
        return service, "_entry_point"
    wrapper = getattr(service._entry_point, "__self__", None)
    if not hasattr(wrapper, "_handle_fn"):
        raise RuntimeError("ts changed: its envelope keeps no _handle_fn; update _entry_holder")
    return wrapper, "_handle_fn"


@contextmanager
def _ts_root_logs_kept() -> Iterator[None]:
    """Keep ts's warnings logged on the root logger (its reply writer's "Unable to serialize
    model output." with a full traceback) out of the host's output: `contract` names the cause."""
    root = logging.getLogger()
    keep_out = _FromTs()
    root.addFilter(keep_out)
    try:
        yield
    finally:
        root.removeFilter(keep_out)


class _FromTs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return f"{os.sep}ts{os.sep}" not in record.pathname


def failing_stage(error: BaseException) -> str:
    """The innermost handler stage (preprocess, inference, ...) in the error's traceback."""
    stage = "handle"
    tb = error.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_name
        if name in HANDLER_METHODS and "/ts/service.py" not in tb.tb_frame.f_code.co_filename:
            stage = name
        tb = tb.tb_next
    return stage


def _own_module_names(folder: Path) -> set[str]:
    return {p.stem for p in folder.iterdir() if p.suffix == ".py"}


def _take_modules(names: set[str]) -> dict[str, object]:
    """Remove modules named like the model's files (another folder's `model`, say)."""
    return {name: sys.modules.pop(name) for name in names if name in sys.modules}


def _defined_in(module, folder: str) -> bool:
    path = getattr(module, "__file__", None)
    return bool(path) and os.path.abspath(path).startswith(folder + os.sep)


def _missing(error: BaseException | None) -> ModuleNotFoundError | None:
    """The first cause of `error` that is a missing module, else None.

    ts's loader, when a handler's import fails, tries `ts.torch_handler.<name>` and raises that
    one's ModuleNotFoundError: the learner's missing package is the one it was handling."""
    found = None
    while error is not None:
        if isinstance(error, ModuleNotFoundError) and error.name:
            found = error
        error = error.__cause__ or error.__context__
    return found


def _load_message(error: Exception) -> str:
    """Why loading failed, in one line; a missing module's says how to install it."""
    missing = _missing(error)
    if missing is None:
        return f"{type(error).__name__}: {error}"
    return f"ModuleNotFoundError: {missing}: {install_hint(missing.name)}"


def _missing_name(error: Exception) -> str | None:
    missing = _missing(error)
    return missing.name if missing else None


def run_batch(worker: Worker, batch: list[RequestInput]) -> list[Answer]:
    """One `handle` call for `batch`; the reply mapped to HTTP answers, one per request, as
    TorchServe's batch aggregator does. A model that failed to load answers 503 to each."""
    if hasattr(worker, "run"):  # a model in its own process answers for itself
        return worker.run(batch)
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
