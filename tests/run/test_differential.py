"""Generated requests answered with the same bytes by a real TorchServe and by every runner.

hypothesis draws the requests (`handlerkit.run.generated_requests`, via `st.randoms()`): methods,
paths, content types, JSON, text, forms, multipart bodies, raw bytes, custom headers. They go to
the echo model (its answer is what the worker received: fields, types, hashes, headers, and its
version: two side by side, 1.0 the default) and to MNIST, on a real TorchServe 0.12, on
`OfflineServer`, on LitServe and on Ray Serve; status, body
bytes and content type must be equal. The draw is seeded, so CI sends the same requests each run;
`HANDLERKIT_DIFF_EXAMPLES=5000` draws more, `HANDLERKIT_DIFF_SEED` others.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest
from hypothesis import strategies as st

from handlerkit.offline import OfflineServer
from handlerkit.run.child import EngineServer
from handlerkit.run.compare import compare, send, send_all
from handlerkit.run.generated_requests import Request, generate
from handlerkit.serving.frontend import Answer
from tests.fixtures.differential_cases import DIVERGENCES, REGRESSIONS, divergence
from tests.fixtures.seeded import seeded_examples
from tests.fixtures.torchserve_battery import HANDLERS

pytestmark = [pytest.mark.serve]

EXAMPLES = int(os.environ.get("HANDLERKIT_DIFF_EXAMPLES", "500"))
SEED = int(os.environ.get("HANDLERKIT_DIFF_SEED", "32"))
MODELS = ("echo", "echo", "echo", "mnist")  # the echo model three times in four
SERVED = {"echo": ["echo.mar", "echo_v2.mar"], "mnist": ["mnist.mar"]}  # the first: default


def draw_requests(count: int, at: int) -> list[Request]:
    """`count` requests drawn by hypothesis with seed `at` (the same ones on every run)."""
    drawn = st.randoms(use_true_random=True).map(lambda rng: generate(rng, MODELS))
    return seeded_examples(drawn, count, at)


@pytest.fixture(scope="module")
def requests() -> list[Request]:
    return REGRESSIONS + draw_requests(EXAMPLES, SEED)


@pytest.fixture(scope="module")
def store(battery_store, tmp_path_factory):
    """The battery's store, with the echo model (versions 1.0 and 2.0) beside MNIST."""
    import torch

    from handlerkit.serve import archive

    nothing = tmp_path_factory.mktemp("echo")
    torch.save({}, nothing / "empty.pt")
    echo = str(HANDLERS / "echo_handler.py")
    archive(nothing, battery_store, "echo", handler=echo, version="2.0").rename(
        battery_store / "echo_v2.mar"
    )  # before 1.0: both are written as echo.mar
    archive(nothing, battery_store, "echo", handler=echo)
    return battery_store


@pytest.fixture(scope="module")
def expected(real_torchserve, store, requests) -> list[Answer]:
    """The real TorchServe's replies (the battery's server, with both echo versions registered:
    the first registered is TorchServe's default)."""
    real_torchserve.register("echo", "echo.mar")
    real_torchserve.register("echo", "echo_v2.mar", replace=False)
    started = time.perf_counter()
    replies, _ = send_all(real_torchserve.inference_url, requests)
    print(f"\nTorchServe: {len(requests)} requests in {time.perf_counter() - started:.1f} s")
    return replies


def offline_send(server: OfflineServer, request: Request) -> Answer:
    return server.request(request.method, request.target, request.body, dict(request.headers))


ENGINES = [pytest.param(name, marks=pytest.mark.engines) for name in ("litserve", "ray")]


@pytest.fixture(scope="module", params=["offline", *ENGINES])
def runner(request, store):
    """The runner's name, a function that sends it one request, and its URL (None: in-process)."""
    models = {name: [store / mar for mar in mars] for name, mars in SERVED.items()}
    if request.param == "offline":
        with OfflineServer(models) as server:
            yield request.param, lambda r: offline_send(server, r), None
    else:
        pytest.importorskip("litserve" if request.param == "litserve" else "ray")
        with EngineServer(models, request.param) as server:
            yield request.param, lambda r: send(server.url, r), server.url


def test_every_runner_answers_generated_requests_as_torchserve(runner, requests, expected):
    name, send_one, _ = runner
    started = time.perf_counter()
    replies = [send_one(r) for r in requests]
    seconds = time.perf_counter() - started
    found = [
        (r, a, b)
        for r, a, b in zip(requests, expected, replies)
        if not a.same_as(b) and divergence(name, r, a, b) is None
    ]
    kinds = Counter(r.kind for r, _, _ in found)
    distinct = len(set(requests))
    print(
        f"\n{name}: {len(requests)} requests ({distinct} distinct) in {seconds:.1f} s; "
        f"{len(found)} differ {dict(kinds)}"
    )
    shown = [
        f"{r.to_http()[:300]!r}\n  torchserve {a.status} {a.body[:300]!r}\n"
        f"  {name} {b.status} {b.body[:300]!r}"
        for r, a, b in found[:8]
    ]
    assert not found, f"{len(found)} of {len(requests)} differ ({dict(kinds)}):\n" + "\n".join(
        shown
    )


def test_the_draw_covers_every_kind_and_is_the_same_each_run():
    first, again = draw_requests(60, SEED), draw_requests(60, SEED)
    assert first == again
    assert {r.kind for r in first} >= {"json", "text", "form", "multipart", "raw", "route"}


def test_each_listed_divergence_still_holds(runner, real_torchserve, expected):
    """Each deliberate divergence (docs/divergences_requests.md) is what TorchServe does and
    what the runner does, asserted, so the table cannot go stale."""
    name, send_one, _ = runner  # (`expected` registered the echo model)
    for divergence_name, (runners, request, torchserve_does, runner_does) in DIVERGENCES.items():
        if name in runners:
            assert torchserve_does(send(real_torchserve.inference_url, request)), divergence_name
            assert runner_does(send_one(request)), divergence_name


def test_compare_finds_the_engines_equal_to_torchserve_at_concurrency_8(
    runner, real_torchserve, requests, expected
):
    """`handlerkit compare` itself, against a real TorchServe and each engine: 8 requests in
    flight on each server, every answer equal outside the divergence table."""
    name, _, url = runner
    if url is None:
        pytest.skip("OfflineServer has no URL: the test above compares it")
    # the echo model only: a request that kills TorchServe's MNIST worker (a regression case)
    # would have the others wait for its restart, and the speeds would measure that
    echo = [r for r in requests if "mnist" not in r.target][:200]
    comparison = compare(real_torchserve.inference_url, url, echo, concurrency=8)
    found = [d for d in comparison.differences if divergence(name, d.request, d.first, d.second)
             is None]  # fmt: skip
    print("\n" + comparison.table(("torchserve", name), shown=0))
    assert [d.describe() for d in found] == []
