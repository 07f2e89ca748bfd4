"""TorchServe's frontend metrics, counted here, written as its Prometheus text at `/metrics`.

TorchServe 0.12 (`metrics_mode=prometheus`) counts, in its Java frontend: every HTTP answer by its
status class (`Requests2XX`, `4XX`, `5XX`, labels Level="Host" and Hostname), every prediction
handed to a model (`ts_inference_requests_total`, labels model_name, model_version and hostname;
the version is "default" unless the path names one), and, for each answer a worker gave, its
microseconds in the worker and in the queue (`ts_inference_latency_microseconds`,
`ts_queue_latency_microseconds`). Its `/metrics` writes them with Prometheus's Java client
(`TextFormat.write004`); `name[]=` keeps only the families named. Mirrored from TorchServe 0.12's
`metrics.yaml`, `InferenceRequestHandler`, `RestJob`, `NettyUtils` and
`PrometheusMetricsRequestHandler`.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse
from collections import Counter
from decimal import Decimal

from .frontend import Answer, not_found_answer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # TextFormat.CONTENT_TYPE_004
MODES = ("log", "prometheus")  # TorchServe's metrics_mode; "log" writes no Prometheus text
DEFAULT_VERSION = "default"  # the model_version label when the path names none
HOST_LEVEL = "Host"
# name -> unit, in metrics.yaml's order; the first three have (Level, Hostname) labels.
FAMILIES = {
    "Requests2XX": "Count",
    "Requests4XX": "Count",
    "Requests5XX": "Count",
    "ts_inference_requests_total": "Count",
    "ts_inference_latency_microseconds": "Microseconds",
    "ts_queue_latency_microseconds": "Microseconds",
}


class Metrics:
    """A frontend's counters: one object per server, safe to update from several threads.

    A runner calls `admitted(job)` when the frontend hands a prediction on, `scheduled(id)` when
    its batch leaves for a worker, `finished(job)` when the worker answered it, and
    `answered(status)` for every HTTP answer it sends.

    Args:
        hostname: The Hostname label (TorchServe's: this machine's host name).
    """

    def __init__(self, hostname: str | None = None) -> None:
        self.hostname = hostname or socket.gethostname()
        self._counts: dict[str, Counter] = {name: Counter() for name in FAMILIES}
        self._began: dict[str, float] = {}  # request id -> when it was admitted
        self._scheduled: dict[str, float] = {}  # request id -> when its batch left
        self._lock = threading.Lock()

    def answered(self, status: int) -> None:
        """One HTTP answer sent with `status` (any API, as TorchServe's `sendHttpResponse`)."""
        name = "Requests2XX" if 200 <= status < 300 else "Requests4XX"
        if not 200 <= status < 500:
            name = "Requests5XX"
        self._add(name, (HOST_LEVEL,), 1)

    def admitted(self, job) -> None:
        """A prediction handed on to its model (`frontend.Job`): `ts_inference_requests_total`."""
        with self._lock:
            self._began[job.request.request_id] = time.perf_counter()
        self._add("ts_inference_requests_total", _labels(job), 1)

    def scheduled(self, request_id: str) -> None:
        """The request's batch left the frontend for a worker (the end of its queue time)."""
        with self._lock:
            self._scheduled.setdefault(request_id, time.perf_counter())

    def finished(self, job) -> None:
        """The worker answered the job: its microseconds since admission, and in the queue."""
        now = time.perf_counter()
        with self._lock:
            began = self._began.pop(job.request.request_id, now)
            scheduled = self._scheduled.pop(job.request.request_id, began)
        self._add("ts_inference_latency_microseconds", _labels(job), (now - began) * 1e6)
        self._add("ts_queue_latency_microseconds", _labels(job), (scheduled - began) * 1e6)

    def _add(self, name: str, labels: tuple[str, ...], amount: float) -> None:
        with self._lock:
            self._counts[name][labels] += amount

    def text(self, names: set[str] | frozenset[str] = frozenset()) -> bytes:
        """The Prometheus text TorchServe writes (every family, or only those in `names`)."""
        lines = []
        with self._lock:
            counts = {name: dict(samples) for name, samples in self._counts.items()}
        for name, unit in FAMILIES.items():
            if names and name not in names:
                continue
            lines.append(f"# HELP {name} Torchserve prometheus counter metric with unit: {unit}")
            lines.append(f"# TYPE {name} counter")
            keys = ("Level", "Hostname") if name.startswith("Requests") else _MODEL_LABELS
            for labels, value in sorted(counts[name].items()):
                pairs = zip(keys, (*labels, self.hostname))
                text = "".join(f'{key}="{_escaped(value)}",' for key, value in pairs)
                lines.append(f"{name}{{{text}}} {java_double(value)}")
        return "".join(line + "\n" for line in lines).encode("utf-8")


_MODEL_LABELS = ("model_name", "model_version", "hostname")


def _labels(job) -> tuple[str, str]:
    return job.model, job.named_version or DEFAULT_VERSION


def api_answer(metrics: Metrics, target: str, mode: str = "prometheus") -> Answer:
    """TorchServe's metrics API: `/metrics` (any method, any path below it) answers the text
    (empty in `log` mode, where TorchServe's counters are log lines); other paths 404."""
    segments = urllib.parse.urlsplit(target).path.split("/")
    if len(segments) < 2 or segments[1] != "metrics":
        return not_found_answer()
    body = metrics.text(requested_names(target)) if mode == "prometheus" else b""
    return Answer(200, body, {"content-type": CONTENT_TYPE})


def requested_names(target: str) -> set[str]:
    """The `name[]` values of a `/metrics` request's query (none: every family)."""
    query = urllib.parse.urlsplit(target).query
    return set(urllib.parse.parse_qs(query).get("name[]", []))


def java_double(value: float) -> str:
    """A number as Java's `Double.toString` writes it (Prometheus's Java client uses it):
    `12.0`, `22053.637`, `1.2345678E7` from ten million up, `1.0E-4` below a thousandth."""
    value = float(value)
    if value == 0:
        return "0.0"
    if 1e-3 <= abs(value) < 1e7:
        text = repr(value)
        return text if "e" not in text else f"{value:f}"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    shown = "".join(map(str, digits)).rstrip("0") or "0"
    power = exponent + len(digits) - 1
    return f"{'-' if sign else ''}{shown[0]}.{shown[1:] or '0'}E{power}"


def _escaped(value: str) -> str:
    """A label value as Prometheus's text format writes it."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
