"""Benchmark: handlerkit against TorchServe's own handler, and what tracing costs.

Runs each variant on the same batch, alternating A/B/C/D so drifts in machine load hit them all,
and prints the median and spread per variant. Run: `python -m handlerkit.bench` (or `make bench`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import torch

import handlerkit
from handlerkit import Context, samples


def torchserve_handler(model_dir: Path, handler_class):
    """TorchServe's own handler on `model_dir`, initialized as its worker would."""
    from ts.context import Context as TsContext
    from ts.metrics.metrics_store import MetricsStore

    local = Context.local(model_dir)
    context = TsContext(
        local.model_name,
        str(model_dir),
        local.manifest,
        8,
        None,
        "bench",
        metrics=MetricsStore(uuid.uuid4(), local.model_name),
        model_yaml_config={},
    )
    sys.path.insert(0, str(model_dir))
    sys.modules.pop("model", None)
    try:
        handler = handler_class()
        handler.initialize(context)
    finally:
        sys.path.remove(str(model_dir))
    return handler, context


def variants(model_dir: Path) -> dict[str, Callable[[list], object]]:
    """name -> a function that handles a batch of rows once."""
    from ts.torch_handler.image_classifier import ImageClassifier as TsImageClassifier

    ts_handler, ts_context = torchserve_handler(model_dir, TsImageClassifier)
    handler = handlerkit.ImageClassifier()
    context = Context.local(model_dir)
    handler.initialize(context)

    def traced(capture):
        def run(rows):
            with handlerkit.trace(handler, capture=capture):
                return handler.handle(rows, context)

        return run

    return {
        "torchserve": lambda rows: ts_handler.handle(rows, ts_context),
        "handlerkit": lambda rows: handler.handle(rows, context),
        "handlerkit+trace(summary)": traced("summary"),
        "handlerkit+trace(full)": traced("full"),
    }


def measure(runs: dict[str, Callable], rows: list, repeats: int) -> dict[str, list[float]]:
    """Seconds per call for each variant, alternating variants within each round."""
    for run in runs.values():  # warm-up: first calls allocate and fill caches
        run(rows)
    seconds = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run(rows)
            seconds[name].append(time.perf_counter() - started)
    return seconds


def report(seconds: dict[str, list[float]], baseline: str = "torchserve") -> str:
    """A table: median ms, spread (min..max), ratio of medians to the baseline."""
    base = statistics.median(seconds[baseline])
    lines = [f"{'variant':<28} {'median ms':>10} {'min..max ms':>18} {'/ torchserve':>13}"]
    for name, values in seconds.items():
        median = statistics.median(values)
        spread = f"{min(values) * 1000:.0f}..{max(values) * 1000:.0f}"
        lines.append(f"{name:<28} {median * 1000:10.1f} {spread:>18} {median / base:13.3f}")
    return "\n".join(lines)


def stage_breakdown(model_dir: Path, rows: list) -> str:
    """Where the time goes inside one traced call, per stage and step (summed over images)."""
    handler, context = handlerkit.ImageClassifier(), Context.local(model_dir)
    handler.initialize(context)
    handler.handle(rows, context)
    with handlerkit.trace(handler, capture="summary") as t:
        handler.handle(rows, context)
    totals: dict[str, float] = {}
    for record in t:
        key = record.stage if record.kind == "stage" else f"  {record.stage}"
        totals[key] = totals.get(key, 0.0) + record.seconds
    return "\n".join(f"{name:<20} {secs * 1000:9.1f} ms" for name, secs in totals.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model_dir, pretrained = samples.densenet_folder()
    photos = list(samples.photos().values())
    rows = [{"data": photos[i % len(photos)]} for i in range(args.batch)]
    print(
        f"DenseNet-121 ({'ImageNet' if pretrained else 'seeded'} weights), ImageClassifier, "
        f"batch {args.batch}, {args.repeats} alternating rounds, torch {torch.__version__}, "
        f"{args.threads} threads, device cpu"
    )
    print(report(measure(variants(model_dir), rows, args.repeats)))
    print("\none traced call, summed per stage/step:")
    print(stage_breakdown(model_dir, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
