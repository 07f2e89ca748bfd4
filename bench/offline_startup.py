"""Time from a `.mar` on disk to its first answer: OfflineServer (warm Python) vs a real TorchServe.

Run: .venv/bin/python bench/offline_startup.py [--repeats N]
Both load the same archive of data/mnist and answer the same PNG; each round starts afresh.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from handlerkit import samples
from handlerkit.offline import OfflineServer
from handlerkit.serve import TorchServe, archive


def offline_first_answer(mar: Path, body: bytes) -> float:
    started = time.perf_counter()
    with OfflineServer({"mnist": mar}) as server:
        answer = server.predict("mnist", body)
        elapsed = time.perf_counter() - started
    assert answer.status == 200, answer
    return elapsed


def torchserve_first_answer(store: Path, body: bytes) -> float:
    started = time.perf_counter()
    with TorchServe(store, {"mnist": "mnist.mar"}) as server:
        answer = server.predict("mnist", body)
        elapsed = time.perf_counter() - started
    assert answer.status == 200, answer
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    body = samples.digit_png(0)
    with tempfile.TemporaryDirectory() as store:
        mar = archive(samples.MNIST_DIR, store, "mnist")
        offline_first_answer(mar, body)  # warm: handlerkit, ts and torch imported once
        offline = [offline_first_answer(mar, body) for _ in range(args.repeats)]
        real = [torchserve_first_answer(Path(store), body) for _ in range(args.repeats)]
    o, r = statistics.median(offline), statistics.median(real)
    print("| from mnist.mar to the first answer | median s | min..max s |")
    print("| --- | ---: | ---: |")
    print(
        f"| OfflineServer, warm Python process | {o:.3f} | {min(offline):.3f}..{max(offline):.3f} |"
    )
    print(f"| real TorchServe 0.12 (Java), started | {r:.3f} | {min(real):.3f}..{max(real):.3f} |")
    print(f"OfflineServer is {r / o:.0f}x faster ({args.repeats} rounds each)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
