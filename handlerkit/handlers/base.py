"""BaseHandler: the contract TorchServe calls — `initialize(context)`, then `handle(data, context)`.

`handle` runs preprocess -> inference -> postprocess over a batch of requests; a row that fails
preprocessing is answered with its own error while the rest of the batch is answered normally.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..context import Context
from ..errors import ModelFault, ModelLoadError, RequestError, RowError
from ..loading import choose_device, load_eager_model, load_mapping, load_torchscript_model
from ..tracing import Hooks

MODEL_FAULT = (
    "the model failed on every request of this batch, so the server answers 500: check that the "
    "model and the handler's preprocessing agree (or that every request has the model's size)"
)


class BaseHandler:
    """Loads an eager (model.py + state_dict) or TorchScript model and serves batches with it."""

    def __init__(self) -> None:
        # The same fields as TorchServe's BaseHandler, so code written against one reads the other.
        self.model = None
        self.mapping = None
        self.device = None
        self.initialized = False
        self.context = None
        self.model_pt_path = None
        self.manifest = None
        self.map_location = None
        # handlerkit's additions: trace hooks (empty: no cost) and this batch's bad rows.
        self.hooks = Hooks()
        self.row_errors: dict[int, RequestError] = {}

    @classmethod
    def for_folder(cls, model_dir: str | Path, gpu_id: int | None = None):
        """(handler, context): a handler of this class initialized on a model folder, no server."""
        context = Context.local(model_dir, gpu_id=gpu_id)
        handler = cls()
        handler.initialize(context)
        return handler, context

    # ---- initialize: three named steps --------------------------------------------------------
    def initialize(self, context) -> None:
        """Choose the device, load the model, load the label mapping."""
        properties = context.system_properties
        self.model_yaml_config = getattr(context, "model_yaml_config", None) or {}
        self.device = choose_device(properties.get("gpu_id"))
        self.map_location = self.device.type
        self.manifest = context.manifest
        model_dir = Path(properties.get("model_dir"))
        self.model = self.load_model(model_dir)
        self.mapping = load_mapping(model_dir / "index_to_name.json")
        self.initialized = True

    def load_model(self, model_dir: Path):
        """Eager when the manifest names a modelFile, else TorchScript from the `.pt` file."""
        model = self.manifest["model"]
        serialized = model.get("serializedFile")
        self.model_pt_path = str(model_dir / serialized) if serialized else None
        weights = Path(self.model_pt_path) if serialized else None
        if model.get("modelFile"):
            return load_eager_model(model_dir / model["modelFile"], weights, self.device)
        if weights is not None and weights.suffix == ".pt":
            return load_torchscript_model(weights, self.device)
        raise ModelLoadError(
            f"nothing to load in {model_dir}: the manifest has no modelFile and serializedFile "
            f"is {serialized!r}; add model.py + a state_dict, or a TorchScript .pt file"
        )

    # ---- the three stages ---------------------------------------------------------------------
    def preprocess(self, data: list) -> torch.Tensor:
        """Request rows -> one tensor on the model's device."""
        return torch.as_tensor(data, device=self.device)

    def inference(self, data: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """The model's forward pass, without autograd bookkeeping."""
        with torch.inference_mode():
            return self.model(data.to(self.device), *args, **kwargs)

    def postprocess(self, data: torch.Tensor) -> list:
        """Model output -> one JSON-able answer per request."""
        return data.tolist()

    # ---- handle: the composition ----------------------------------------------------------------
    def handle(self, data: list, context) -> list:
        """preprocess -> inference -> postprocess, then put each bad row's error in its slot.

        As in TorchServe, the request header `describe: True` answers `describe_handle()`, and
        `explain: True` (what `/explanations/` sets) answers `explain_handle` instead of
        inference and postprocess.
        """
        started = time.time()
        self.context = context
        self.row_errors = {}
        if isinstance(context, Context):  # handlerkit's stand-in: statuses are per batch
            context.new_batch()
        if self._is_describe():
            answers = [self.describe_handle()]
        else:
            answers = self.stages(data)
        elapsed_ms = round((time.time() - started) * 1000, 2)
        context.metrics.add_time("HandlerTime", elapsed_ms, None, "ms")
        return answers

    def stages(self, data: list) -> list:
        """The stages of `handle` for one batch, with each bad row's error in its slot."""
        batch = self.stage("preprocess", self.preprocess, data)
        answers = []
        if batch is not None and self._is_explain():
            answers = self.stage("explain", lambda b: self.explain_handle(b, data), batch)
        elif batch is not None:
            output = self.stage("inference", self.guarded_inference, batch)
            if output is not None:
                answers = self.stage("postprocess", self.postprocess, output)
        return self.merge_errors(answers, len(data))

    def guarded_inference(self, batch: torch.Tensor) -> torch.Tensor | None:
        """`inference`, but when the batch fails, retry row by row so only the bad rows fail.

        A row the model fails on while others run is that request's fault (400); a model that
        fails on every row is the server's fault (500), not each request's.
        """
        try:
            return self.inference(batch)
        except Exception:  # noqa: BLE001 - find out which rows the model cannot take
            if not isinstance(batch, torch.Tensor):
                raise
        outputs, failures = [], {}
        batch_rows = [
            i for i in range(len(batch) + len(self.row_errors)) if i not in self.row_errors
        ]
        for position, idx in enumerate(batch_rows):
            try:
                outputs.append(self.inference(batch[position : position + 1]))
            except Exception as error:  # noqa: BLE001
                shape, message = tuple(batch[position].shape), str(error).splitlines()[0]
                failures[idx] = f"the model cannot run on this input of shape {shape}: {message}"
        for idx, message in failures.items():
            if outputs:
                self.reject(idx, RequestError(message))
            else:
                self.reject(idx, ModelFault(f"{message}; {MODEL_FAULT}"))
        return torch.cat(outputs) if outputs else None

    def stage(self, name: str, fn, data: Any):
        """Run one stage, through the trace hooks when any are registered."""
        if not self.hooks:
            return fn(data)
        return self.hooks.run(name, "stage", fn, data, None, self.device)

    def step(self, name: str, fn, data: Any, row: int | None = None):
        """Run one step inside a stage (a transform, the stacking, ...), traced like a stage."""
        if not self.hooks:
            return fn(data)
        return self.hooks.run(name, "step", fn, data, row, self.device)

    # ---- per-request errors -------------------------------------------------------------------
    def reject(self, idx: int, error: RowError) -> None:
        """Mark request `idx` as bad; it is answered with its error, and a 4xx where possible."""
        self.row_errors[idx] = error
        if self.hooks:
            self.hooks.tell("rejected", "error", None, error, idx)
        set_status = getattr(self.context, "set_response_status", None)
        if set_status is not None:
            set_status(error.status, str(error), idx)

    def merge_errors(self, answers: list, count: int) -> list:
        """Interleave the good rows' answers with `{"error": ...}` for each rejected row."""
        if not self.row_errors:
            return answers
        good = iter(answers)
        return [
            {"error": str(self.row_errors[i])} if i in self.row_errors else next(good)
            for i in range(count)
        ]

    # ---- explanations and describe, as in TorchServe's BaseHandler ----------------------------
    def explain_handle(self, data_preprocess: torch.Tensor, raw_data: list) -> list:
        """Attributions for the batch, for the target class the first request names (else 0)."""
        row = raw_data[0] if raw_data else {}
        inputs = row.get("data") or row.get("body") if isinstance(row, dict) else None
        target = row.get("target") if isinstance(row, dict) else None
        return self.get_insights(data_preprocess, inputs, explain_target(target))

    def get_insights(self, tensor_data: torch.Tensor, inputs, target: int = 0) -> list:
        """Which explanation to compute: none here; `VisionHandler` answers Integrated Gradients."""
        raise NotImplementedError(f"{type(self).__name__} has no explanations (get_insights)")

    def describe_handle(self):
        """What `describe: True` answers; TorchServe's default is None (JSON null)."""
        return None

    def _is_explain(self) -> bool:
        return self._header_is_true("explain")

    def _is_describe(self) -> bool:
        return self._header_is_true("describe")

    def _header_is_true(self, name: str) -> bool:
        get = getattr(self.context, "get_request_header", None)
        try:
            return get is not None and get(0, name) == "True"
        except (IndexError, TypeError):  # a context with no request headers
            return False

    def register_trace_hook(self, hook):
        """Low-level tracing: `hook(record)` after every stage and step (a `StageRecord`).

        Returns a handle; `handle.remove()` unregisters it, as with torch's hooks.
        """
        return self.hooks.add(hook)

    def get_device(self):
        return self.device


def explain_target(target) -> int:
    """The class to explain: the request's `target` (TorchServe: else 0).

    TorchServe passes the value on as it came; a form field arrives as bytes, which Captum
    refuses, so a number sent as text or bytes is read as that number here.
    """
    if isinstance(target, (bytes, bytearray)):
        target = target.decode("utf-8", "replace")
    if isinstance(target, str):
        try:
            return int(target.strip())
        except ValueError:
            raise RequestError(f"target {target!r} is not a class index") from None
    return target or 0
