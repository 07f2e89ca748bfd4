"""Tracing: record the value between every stage, transform step and chosen layer of a handler.

Handlers call `hooks.run(...)` around each stage and step; with no hook registered that is one
truth test and a direct call. `trace(handler)` registers hooks that fill a `Trace` of records.
"""

from __future__ import annotations

import copy
import functools
import importlib
import time
import types
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from PIL import Image
from torch.utils.hooks import RemovableHandle
from torchvision import transforms

# A hook sees one finished stage, step or layer: hook(record), as torch's hooks see one module.
Hook = Callable[["StageRecord"], None]


class Hooks:
    """The hooks registered on one handler; `add` returns a handle whose `.remove()` undoes it."""

    def __init__(self) -> None:
        self._hooks: OrderedDict[int, Hook] = OrderedDict()  # weak-referenceable, as torch needs

    def __bool__(self) -> bool:
        return bool(self._hooks)

    def add(self, hook: Hook) -> RemovableHandle:
        """Register `hook(record)`; a hook with a `before(record)` method also sees each input
        before its step runs (a `Trace` uses it to copy what an in-place step will overwrite)."""
        handle = RemovableHandle(self._hooks)
        self._hooks[handle.id] = hook
        return handle

    def run(self, stage: str, kind: str, fn: Callable, data: Any, row: int | None, device) -> Any:
        """Call `fn(data)`, timing it (synchronizing CUDA), and tell every hook about it."""
        hooks = tuple(self._hooks.values())
        for hook in hooks:
            before = getattr(hook, "before", None)
            if before is not None:
                before(StageRecord(stage, kind, data, None, 0.0, row))
        _synchronize(device)
        started = time.perf_counter()
        output = fn(data)
        _synchronize(device)
        seconds = time.perf_counter() - started
        record = StageRecord(stage, kind, data, output, seconds, row, *describe(output), started)
        for hook in hooks:
            hook(record)
        return output

    def tell(self, stage: str, kind: str, data: Any, output: Any, row: int | None) -> None:
        """Tell every hook about an event that took no time, e.g. a request being rejected."""
        record = StageRecord(stage, kind, data, output, 0.0, row, started=time.perf_counter())
        for hook in tuple(self._hooks.values()):
            hook(record)


@dataclass
class StageRecord:
    """What went into and came out of one stage, transform step or layer."""

    stage: str  # "preprocess", "Resize", "features.denseblock1", "rejected", ...
    kind: str  # "stage", "step", "layer", or "error" (a request rejected: output is its error)
    input: Any
    output: Any
    seconds: float
    row: int | None = None  # the request index, for per-image steps
    device: str | None = None  # of the output, as it was on the handler's side
    dtype: str | None = None
    shape: tuple | None = None
    started: float = field(default=0.0, repr=False)

    def __repr__(self) -> str:
        row = "" if self.row is None else f"[{self.row}]"
        return (
            f"StageRecord({self.kind} {self.stage}{row}: {self.dtype} {self.shape} "
            f"on {self.device}, {self.seconds * 1000:.2f} ms)"
        )


class Trace(Sequence):
    """The records of one or more `handle` calls, in the order their work started."""

    def __init__(self, capture: str = "full", max_rows: int | None = None) -> None:
        if capture not in ("full", "summary"):
            raise ValueError("capture must be 'full' (keep copies) or 'summary' (shapes only)")
        if max_rows is not None and max_rows < 0:
            raise ValueError(f"max_rows must be None (every row) or a count >= 0, got {max_rows}")
        self.capture = capture
        self.max_rows = max_rows  # with "full": copy the per-row steps of rows < max_rows only
        self.records: list[StageRecord] = []
        # (weak reference to the original, copy) of the last few tensors/images copied: a step's
        # output is usually the next step's input (and `to_device` on the CPU returns its input),
        # so one copy serves both. Weak, so the trace never keeps the handler's own values alive.
        self._recent: list[tuple[weakref.ref, Any]] = []

    # Set by `handlerkit.show.viz` on import: draws a trace. Tracing never imports the drawing
    # room (it sits above); `show()` loads it by name, the way matplotlib picks its backend.
    drawer: Callable | None = None
    DRAWER_MODULE = "handlerkit.show.viz"

    def __getitem__(self, index):
        return self.records[index]

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[StageRecord]:
        return iter(self.records)

    def find(self, stage: str, row: int | None = None) -> StageRecord:
        """The first record of `stage` (for `row`, if given); KeyError if there is none."""
        for record in self.records:
            if record.stage == stage and (row is None or record.row == row):
                return record
        raise KeyError(f"no record of stage {stage!r}" + ("" if row is None else f" for row {row}"))

    def of_kind(self, kind: str) -> list[StageRecord]:
        return [r for r in self.records if r.kind == kind]

    def last_call(self) -> list[StageRecord]:
        """The records of the last `handle` call (from its last `preprocess` stage on)."""
        starts = [
            i for i, r in enumerate(self.records) if r.kind == "stage" and r.stage == "preprocess"
        ]
        return self.records[starts[-1] :] if starts else list(self.records)

    def rejected(self) -> dict[int, Exception]:
        """{request row: its error} for the requests the last `handle` call rejected."""
        return {r.row: r.output for r in self.last_call() if r.kind == "error"}

    def batch_position(self, row: int) -> int | None:
        """Where request `row` sits in the last call's batch (the rejected rows are left out)."""
        rejected = self.rejected()
        if row in rejected:
            return None
        return row - sum(1 for bad in rejected if bad < row)

    def table(self) -> str:
        """A text table: one line per record, indented under its stage."""
        lines = [
            f"{'stage':<28} {'row':>3}  {'device':<7} {'dtype':<14} {'shape':<20} {'time':>12}"
        ]
        for r in self.records:
            name = r.stage if r.kind == "stage" else "  " + r.stage
            row = "" if r.row is None else str(r.row)
            if r.kind == "error":
                lines.append(f"{name:<28} {row:>3}  {type(r.output).__name__}: {r.output}"[:120])
                continue
            shape = "x".join(map(str, r.shape)) if r.shape else "-"
            lines.append(
                f"{name:<28} {row:>3}  {r.device or '-':<7} {r.dtype or '-':<14} "
                f"{shape:<20} {r.seconds * 1000:9.2f} ms"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Trace({len(self.records)} records)\n{self.table()}"

    def show(self, row: int = 0, title: str | None = None):
        """Draw the pipeline for request `row` with the drawer `handlerkit.show.viz` registers;
        `title` names the request (default: "request <row>")."""
        if Trace.drawer is None:
            importlib.import_module(Trace.DRAWER_MODULE)  # registers Trace.drawer; needs matplotlib
        return Trace.drawer(self, row=row, title=title)

    def _copy(self, value: Any, fresh: bool = False) -> Any:
        """`snapshot(value)`, reusing the copy of a value this trace copied a moment ago.

        `fresh=True` copies again (a step changed its input in place, so the old copy is stale).
        """
        if not fresh:
            for original, copied in self._recent:
                if value is not None and original() is value:  # a dead ref gives None
                    return copied
        copied = snapshot(value)
        if isinstance(value, (torch.Tensor, Image.Image)):
            recent = [(ref, c) for ref, c in self._recent[:3] if ref() is not value]
            self._recent = [(weakref.ref(value), copied), *recent]
        return copied

    def forget_originals(self) -> None:
        """Drop the references to the handler's own values (done when the trace ends)."""
        self._recent = []

    def _keeps(self, row: int | None) -> bool:
        return self.capture == "full" and (
            row is None or self.max_rows is None or row < self.max_rows
        )

    def before(self, record: StageRecord) -> None:
        """Copy a step's input before it runs, so a step that works in place (such as
        `Normalize(inplace=True)`) is recorded with the input it really received."""
        if self._keeps(record.row) and record.kind == "step":
            self._copy(record.input)

    def __call__(self, record: StageRecord) -> None:
        """The hook: append a copy of `record` (copies of its values, or only their summaries)."""
        keep = self._keeps(record.row)
        data = self._copy(record.input) if keep else None
        in_place = record.output is record.input and isinstance(record.output, torch.Tensor)
        output = self._copy(record.output, fresh=in_place) if keep else None
        item = replace(record, input=data, output=output)
        # Stages finish after their steps; keep the records in the order the work started.
        index = len(self.records)
        while index and self.records[index - 1].started > record.started:
            index -= 1
        self.records.insert(index, item)


@contextmanager
def trace(
    handler, layers: Sequence[str] = (), capture: str = "full", max_rows: int | None = None
) -> Iterator[Trace]:
    """Record every stage and transform step of `handler` (and the named model layers).

    `handler` is any TorchServe handler: a handlerkit handler, a class built on `ts`'s handlers,
    or a module with a `handle(data, context)` function. Handlers that are not handlerkit's are
    traced by wrapping their stage methods on the instance for the duration of the trace; the
    handler is exactly as before afterwards.

    With `capture="full"`, `max_rows=N` keeps copies of the per-image steps of the first N rows
    only (the other rows get summaries), so tracing a large batch holds a bounded number of images.

    Example:
        with handlerkit.trace(handler, layers=["features.denseblock1"]) as t:
            handler.handle(rows, context)
        t.show()
    """
    recorder = Trace(capture, max_rows)
    with ExitStack() as undo:
        hooks = getattr(handler, "hooks", None)
        if not isinstance(hooks, Hooks):
            hooks = undo.enter_context(instrument(handler))
        handle = hooks.add(recorder)
        undo.callback(handle.remove)
        undo.callback(recorder.forget_originals)
        model = _model_of(handler)
        for name in layers:
            for layer_handle in add_layer_hook(model, name, recorder):
                undo.callback(layer_handle.remove)
        yield recorder


def add_layer_hook(handler, name: str, hook: Hook) -> list[RemovableHandle]:
    """Call `hook(record)` after submodule `name` of the handler's model (or of a model) runs.

    Returns removable handles, as torch's `register_forward_hook` does.
    """
    model = handler if isinstance(handler, torch.nn.Module) else getattr(handler, "model", None)
    if model is None:
        raise RuntimeError("initialize the handler before adding layer hooks")
    if isinstance(model, torch.jit.ScriptModule):
        raise TypeError(
            f"cannot hook layer {name!r}: the model is TorchScript; layer hooks need an eager "
            "model (model.py + state_dict)"
        )
    try:
        module = model.get_submodule(name)
    except AttributeError:
        children = [n for n, _ in model.named_children()]
        raise KeyError(f"the model has no layer {name!r}; top-level layers: {children}") from None
    device = getattr(handler, "device", None)
    starts: list[float] = []

    def before(_module, _inputs):
        _synchronize(device)
        starts.append(time.perf_counter())

    def after(_module, inputs, output):
        _synchronize(device)
        started = starts.pop()
        seconds = time.perf_counter() - started
        hook(
            StageRecord(name, "layer", inputs[0], output, seconds, None, *describe(output), started)
        )

    return [module.register_forward_pre_hook(before), module.register_forward_hook(after)]


# ---- any handler: wrap its stages on the instance while a trace lasts ---------------------------
STAGES = ("preprocess", "inference", "postprocess", "explain_handle")
STAGE_NAMES = {"explain_handle": "explain"}  # a method's stage name in records, where it differs


@contextmanager
def instrument(handler) -> Iterator[Hooks]:
    """Hooks for a handler that has none of its own (a `ts` handler, a function entry point).

    Its stage methods (and a module's `handle`) are shadowed on the instance by traced wrappers,
    and an `image_processing` Compose by one that runs its transforms one by one; every wrapper
    is removed again on exit, so the handler's class and attributes are exactly as before.
    """
    hooks = Hooks()
    targets = [handler]
    if isinstance(handler, types.ModuleType):
        targets = [handler, *_handler_objects(handler)]
    with ExitStack() as undo:
        for target in targets:
            stages = (*STAGES, "handle") if isinstance(target, types.ModuleType) else STAGES
            for stage in stages:
                _shadow(undo, target, stage, _traced_stage(hooks, target, stage))
            if isinstance(getattr(target, "image_processing", None), transforms.Compose):
                traced = functools.partial(_TracedCompose, hooks, target)
                _shadow(undo, target, "image_processing", traced)
        yield hooks


def _handler_objects(module: types.ModuleType) -> list:
    """The handler objects a function entry point's module keeps (e.g. `_service = Handler()`)."""
    return [
        value
        for value in vars(module).values()
        if not isinstance(value, (type, types.ModuleType, types.FunctionType))
        and all(callable(getattr(value, stage, None)) for stage in STAGES[:3])
    ]


def _shadow(undo: ExitStack, target, name: str, make: Callable | None) -> None:
    """Set `target.name` to `make(original)` until `undo` closes, then restore it exactly."""
    original = getattr(target, name, None)
    if make is None or not callable(original):
        return
    own = vars(target)
    had, previous = name in own, own.get(name)
    try:
        setattr(target, name, make(original))
    except (AttributeError, TypeError):  # slots or a read-only attribute: leave it untraced
        return

    def restore() -> None:
        if had:
            setattr(target, name, previous)
        else:
            delattr(target, name)

    undo.callback(restore)


def _traced_stage(hooks: Hooks, target, stage: str) -> Callable:
    def make(original: Callable) -> Callable:
        @functools.wraps(original)
        def traced(data, *args, **kwargs):
            if stage == "preprocess" and isinstance(
                vars(target).get("image_processing"), _TracedCompose
            ):
                target.image_processing.row = 0
            return hooks.run(
                STAGE_NAMES.get(stage, stage),
                "stage",
                lambda d: original(d, *args, **kwargs),
                data,
                None,
                getattr(target, "device", None),
            )

        return traced

    return make


class _TracedCompose(transforms.Compose):
    """A handler's `image_processing`, run one transform at a time through the hooks.

    `row` counts the images the current `preprocess` call has transformed so far.
    """

    def __init__(self, hooks: Hooks, target, compose: transforms.Compose) -> None:
        super().__init__(compose.transforms)
        self.hooks, self.target, self.row = hooks, target, 0

    def __call__(self, image):
        row, self.row = self.row, self.row + 1
        device = getattr(self.target, "device", None)
        for transform in self.transforms:
            image = self.hooks.run(type(transform).__name__, "step", transform, image, row, device)
        return image


def _model_of(handler):
    """The model a handler serves: its `.model`, or that of the handler object a module keeps."""
    if getattr(handler, "model", None) is not None or not isinstance(handler, types.ModuleType):
        return handler
    found = [h for h in _handler_objects(handler) if getattr(h, "model", None) is not None]
    return found[0] if found else handler


def describe(value: Any) -> tuple[str | None, str | None, tuple | None]:
    """(device, dtype, shape) of a tensor, a PIL image, or a list of them."""
    if isinstance(value, torch.Tensor):
        return _name(value.device), _name(value.dtype), tuple(value.shape)
    if isinstance(value, Image.Image):
        return "pil", f"PIL {value.mode}", (value.height, value.width, len(value.getbands()))
    if isinstance(value, (bytes, bytearray)):
        return None, "bytes", (len(value),)
    if isinstance(value, (list, tuple)):
        if value and isinstance(value[0], torch.Tensor):
            return _name(value[0].device), _name(value[0].dtype), (len(value), *value[0].shape)
        return None, type(value).__name__, (len(value),)
    return None, type(value).__name__, None


def snapshot(value: Any) -> Any:
    """A copy the handler cannot change later: tensors detached and copied to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, Image.Image):
        return value.copy()
    if isinstance(value, (bytes, str, int, float, BaseException)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(snapshot(v) for v in value)
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    try:
        return copy.deepcopy(value)
    except Exception:  # noqa: BLE001 - a generator, a lock, ...: tracing never breaks a handler
        return value


@functools.cache
def _name(device_or_dtype) -> str:
    """A device or dtype as trace tables print it: "cpu", "float32" (cached: called often)."""
    return str(device_or_dtype).removeprefix("torch.")


def _synchronize(device) -> None:
    if device is not None and getattr(device, "type", None) == "cuda":
        torch.cuda.synchronize(device)
