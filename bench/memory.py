"""The memory harness: peak RSS of handling one batch, untraced and traced, each in a fresh process.

`measure_memory` starts `python -m bench.memory ...` once per variant and run; the child handles
one batch of DenseNet photos and prints its peak memory and what its trace copied, as JSON.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image

import handlerkit
from handlerkit import samples
from handlerkit.handlers.tensor_classifier import TensorImageClassifier
from handlerkit.show.timing import captured_bytes

from .proc import peak_rss
from .speed import densenet_folder

ROOT = Path(__file__).resolve().parents[1]  # the checkout: `python -m bench.memory` runs there
VARIANTS = {  # name -> trace() arguments (None: no tracing)
    "untraced": None,
    "trace(summary)": {"capture": "summary"},
    "trace(full)": {"capture": "full"},
    "trace(full, max_rows=4)": {"capture": "full", "max_rows": 4},
}
HANDLERS = {  # the path's name -> the handler class measured
    "PIL path": handlerkit.ImageClassifier,
    "tensor path": TensorImageClassifier,
}


def child(model_dir: str, path: str, variant: str, batch: str, threads: str) -> None:
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
        with handlerkit.trace(handler, **options) as t:
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
            command = [sys.executable, "-m", "bench.memory", str(folder), path, variant]
            command += [str(batch), str(threads)]
            runs = []
            for _ in range(repeats):
                done = subprocess.run(
                    command, capture_output=True, text=True, check=True, env=env, cwd=ROOT
                )
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


if __name__ == "__main__":
    child(*sys.argv[1:])
