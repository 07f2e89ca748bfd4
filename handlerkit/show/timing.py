"""Timing helpers: time handlers fairly, sum a trace's steps per batch, count what a trace holds.

They read `tracing`'s `Trace`s. Notebook 05 runs the speed and memory comparisons below with
TorchServe's own handlers as the reference; the benchmark's command line (bench/) calls the same.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from .. import samples
from ..context import Context
from ..handlers.image_classifier import ImageClassifier
from ..handlers.mnist import MNISTDigitClassifier
from ..handlers.tensor_classifier import TensorImageClassifier, compare_paths
from ..handlers.uploads import UploadedDigitClassifier
from ..tracing import Trace, trace

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


# ---- speed: every variant of a handler on the same batch, TorchServe's own as reference ----
MODELS = ("densenet", "mnist")
CAPTURES = ("summary", "full")  # the traced variants of every handlerkit handler


@dataclass
class Setup:
    """One model on one device: TorchServe's handler and the handlerkit handlers to compare."""

    title: str
    make_rows: Callable[[int], list]  # batch size -> request rows
    torchserve: tuple  # (handler, context), TorchServe's own
    handlers: dict[str, tuple] = field(default_factory=dict)  # label -> (handler, context)


def setup(model: str, device: str = "cpu") -> Setup:
    """The handlers for `model` ("densenet" or "mnist") on `device` ("cpu" or "cuda")."""
    gpu_id = 0 if device == "cuda" else None
    with quiet_torchserve():  # importing ts.torch_handler logs which back-ends it lacks
        from ts.torch_handler.image_classifier import ImageClassifier as TsImageClassifier
    if model == "densenet":
        folder, pretrained = densenet_folder()
        reference_class = TsImageClassifier
        weights = "ImageNet" if pretrained else "seeded"
        title, make_rows = f"DenseNet-121 ({weights} weights)", samples.photo_rows
        classes = {"handlerkit": ImageClassifier, "tensor path": TensorImageClassifier}
    elif model == "mnist":
        folder, reference_class = samples.MNIST_DIR, torchserve_mnist_class()
        title, make_rows = "MNIST Net", samples.digit_rows
        classes = {
            "handlerkit": MNISTDigitClassifier,
            "uploads": UploadedDigitClassifier,
        }
    else:
        raise ValueError(f"unknown model {model!r}; choose from {MODELS}")
    context = ts_context(folder, batch_size=8, gpu_id=gpu_id)
    found = Setup(title, make_rows, ts_initialize(reference_class(), folder, context))
    for label, handler_class in classes.items():
        found.handlers[label] = handler_class.for_folder(folder, gpu_id)
    return found


@functools.cache
def densenet_folder() -> tuple[Path, bool]:
    """`samples.densenet_folder()`, once per process (not once per setup)."""
    return samples.densenet_folder()


def variants(found: Setup, traces: dict[str, list]) -> dict[str, Callable[[list], object]]:
    """name -> a function that handles a batch once; traced variants append their Trace."""
    ts_handler, ts_ctx = found.torchserve
    runs = {"torchserve": lambda rows: ts_handler.handle(rows, ts_ctx)}
    for label, (handler, context) in found.handlers.items():
        runs[label] = _plain(handler, context)
        for capture in CAPTURES:
            name = f"{label}+trace({capture})"
            traces[name] = []
            runs[name] = _traced(handler, context, capture, traces[name])
    return runs


def _plain(handler, context):
    return lambda rows: handler.handle(rows, context)


def _traced(handler, context, capture: str, keep: list):
    def run(rows):
        with trace(handler, capture=capture) as t:
            answers = handler.handle(rows, context)
        keep.append(t)
        return answers

    return run


def speed_table(seconds_by_batch: dict[int, dict[str, list[float]]]) -> str:
    """Median ms, spread, images/s, ratio to TorchServe and to the same handler untraced."""
    header = (
        f"{'batch':>5}  {'variant':<28} {'median ms':>10} {'min..max ms':>14} "
        f"{'images/s':>9} {'/ torchserve':>13} {'/ untraced':>11}"
    )
    lines = [header]
    for batch, seconds in seconds_by_batch.items():
        medians = {name: statistics.median(values) for name, values in seconds.items()}
        for name, values in seconds.items():
            untraced = name.split("+trace")[0]
            overhead = "-" if untraced == name else f"{medians[name] / medians[untraced]:.3f}"
            spread = f"{min(values) * 1000:.1f}..{max(values) * 1000:.1f}"
            lines.append(
                f"{batch:>5}  {name:<28} {medians[name] * 1000:10.1f} {spread:>14} "
                f"{batch / medians[name]:9.1f} {medians[name] / medians['torchserve']:13.3f} "
                f"{overhead:>11}"
            )
    return "\n".join(lines)


def benchmark(
    models=MODELS, batches=(1, 8, 32), repeats: int = 5, devices=("cpu",), echo=print
) -> dict:
    """Benchmark each model on each device and batch size; print the tables with `echo`.

    Returns {(model, device): {"seconds": {batch: {variant: [s, ...]}}, "stages": {label:
    {batch: {step: s}}}, "preprocess": {batch: {path: [s, ...]}}}}.
    """
    results = {}
    for device in devices:
        for model in models:
            found = setup(model, device)
            seconds, stages = {}, {label: {} for label in found.handlers}
            for batch in batches:
                traces: dict[str, list] = {}
                runs = variants(found, traces)
                seconds[batch] = measure(runs, found.make_rows(batch), repeats)
                for label in found.handlers:
                    timed = traces[f"{label}+trace(summary)"][-repeats:]  # not the warm-up's
                    stages[label][batch] = stage_times(timed)
            results[model, device] = {"seconds": seconds, "stages": stages}
            echo(
                f"\n{found.title} on {device}, torch {torch.__version__}, "
                f"{torch.get_num_threads()} threads, {repeats} alternating rounds"
            )
            echo(speed_table(seconds))
            for label, by_batch in stages.items():
                handler = type(found.handlers[label][0]).__name__
                echo(f"\n{label} ({handler}): where the time goes, from the summary traces")
                echo(stage_table(by_batch))
            if "tensor path" in found.handlers:
                paths = {b: preprocess_speed(found, b, repeats) for b in batches}
                results[model, device]["preprocess"] = paths
                echo("\npreprocess alone (untraced): the PIL path against the tensor path")
                echo(paths_table(paths))
                echo(closeness_line(found))
    return results


def preprocess_speed(found: Setup, batch: int, repeats: int) -> dict[str, list[float]]:
    """Seconds of `preprocess` alone, PIL path and tensor path alternating."""
    pil, tensor = found.handlers["handlerkit"][0], found.handlers["tensor path"][0]
    runs = {"PIL path": pil.preprocess, "tensor path": tensor.preprocess}
    return measure(runs, found.make_rows(batch), repeats)


def closeness_line(found: Setup) -> str:
    """The tensor path against the PIL path on the sample photos (see fastpath.compare_paths)."""
    pil, tensor = found.handlers["handlerkit"][0], found.handlers["tensor path"][0]
    c = compare_paths(pil, tensor, samples.photo_rows(len(samples.PHOTO_NAMES)))
    return (
        f"closeness on the {c['rows']} sample photos: inputs differ by at most "
        f"{c['max_abs_diff']:.4f} ({c['grey_levels']:.2f} grey levels of 255); same top-1 on "
        f"{c['top1']}/{c['rows']}, same top-5 (in order) on {c['top5']}/{c['rows']}"
    )


# ---- memory: peak RSS of handling one batch, untraced and traced, each in a fresh process ----
# The child re-imports this module by name, so the command works wherever the module lives.
_CHILD = f"import sys; from {__name__} import memory_child; memory_child(*sys.argv[1:])"
VARIANTS = {  # name -> trace() arguments (None: no tracing)
    "untraced": None,
    "trace(summary)": {"capture": "summary"},
    "trace(full)": {"capture": "full"},
    "trace(full, max_rows=4)": {"capture": "full", "max_rows": 4},
}
HANDLERS = {  # the path's name -> the handler class measured
    "PIL path": ImageClassifier,
    "tensor path": TensorImageClassifier,
}


def memory_child(model_dir: str, path: str, variant: str, batch: str, threads: str) -> None:
    """In a fresh process: handle one batch of DenseNet photos once, print peak RSS as JSON."""
    import psutil

    torch.set_num_threads(int(threads))
    handler, context = HANDLERS[path].for_folder(model_dir)
    rows = samples.photo_rows(int(batch))
    before = psutil.Process().memory_info().rss
    options = VARIANTS[variant]
    tensors = images = 0
    if options is None:
        handler.handle(rows, context)
    else:
        with trace(handler, **options) as t:
            handler.handle(rows, context)
        tensors, images = captured_bytes(t, torch.Tensor), captured_bytes(t, Image.Image)
    print(json.dumps({"before": before, "peak": peak_rss(), "tensors": tensors, "images": images}))


def measure_memory(
    batch: int = 32,
    threads: int = 2,
    repeats: int = 3,
    steady_malloc: bool = True,
    paths: tuple[str, ...] = tuple(HANDLERS),
    echo=print,
) -> dict[str, dict[str, dict]]:
    """Peak RSS of handling one batch, untraced and traced, on both preprocessing paths.

    Each run is a fresh process. With `steady_malloc`, glibc's mmap threshold is fixed at 64 KiB
    (MALLOC_MMAP_THRESHOLD_), so freed buffers go back to the system and RSS follows the live
    memory; with glibc's default (a threshold that grows as big blocks are freed) the peak of
    identical runs varies by ~100 MB.
    """
    folder, _ = densenet_folder()
    env = dict(os.environ, **({"MALLOC_MMAP_THRESHOLD_": "65536"} if steady_malloc else {}))
    malloc = "MALLOC_MMAP_THRESHOLD_=65536" if steady_malloc else "glibc's default malloc"
    everything = {}
    for path in paths:
        results = {}
        for variant in VARIANTS:
            command = [sys.executable, "-c", f"{_CHILD}", str(folder), path, variant]
            command += [str(batch), str(threads)]
            runs = []
            for _ in range(repeats):
                done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            results[variant] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            results[variant]["peaks"] = [r["peak"] for r in runs]
        name = HANDLERS[path].__name__
        echo(f"DenseNet-121, {name} ({path}), one batch of {batch} photos; {malloc}")
        echo(memory_table(results, repeats) + "\n")
        everything[path] = results
    return everything


def memory_table(results: dict[str, dict], repeats: int) -> str:
    """Peak RSS per variant (median of fresh processes), what tracing added, what it copied."""
    mb, base = 2**20, results["untraced"]["peak"]
    runs = f", median of {repeats} runs" if repeats > 1 else ""
    lines = [
        f"{'variant (MB' + runs + ')':<36} {'before':>7} {'peak':>6} {'+ peak':>7} "
        f"{'tensors':>8} {'PIL':>6} {'+ peak / copies':>16}"
    ]
    for variant, r in results.items():
        added, copies = r["peak"] - base, r["tensors"] + r["images"]
        ratio = f"{added / copies:.2f}" if copies else "-"
        lines.append(
            f"{variant:<36} {r['before'] / mb:7.0f} {r['peak'] / mb:6.0f} {added / mb:7.0f} "
            f"{r['tensors'] / mb:8.1f} {r['images'] / mb:6.1f} {ratio:>16}"
        )
    spread = max(max(r["peaks"]) - min(r["peaks"]) for r in results.values())
    lines.append(f"largest spread of one variant's peaks: {spread / mb:.0f} MB")
    lines.append(
        "+ peak / copies: what tracing added to the peak per byte the trace copied "
        "(1.00: the copies, nothing more)"
    )
    return "\n".join(lines)


def peak_rss() -> int:
    """This process's peak resident memory, in bytes.

    Linux: VmHWM, which starts afresh at exec (getrusage's ru_maxrss survives exec, so a child
    would report its parent's peak when that is larger).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, others KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


# ---- TorchServe's own handlers, built in this process as its worker builds them ----
def ts_context(
    model_dir: Path,
    limit_max_image_pixels: bool = True,
    batch_size: int = 1,
    gpu_id: int | None = None,
):
    """A real `ts.context.Context`, as TorchServe's worker builds it for a model folder."""
    from ts.context import Context as TsContext
    from ts.context import RequestProcessor
    from ts.metrics.metrics_store import MetricsStore

    local = Context.local(model_dir)
    context = TsContext(
        local.model_name,
        str(model_dir),
        local.manifest,
        batch_size,
        gpu_id,
        "0.12.0",
        limit_max_image_pixels=limit_max_image_pixels,
        metrics=MetricsStore(uuid.uuid4(), local.model_name),
        model_yaml_config={},
    )
    context.request_processor = [RequestProcessor({}) for _ in range(64)]  # the worker's headers
    return context


def ts_initialize(handler, model_dir: Path, context=None):
    """(handler, context): a TorchServe handler initialized as its worker does it.

    The model folder is on `sys.path` while the handler imports its `model.py`.
    """
    context = context or ts_context(model_dir)
    sys.modules.pop("model", None)  # each folder has its own model.py
    sys.path.insert(0, str(model_dir))
    try:
        with quiet_torchserve():
            handler.initialize(context)
    finally:
        sys.path.remove(str(model_dir))
        sys.modules.pop("model", None)
    return handler, context


@contextmanager
def quiet_torchserve():
    """Silence TorchServe's start-up warnings (optional back-ends, missing label file)."""
    logger = logging.getLogger("ts")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def torchserve_mnist_class():
    """TorchServe's MNIST example handler, rebuilt on the real `ts` ImageClassifier."""
    from torchvision import transforms

    with quiet_torchserve():  # importing ts.torch_handler logs which back-ends it lacks
        from ts.torch_handler.image_classifier import ImageClassifier

    class MNISTDigitClassifierReference(ImageClassifier):  # TorchServe's example, as written
        image_processing = transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
        )

        def postprocess(self, data):
            return data.argmax(1).tolist()

    return MNISTDigitClassifierReference
