"""Tracing: record the value between every stage, transform step and chosen layer of a handler.

Handlers call `hooks.run(...)` around each stage and step; with no hook registered that is one
truth test and a direct call. `trace(handler)` registers hooks that fill a `Trace` of records.
"""

from __future__ import annotations

import copy
import time
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
        for hook in list(self._hooks.values()):
            hook(stage, kind, data, output, seconds, row, started)
        return output


@dataclass
class StageRecord:
    """What went into and came out of one stage, transform step or layer."""

    stage: str  # "preprocess", "Resize", "features.denseblock1", ...
    kind: str  # "stage", "step" or "layer"
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
        # (original, copy) of the last few tensors/images copied: a step's output is usually the
        # next step's input (and `to_device` on the CPU returns its input), so one copy serves both.
        self._recent: list[tuple[Any, Any]] = []

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

    def table(self) -> str:
        """A text table: one line per record, indented under its stage."""
        lines = [
            f"{'stage':<28} {'row':>3}  {'device':<7} {'dtype':<14} {'shape':<20} {'time':>12}"
        ]
        for r in self.records:
            name = r.stage if r.kind == "stage" else "  " + r.stage
            row = "" if r.row is None else str(r.row)
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
            if original is value:
                return copied
        copied = snapshot(value)
        if isinstance(value, (torch.Tensor, Image.Image)):
            self._recent = [(value, copied), *self._recent[:3]]
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
        return str(value.device), str(value.dtype).removeprefix("torch."), tuple(value.shape)
    if isinstance(value, Image.Image):
        return "pil", f"PIL {value.mode}", (value.height, value.width, len(value.getbands()))
    if isinstance(value, (bytes, bytearray)):
        return None, "bytes", (len(value),)
    if isinstance(value, (list, tuple)):
        if value and isinstance(value[0], torch.Tensor):
            return (
                str(value[0].device),
                str(value[0].dtype).removeprefix("torch."),
                (len(value), *value[0].shape),
            )
        return None, type(value).__name__, (len(value),)
    return None, type(value).__name__, None


def snapshot(value: Any) -> Any:
    """A copy the handler cannot change later: tensors detached and copied to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, Image.Image):
        return value.copy()
    if isinstance(value, (bytes, str, int, float)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(snapshot(v) for v in value)
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    return copy.deepcopy(value)


def _synchronize(device) -> None:
    if device is not None and getattr(device, "type", None) == "cuda":
        torch.cuda.synchronize(device)
