"""Ask a running TorchServe over HTTP: one `Answer` per request, and `measure` for latency.

The HTTP side of `handlerkit.serve`; `TorchServe.predict` and `register` send through `_http`.
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import TorchServe

__all__ = ["Answer", "measure"]

REQUEST_TIMEOUT_S = 60.0

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Answer:
    """One HTTP answer from TorchServe.

    Attributes:
        status: HTTP status code (200 when the handler answered).
        body: The parsed JSON body, or the text when it is not JSON.
        seconds: Wall-clock time from sending the request to reading the answer.
    """

    status: int
    body: Any
    seconds: float = field(default=0.0, compare=False)

    @property
    def ok(self) -> bool:
        """True when the status is 2xx."""
        return 200 <= self.status < 300


def _http(
    method: str,
    url: str,
    timeout: float,
    data: bytes | None = None,
    content_type: str = "application/octet-stream",
) -> Answer:
    """Send one request straight to 127.0.0.1 (never through a proxy) and parse the answer."""
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    started = time.perf_counter()
    try:
        with _NO_PROXY.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    return Answer(status=status, body=_parse(raw), seconds=time.perf_counter() - started)


def _parse(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def measure(
    server: TorchServe,
    name: str,
    payloads: Sequence[bytes],
    concurrency: int = 64,
    sequential: int = 50,
) -> dict:
    """Measure served latency one request at a time, then throughput for a concurrent burst.

    With ``batch_size > 1`` a lone request waits ``max_batch_delay`` for company, so the
    sequential latency shows that delay while the burst shows the batching gain.

    Args:
        server: A started server.
        name: Registered model name.
        payloads: Request bodies; all are sent at once for the burst.
        concurrency: Requests in flight during the burst.
        sequential: How many of the payloads to also send one at a time, for latency.

    Returns:
        ``requests``, ``ok``, ``batch_size``, sequential ``p50_ms``/``p95_ms``,
        ``burst_seconds``, ``throughput_rps`` and burst ``burst_p50_ms``/``burst_p95_ms``.
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
