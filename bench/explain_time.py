"""Time one explanation (Integrated Gradients, 15 steps, as TorchServe) on CPU per model.

Run: .venv/bin/python bench/explain_time.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from handlerkit import ImageClassifier, samples


def seconds_per_explanation(folder, repeats: int) -> list[float]:
    handler, context = ImageClassifier.for_folder(folder)
    rows = [{"data": samples.photo_bytes("chelsea")}]
    context.for_requests([{"explain": "True"}])
    handler.handle(rows, context)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        handler.handle(rows, context.for_requests([{"explain": "True"}]))
        times.append(time.perf_counter() - started)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    folders = {
        "EfficientNet-Lite0": samples.efficientnet_folder(),
        "DenseNet-121": samples.densenet_folder()[0],
    }
    print(f"torch threads: {torch.get_num_threads()}")
    print("| model (one 224x224 photo) | median s | min..max s |")
    print("| --- | ---: | ---: |")
    for name, folder in folders.items():
        times = seconds_per_explanation(folder, args.repeats)
        print(f"| {name} | {statistics.median(times):.2f} | {min(times):.2f}..{max(times):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
