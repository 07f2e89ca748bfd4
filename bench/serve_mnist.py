"""Served MNIST latency and throughput: batch_size 1 against batch_size 8, on a real TorchServe.

Archives data/mnist, serves it on 127.0.0.1 and runs `handlerkit.serve.measure` once per setting.
Run: .venv/bin/python bench/serve_mnist.py [--requests 400] [--concurrency 64] [--delay 50]
"""

from __future__ import annotations

import argparse
import os

from handlerkit import samples
from handlerkit.serve import TorchServe, measure

COLUMNS = {  # measure() key -> column heading
    "batch_size": "batch",
    "requests": "requests",
    "ok": "ok",
    "p50_ms": "alone p50 ms",
    "p95_ms": "alone p95 ms",
    "burst_p50_ms": "burst p50 ms",
    "burst_p95_ms": "burst p95 ms",
    "throughput_rps": "burst req/s",
}


def run(requests: int, concurrency: int, delay_ms: int, sequential: int) -> list[dict]:
    """One `measure` per batch size, on held-out digits (index % 5 == 0)."""
    payloads = [samples.digit_png(i) for i in range(0, 5000, 5)][:requests]
    results = []
    with TorchServe.for_folder(samples.MNIST_DIR, "mnist") as server:
        for batch_size in (1, 8):
            server.register("mnist", "mnist.mar", batch_size=batch_size, max_batch_delay=delay_ms)
            results.append(measure(server, "mnist", payloads, concurrency, sequential))
    return results


def table(results: list[dict]) -> str:
    """A Markdown table, one row per batch size."""
    lines = ["| " + " | ".join(COLUMNS.values()) + " |", "|" + "---:|" * len(COLUMNS)]
    for result in results:
        lines.append("| " + " | ".join(str(result[key]) for key in COLUMNS) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="requests in the burst")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--delay", type=int, default=50, help="max_batch_delay in ms")
    parser.add_argument("--sequential", type=int, default=50, help="requests sent one by one")
    args = parser.parse_args()
    results = run(args.requests, args.concurrency, args.delay, args.sequential)
    print(
        f"MNIST served on 127.0.0.1, 1 worker, {os.cpu_count()} CPU cores, "
        f"max_batch_delay={args.delay} ms, concurrency={args.concurrency}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print("alone: one request at a time; burst: all requests at once\n")
    print(table(results))


if __name__ == "__main__":
    main()
