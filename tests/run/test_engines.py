"""LitServe and Ray Serve answer TorchServe's inference API exactly as a real TorchServe does.

Each engine serves the battery's `.mar` files (TorchServe's builtin image_classifier, ts-based
custom handlers, a function entry point, handlerkit's MNIST folder, the reply-rules handler, a
batched model) through `python -m handlerkit serve`; every request also goes to a real
TorchServe 0.12 and the statuses, bodies (bytes) and content types must be equal.
"""

from __future__ import annotations

import http.client
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from handlerkit import samples
from handlerkit.run.child import EngineServer
from handlerkit.run.launcher import descendants
from tests.fixtures.torchserve_battery import (
    BATCH,
    BATCH_DELAY,
    BATCHED,
    CASES,
    MODELS,
    PNG,
    ROUTES,
    send,
)

pytestmark = [pytest.mark.engines, pytest.mark.serve]

BURST = "mnist_burst"  # the MNIST folder again, batched: 8 rows, 50 ms


@pytest.fixture(scope="module", params=["litserve", "ray"])
def engine(request, battery_store):
    """One engine with the battery (and a batched MNIST), started once per engine."""
    models = {name: battery_store / f"{name}.mar" for name in MODELS}
    models[BATCHED] = battery_store / "quirks.mar"
    models[BURST] = samples.MNIST_DIR
    server = EngineServer(
        models,
        request.param,
        batch_size={**BATCH, BURST: 8},
        max_batch_delay={**BATCH_DELAY, BURST: 50},
    )
    with server:
        server.started_processes = descendants(server.process.pid) | {server.process.pid}
        yield server


@pytest.fixture(scope="module")
def real(real_torchserve):
    return real_torchserve


@pytest.mark.parametrize("case", list(CASES))
def test_engine_answers_with_the_real_servers_status_and_bytes(real, engine, case):
    model, body, headers = CASES[case]
    expected = send(real, "POST", f"/predictions/{model}", body, headers)
    assert send(engine, "POST", f"/predictions/{model}", body, headers) == expected


@pytest.mark.parametrize("method, path", ROUTES)
def test_engine_routes_like_the_real_server(real, engine, method, path):
    assert send(engine, method, path, b"headers") == send(real, method, path, b"headers")


def test_explanations_reach_the_handler_like_the_real_server(real, engine):
    expected = send(real, "POST", "/explanations/ts_mnist", PNG)
    assert send(engine, "POST", "/explanations/ts_mnist", PNG) == expected


def _together(server, kinds: list[bytes]) -> list[tuple]:
    with ThreadPoolExecutor(len(kinds)) as pool:
        return list(pool.map(lambda k: send(server, "POST", f"/predictions/{BATCHED}", k), kinds))


def test_the_engines_batch_is_one_handle_call_like_the_real_servers(real, engine):
    kinds = [b"batch_size", b"status", b"str", b"bytes"]
    expected = _together(real, kinds)
    assert json.loads(expected[0][1]) == {"rows_in_this_batch": 4}  # the real server batched
    assert _together(engine, kinds) == expected


def test_one_crash_fails_the_engines_whole_batch_like_the_real_server(real, engine):
    kinds = [b"dict", b"raise", b"str"]
    expected = _together(real, kinds)
    assert {status for status, _, _ in expected} == {503}
    assert _together(engine, kinds) == expected


def test_a_body_over_the_request_limit_is_refused_like_the_real_server(real, engine):
    body = b"x" * (6553500 + 1)
    assert send(engine, "POST", "/predictions/quirks", body)[:2] == (413, b"")
    try:
        expected = send(real, "POST", "/predictions/quirks", body)
    except (ConnectionError, http.client.HTTPException):  # the server may close first
        return
    assert expected[:2] == (413, b"")


def test_a_burst_of_200_concurrent_requests_is_answered_in_full(real, engine):
    digits = [samples.digit_png(i) for i in range(0, 5000, 25)]  # 200 digits, 20 per class
    with ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(lambda d: send(engine, "POST", f"/predictions/{BURST}", d), digits))
    expected = [send(real, "POST", "/predictions/mnist", d) for d in digits]
    assert [status for status, _, _ in answers] == [200] * len(digits)
    for (_, body, _), (_, reference, _) in zip(answers, expected):
        answer, reference = json.loads(body), json.loads(reference)
        assert answer["digit"] == reference["digit"]
        # a row's floats may differ in the last bits with the batch around it (TorchServe too)
        assert answer["probabilities"] == pytest.approx(reference["probabilities"], abs=1e-6)


def test_header_names_reach_the_handler_as_the_client_wrote_them(real, engine):
    """TorchServe hands the handler each header name as the client wrote it; uvicorn (ASGI)
    lower-cases them, so the engines keep the names as written (`asgi.case_keeping_protocol`):
    `get_request_header(idx, "x-custom")` finds nothing for "X-Custom", on every server."""
    path, written = "/predictions/quirks", {"X-Custom": "yes"}
    expected = send(real, "POST", path, b"headers", written)
    assert json.loads(expected[1])["x-custom"] is None
    assert send(engine, "POST", path, b"headers", written) == expected


def test_the_engines_own_paths_answer_as_torchserve(real, engine):
    """LitServe's own paths (/health, /info, /docs) and Ray Serve's proxy paths (/-/routes,
    /-/healthz: the proxy is not started) reach TorchServe's frontend rules, as on TorchServe."""
    for path in ("/health", "/info", "/docs", "/-/routes", "/-/healthz"):
        assert send(engine, "GET", path) == send(real, "GET", path), path


def test_the_inference_api_listens_on_loopback_only(engine):
    """127.0.0.1 unless --host says otherwise. (Ray's own cluster ports, GCS, raylet and workers,
    listen on every interface as Ray always does, protected by Ray's token authentication.)"""
    assert _listening(engine.port) == {"127.0.0.1"}


def test_stopping_the_engine_leaves_no_process_behind(engine):
    """Ctrl-C: the command shuts its engine down (workers, Ray) before it exits."""
    started = engine.started_processes
    engine.stop()
    assert engine.leftovers == {}
    assert [pid for pid in started if _running(pid)] == []


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _listening(port: int) -> set[str]:
    """The addresses with a socket listening on `port` (from /proc/net/tcp and tcp6)."""
    addresses = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(name) as table:
            for line in list(table)[1:]:
                local, state = line.split()[1], line.split()[3]
                address, local_port = local.split(":")
                if state != "0A" or int(local_port, 16) != port:
                    continue
                if len(address) == 8:  # IPv4, little-endian hex
                    address = ".".join(str(b) for b in reversed(bytes.fromhex(address)))
                addresses.add(address)
    return addresses
