"""TorchServe's metrics API (`metrics_mode=prometheus`) on every runner: its names, labels and
format as a real TorchServe 0.12 writes them, and its counts right after a 1,000-request burst.
"""

from __future__ import annotations

import re
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from handlerkit.offline import OfflineServer
from handlerkit.run.child import EngineServer
from handlerkit.run.compare import send
from handlerkit.run.generated_requests import Request
from handlerkit.serving.metrics import FAMILIES, java_double
from tests.fixtures.torchserve_battery import HANDLERS

BURST = 1000
# (request, how many in each round of 10): predictions by default version, by named version, an
# unknown model (4xx, not a prediction), and a ping.
ROUND = [
    (Request("POST", "/predictions/echo", (), b"a"), 6),
    (Request("POST", "/predictions/echo/1.0", (), b"b"), 2),
    (Request("POST", "/predictions/nope", (), b"c"), 1),
    (Request("GET", "/ping"), 1),
]
SAMPLE = re.compile(r'^(\w+)\{((?:\w+="[^"]*",)+)\} (\S+)$')


@pytest.fixture(scope="module")
def echo_store(tmp_path_factory) -> Path:
    import torch

    from handlerkit.serve import archive

    store = tmp_path_factory.mktemp("metrics_store")
    nothing = tmp_path_factory.mktemp("echo")
    torch.save({}, nothing / "empty.pt")
    archive(nothing, store, "echo", handler=str(HANDLERS / "echo_handler.py"))
    return store


def scrape(get) -> dict[tuple[str, tuple], float]:
    """The Prometheus text's samples: (name, labels without hostname) -> value."""
    samples = {}
    for line in get().splitlines():
        found = SAMPLE.match(line)
        if found and found.group(1) in FAMILIES:
            labels = tuple(p for p in found.group(2).split(",") if p and "ostname=" not in p)
            samples[found.group(1), labels] = float(found.group(3))
    return samples


def http_get(url: str):
    return lambda: urllib.request.urlopen(url + "/metrics", timeout=60).read().decode()


def burst(send_one, count: int = BURST) -> None:
    requests = [r for _ in range(count // 10) for r, times in ROUND for _ in range(times)]
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(send_one, requests))
    assert statuses.count(200) == count * 9 // 10, statuses[:20]


def expected_counts(count: int = BURST) -> dict:
    default, named = (
        ('model_name="echo"', 'model_version="default"'),
        (
            'model_name="echo"',
            'model_version="1.0"',
        ),
    )
    return {
        ("ts_inference_requests_total", default): count * 6 // 10,
        ("ts_inference_requests_total", named): count * 2 // 10,
        ("Requests2XX", ('Level="Host"',)): count * 9 // 10,  # predictions and pings
        ("Requests4XX", ('Level="Host"',)): count // 10,
    }


def _delta(after: dict, before: dict) -> dict:
    return {key: after[key] - before.get(key, 0) for key in after}


def check_burst(send_one, get) -> None:
    before = scrape(get)
    burst(send_one)
    after = _delta(scrape(get), before)
    for key, value in expected_counts().items():
        # the first scrape's own answer is one more 2XX by the second
        assert after.get(key) == value + (key[0] == "Requests2XX"), (key, after)
    for version in ('model_version="default"', 'model_version="1.0"'):
        labels = ('model_name="echo"', version)
        inference = after["ts_inference_latency_microseconds", labels]
        queue = after["ts_queue_latency_microseconds", labels]
        assert 0 < queue < inference, (version, queue, inference)


@pytest.mark.serve
def test_torchserve_writes_the_metrics_as_we_do(echo_store):
    """A real TorchServe 0.12 with metrics_mode=prometheus: the same HELP and TYPE lines, the same
    sample lines for the same requests (counts; latencies only as Java's numbers), and the same
    counts after a burst."""
    from handlerkit.serve import TorchServe

    config = {"metrics_mode": "prometheus"}
    with TorchServe(echo_store, {"echo": "echo.mar"}, config=config) as server:
        get = http_get(server.metrics_url)
        text = get()
        check_burst(lambda r: send(server.inference_url, r).status, get)
    with OfflineServer({"echo": echo_store / "echo.mar"}, metrics_mode="prometheus") as ours:
        mine = ours.metrics_api().text
    for name in FAMILIES:
        head = [line for line in mine.splitlines() if line.startswith("#") and f" {name} " in line]
        assert all(line in text.splitlines() for line in head), (name, head)
    number = re.compile(r" (\S+)$")
    for line in text.splitlines():
        found = SAMPLE.match(line)
        if found and found.group(1) in FAMILIES:
            value = float(number.search(line).group(1))
            assert line.endswith(" " + java_double(value)), line


@pytest.mark.serve
def test_in_log_mode_torchserve_and_we_write_no_metrics(echo_store):
    from handlerkit.serve import TorchServe

    with TorchServe(echo_store, {"echo": "echo.mar"}) as server:
        send(server.inference_url, ROUND[0][0])
        theirs = urllib.request.urlopen(server.metrics_url + "/metrics", timeout=60)
        body, kind = theirs.read(), theirs.headers["content-type"]
    with OfflineServer({"echo": echo_store / "echo.mar"}) as ours:
        ours.request("POST", "/predictions/echo", b"a")
        answer = ours.metrics_api()
    assert (answer.status, answer.body, answer.headers["content-type"]) == (200, body, kind)


def test_offline_server_counts_a_burst(echo_store):
    with OfflineServer({"echo": echo_store / "echo.mar"}, metrics_mode="prometheus") as server:

        def send_one(request: Request) -> int:
            return server.request(request.method, request.target, request.body).status

        check_burst(send_one, lambda: server.metrics_api().text)


@pytest.mark.engines
@pytest.mark.parametrize("engine", ["litserve", "ray"])
def test_each_engine_counts_a_burst_at_its_metrics_address(engine, echo_store):
    pytest.importorskip(engine)
    models = {"echo": echo_store / "echo.mar"}
    with EngineServer(models, engine, metrics_mode="prometheus") as server:
        check_burst(lambda r: send(server.url, r).status, http_get(server.metrics_url))
        missing = urllib.request.Request(server.metrics_url + "/nothing")
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(missing, timeout=60)
