"""The speed harness: every variant of a handler on the same batch, TorchServe's own as reference.

Variants alternate round by round so drifts in machine load hit them all; tables print medians
and spreads. `python -m bench` calls `benchmark`.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

import handlerkit
from handlerkit import samples
from handlerkit.handlers.tensor_classifier import TensorImageClassifier, compare_paths
from handlerkit.show.timing import measure, paths_table, stage_table, stage_times
from tests.fixtures.reference import (
    quiet_torchserve,
    torchserve_mnist_class,
    ts_context,
    ts_initialize,
)

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
        classes = {"handlerkit": handlerkit.ImageClassifier, "tensor path": TensorImageClassifier}
    elif model == "mnist":
        folder, reference_class = samples.MNIST_DIR, torchserve_mnist_class()
        title, make_rows = "MNIST Net", samples.digit_rows
        classes = {
            "handlerkit": handlerkit.MNISTDigitClassifier,
            "uploads": handlerkit.UploadedDigitClassifier,
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
        with handlerkit.trace(handler, capture=capture) as t:
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
    """The tensor path against the PIL path on the sample photos (see compare_paths)."""
    pil, tensor = found.handlers["handlerkit"][0], found.handlers["tensor path"][0]
    c = compare_paths(pil, tensor, samples.photo_rows(len(samples.PHOTO_NAMES)))
    return (
        f"closeness on the {c['rows']} sample photos: inputs differ by at most "
        f"{c['max_abs_diff']:.4f} ({c['grey_levels']:.2f} grey levels of 255); same top-1 on "
        f"{c['top1']}/{c['rows']}, same top-5 (in order) on {c['top5']}/{c['rows']}"
    )
