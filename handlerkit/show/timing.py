"""Timing helpers: time handlers fairly, sum a trace's steps per batch, count what a trace holds.

They sit beside `tracing` and read its `Trace`s; notebook 05 and the benchmark (bench/) use them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from PIL import Image

from ..tracing import Trace

STAGES = ("preprocess", "forward", "postprocess", "total")  # the rows under the steps
PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2}  # Pillow stores every other mode in 4 bytes


def measure(runs: dict[str, Callable], rows: list, repeats: int) -> dict[str, list[float]]:
    """Seconds per call for each variant, alternating variants within each round.

    Alternating means a burst of load elsewhere on the machine hits every variant alike.

    Args:
        runs: name -> a function that handles `rows` once.
        rows: the request rows every variant gets.
        repeats: rounds after one warm-up call each (the first calls allocate and fill caches).

    Returns:
        name -> `repeats` durations in seconds.
    """
    for run in runs.values():
        run(rows)
    seconds = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run(rows)
            seconds[name].append(time.perf_counter() - started)
    return seconds


def stage_times(traces: list[Trace]) -> dict[str, float]:
    """Median seconds per step (summed over the batch's images) and per stage, over traces."""
    per_trace = []
    for t in traces:
        totals: dict[str, float] = {}
        for record in t:
            name = "forward" if record.stage == "inference" else record.stage
            totals[name] = totals.get(name, 0.0) + record.seconds
        steps = sum(r.seconds for r in t if r.kind == "step")
        totals["preprocess, other"] = totals.get("preprocess", 0.0) - steps
        totals["total"] = sum(r.seconds for r in t if r.kind == "stage")
        per_trace.append(totals)
    names = list(per_trace[0])
    return {name: statistics.median(t.get(name, 0.0) for t in per_trace) for name in names}


def stage_table(stages_by_batch: dict[int, dict[str, float]]) -> str:
    """Rows: steps and stages (ms per batch, summed over its images); columns: batch sizes."""
    batches = list(stages_by_batch)
    steps: list[str] = []  # in the order they ran
    for stages in stages_by_batch.values():
        steps += [n for n in stages if n not in steps and n not in STAGES]
    rows = [f"  {n}" for n in steps if n != "preprocess, other"] + ["  preprocess, other", *STAGES]
    lines = [f"{'ms per batch':<22}" + "".join(f"{'batch ' + str(b):>12}" for b in batches)]
    for row in rows:
        values = [stages_by_batch[b].get(row.strip(), 0.0) * 1000 for b in batches]
        lines.append(f"{row:<22}" + "".join(f"{v:12.2f}" for v in values))
    share = [_not_forward_share(stages_by_batch[b]) for b in batches]
    lines.append(f"{'not forward / forward':<22}" + "".join(f"{s:12.1%}" for s in share))
    return "\n".join(lines)


def _not_forward_share(stages: dict[str, float]) -> float:
    return (stages["total"] - stages["forward"]) / stages["forward"]


def paths_table(paths: dict[int, dict[str, list[float]]]) -> str:
    """`preprocess` alone on the PIL path and the tensor path: median ms per batch, speed-up."""
    lines = [f"{'batch':>5} {'PIL path ms':>12} {'tensor path ms':>15} {'speed-up':>9}"]
    for batch, seconds in paths.items():
        pil, tensor = (statistics.median(seconds[n]) for n in ("PIL path", "tensor path"))
        lines.append(f"{batch:>5} {pil * 1000:12.1f} {tensor * 1000:15.1f} {pil / tensor:8.2f}x")
    return "\n".join(lines)


def captured_bytes(value, kind: type = torch.Tensor, seen: set | None = None) -> int:
    """Bytes of the distinct copies of `kind` (torch.Tensor or PIL's Image.Image) a trace holds.

    A copy shared by two records (one step's output, the next one's input) counts once. Request
    bytes are never counted: `snapshot` keeps them as they are, it copies nothing.
    """
    seen = set() if seen is None else seen
    if isinstance(value, Trace):
        values = [v for r in value for v in (r.input, r.output)]
        return sum(captured_bytes(v, kind, seen) for v in values)
    if isinstance(value, (list, tuple, dict)):
        items = value.values() if isinstance(value, dict) else value
        return sum(captured_bytes(v, kind, seen) for v in items)
    if isinstance(value, torch.Tensor) and kind is torch.Tensor:
        storage = value.untyped_storage()
        if storage.data_ptr() in seen:
            return 0
        seen.add(storage.data_ptr())
        return storage.nbytes()
    if isinstance(value, Image.Image) and kind is Image.Image:
        if id(value) in seen:
            return 0
        seen.add(id(value))
        return value.width * value.height * PIXEL_BYTES.get(value.mode, 4)
    return 0
