"""Tracing: record the value between every stage, transform step and chosen layer of a handler.

Handlers call `hooks.run(...)` around each stage and step; with no hook registered that is one
truth test and a direct call. `trace(handler)` registers hooks that fill a `Trace` of records.
"""

from __future__ import annotations

import copy
import functools
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image
from torch.utils.hooks import RemovableHandle

# A hook sees one finished stage/step: hook(stage, kind, input, output, seconds, row, started).
Hook = Callable[[str, str, Any, Any, float, "int | None", float], None]


class Hooks:
    """The hooks registered on one handler; `add` returns a handle whose `.remove()` undoes it."""

    def __init__(self) -> None:
        self._hooks: OrderedDict[int, Hook] = OrderedDict()  # weak-referenceable, as torch needs

    def __bool__(self) -> bool:
        return bool(self._hooks)

    def add(self, hook: Hook) -> RemovableHandle:
        handle = RemovableHandle(self._hooks)
        self._hooks[handle.id] = hook
        return handle

    def run(self, stage: str, kind: str, fn: Callable, data: Any, row: int | None, device) -> Any:
        """Call `fn(data)`, timing it (synchronizing CUDA), and tell every hook about it."""
        _synchronize(device)
        started = time.perf_counter()
        output = fn(data)
        _synchronize(device)
        seconds = time.perf_counter() - started
        for hook in tuple(self._hooks.values()):
            hook(stage, kind, data, output, seconds, row, started)
        return output

    def tell(self, stage: str, kind: str, data: Any, output: Any, row: int | None) -> None:
        """Tell every hook about an event that took no time, e.g. a request being rejected."""
        started = time.perf_counter()
        for hook in list(self._hooks.values()):
            hook(stage, kind, data, output, 0.0, row, started)


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

    def show(self, row: int = 0):
        """Draw the pipeline for request `row` (see `handlerkit.viz.show_trace`)."""
        from .viz import show_trace

        return show_trace(self, row=row)

    def _copy(self, value: Any) -> Any:
        """`snapshot(value)`, reusing the copy of a value this trace copied a moment ago."""
        for original, copied in self._recent:
            if original() is value:
                return copied
        copied = snapshot(value)
        if isinstance(value, (torch.Tensor, Image.Image)):
            self._recent = [(weakref.ref(value), copied), *self._recent[:3]]
        return copied

    def forget_originals(self) -> None:
        """Drop the references to the handler's own values (done when the trace ends)."""
        self._recent = []

    def record(self, stage, kind, data, output, seconds, row, started) -> None:
        """A hook: append a record (copies of the values, or only their summaries)."""
        device, dtype, shape = describe(output)
        keep = self.capture == "full" and (
            row is None or self.max_rows is None or row < self.max_rows
        )
        item = StageRecord(
            stage,
            kind,
            self._copy(data) if keep else None,
            self._copy(output) if keep else None,
            seconds,
            row,
            device,
            dtype,
            shape,
            started,
        )
        # Stages finish after their steps; keep the records in the order the work started.
        index = len(self.records)
        while index and self.records[index - 1].started > started:
            index -= 1
        self.records.insert(index, item)


@contextmanager
def trace(
    handler, layers: Sequence[str] = (), capture: str = "full", max_rows: int | None = None
) -> Iterator[Trace]:
    """Record every stage and transform step of `handler` (and the named model layers).

    With `capture="full"`, `max_rows=N` keeps copies of the per-image steps of the first N rows
    only (the other rows get summaries), so tracing a large batch holds a bounded number of images.

    Example:
        with handlerkit.trace(handler, layers=["features.denseblock1"]) as t:
            handler.handle(rows, context)
        t.show()
    """
    recorder = Trace(capture, max_rows)
    handles = [handler.hooks.add(recorder.record)]
    try:
        for name in layers:
            handles += add_layer_hook(handler, name, recorder.record)
        yield recorder
    finally:
        for handle in handles:
            handle.remove()
        recorder.forget_originals()


def add_layer_hook(handler, name: str, hook: Hook) -> list[RemovableHandle]:
    """Call `hook` after the model's submodule `name` runs; returns removable handles."""
    if handler.model is None:
        raise RuntimeError("initialize the handler before adding layer hooks")
    if isinstance(handler.model, torch.jit.ScriptModule):
        raise TypeError(
            f"cannot hook layer {name!r}: the model is TorchScript; layer hooks need an eager "
            "model (model.py + state_dict)"
        )
    try:
        module = handler.model.get_submodule(name)
    except AttributeError:
        children = [n for n, _ in handler.model.named_children()]
        raise KeyError(f"the model has no layer {name!r}; top-level layers: {children}") from None
    starts: list[float] = []

    def before(_module, _inputs):
        _synchronize(handler.device)
        starts.append(time.perf_counter())

    def after(_module, inputs, output):
        _synchronize(handler.device)
        started = starts.pop()
        hook(name, "layer", inputs[0], output, time.perf_counter() - started, None, started)

    return [module.register_forward_pre_hook(before), module.register_forward_hook(after)]


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
    return copy.deepcopy(value)


@functools.cache
def _name(device_or_dtype) -> str:
    """A device or dtype as trace tables print it: "cpu", "float32" (cached: called often)."""
    return str(device_or_dtype).removeprefix("torch.")


def _synchronize(device) -> None:
    if device is not None and getattr(device, "type", None) == "cuda":
        torch.cuda.synchronize(device)
