"""Served latency and throughput: one request at a time, then a concurrent burst.

Above `TorchServe` in `handlerkit.serve`: it sends through a started server's `predict`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

from ...serving.frontend import Answer
from .server import TorchServe


def measure(
    server: TorchServe,
    name: str,
    payloads: Sequence[bytes],
    concurrency: int = 64,
    sequential: int = 50,
) -> dict:
    """Measure served latency one request at a time, then throughput for a concurrent burst.

    With `batch_size > 1` a lone request waits `max_batch_delay` for company, so the
    sequential latency shows that delay while the burst shows the batching gain.

    Args:
        server: A started server.
        name: Registered model name.
        payloads: Request bodies; all are sent at once for the burst.
        concurrency: Requests in flight during the burst.
        sequential: How many of the payloads to also send one at a time, for latency.

    Returns:
        `requests`, `ok`, `batch_size`, sequential `p50_ms`/`p95_ms`, `burst_seconds`,
        `throughput_rps` and burst `burst_p50_ms`/`burst_p95_ms`.
    """
    server.predict(name, payloads[0])  # warm-up
    alone = [server.predict(name, data) for data in payloads[: max(1, sequential)]]
    started = time.perf_counter()
    burst = server.predict_many(name, payloads, concurrency=concurrency)
    elapsed = time.perf_counter() - started
    return {
        "requests": len(payloads),
        "ok": sum(a.ok for a in burst),
        "batch_size": server.describe(name).get("batchSize"),
        "p50_ms": _percentile_ms(alone, 50),
        "p95_ms": _percentile_ms(alone, 95),
        "burst_seconds": round(elapsed, 3),
        "throughput_rps": round(len(payloads) / elapsed, 1),
        "burst_p50_ms": _percentile_ms(burst, 50),
        "burst_p95_ms": _percentile_ms(burst, 95),
    }


def _percentile_ms(answers: Sequence[Answer], q: int) -> float:
    seconds = [a.seconds for a in answers]
    if len(seconds) < 2:
        return round(1000 * seconds[0], 2) if seconds else float("nan")
    return round(1000 * statistics.quantiles(seconds, n=100)[q - 1], 2)
