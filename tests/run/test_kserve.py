"""KServe v1 and v2 answered by every runner as a real TorchServe 0.12 with the same settings.

For each `service_envelope` (kserve, kservev2, with `ts_open_inference_protocol=true`), a real
TorchServe and each runner (`OfflineServer`, LitServe, Ray Serve) serve TorchServe's MNIST example
handler and the echo model; fixed and hypothesis-generated KServe requests go to both, and the
answers must be the same (`same_answer`: bytes, or JSON but for a generated id). Then KServe's
own client for v2 (`tritonclient[http]`) talks to the runner. `HANDLERKIT_KSERVE_EXAMPLES` draws
more requests (default 60 per envelope), `HANDLERKIT_KSERVE_SEED` others.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from handlerkit.offline import OfflineServer
from handlerkit.run.child import EngineServer
from handlerkit.run.compare import send
from handlerkit.serving.frontend import Answer
from tests.fixtures.kserve_cases import FIXED, V2_MNIST, draw_kserve_requests, same_answer
from tests.fixtures.torchserve_battery import HANDLERS

pytestmark = [pytest.mark.serve]

EXAMPLES = int(os.environ.get("HANDLERKIT_KSERVE_EXAMPLES", "60"))
SEED = int(os.environ.get("HANDLERKIT_KSERVE_SEED", "31"))
ENVELOPES = ("kserve", "kservev2")
MODELS = ("mnist", "echo")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """mnist.mar (TorchServe's MNIST example handler, as the reference suite's) and echo.mar."""
    import torch

    from handlerkit.serve import archive

    store = tmp_path_factory.mktemp("kserve_store")
    handler = str(HANDLERS / "ts_mnist_handler.py")
    archive(REPO / "data" / "mnist", store, "mnist", handler=handler)
    nothing = tmp_path_factory.mktemp("echo")
    torch.save({}, nothing / "empty.pt")
    archive(nothing, store, "echo", handler=str(HANDLERS / "echo_handler.py"))
    return store


@pytest.fixture(scope="module")
def requests() -> list:
    return FIXED + draw_kserve_requests(EXAMPLES, SEED)


@pytest.fixture(scope="module", params=ENVELOPES)
def expected(request, store, requests):
    """The envelope, and a real TorchServe's replies with it (and the v2 server routes on)."""
    from handlerkit.serve import TorchServe

    config = {"service_envelope": request.param, "ts_open_inference_protocol": "true"}
    models = {name: f"{name}.mar" for name in MODELS}
    with TorchServe(store, models, config=config) as server:
        replies = [send(server.inference_url, r) for r in requests]
    return request.param, replies


ENGINES = [pytest.param(name, marks=pytest.mark.engines) for name in ("litserve", "ray")]


@pytest.fixture(params=["offline", *ENGINES])
def runner(request, store, expected):
    """The runner started with the envelope: its name, a `send(request) -> Answer`, its URL."""
    envelope = expected[0]
    models = {name: store / f"{name}.mar" for name in MODELS}
    settings = {"service_envelope": envelope, "open_inference_protocol": True}
    if request.param == "offline":
        with OfflineServer(models, **settings) as server:
            yield request.param, lambda r: _offline_send(server, r), None
    else:
        pytest.importorskip(request.param)
        with EngineServer(models, request.param, **settings) as server:
            yield request.param, lambda r: send(server.url, r), server.url


def _offline_send(server: OfflineServer, request) -> Answer:
    return server.request(request.method, request.target, request.body, dict(request.headers))


def test_kserve_requests_are_answered_as_torchserve_answers_them(runner, requests, expected):
    (name, send_one, url), (envelope, replies) = runner, expected
    if url is not None:
        _talks_v2_with_tritonclient(url, envelope)
    started = time.perf_counter()
    ours = [send_one(r) for r in requests]
    seconds = time.perf_counter() - started
    differ = [(r, a, b) for r, a, b in zip(requests, replies, ours) if not same_answer(r, a, b)]
    ok = sum(1 for a in replies if a.status == 200)
    print(f"\n{name}, {envelope}: {len(requests)} requests ({ok} answered 200 by TorchServe) in "
          f"{seconds:.1f} s; {len(differ)} differ")  # fmt: skip
    shown = [
        f"{r.method} {r.target} {r.body[:200]!r}\n  torchserve {a.status} {a.body[:300]!r}\n"
        f"  {name} {b.status} {b.body[:300]!r}"
        for r, a, b in differ[:6]
    ]
    assert not differ, "\n".join(shown)


def _talks_v2_with_tritonclient(url: str, envelope: str) -> None:
    """tritonclient's HTTP client, unchanged, against the runner: the server routes, and (with
    the kservev2 envelope) an inference whose outputs it reads as numpy arrays."""
    import numpy as np
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata()["name"] == "Torchserve"
    if envelope != "kservev2":
        return
    tensor = json.loads(V2_MNIST)["inputs"][0]
    image = np.array(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
    given = triton.InferInput(tensor["name"], list(image.shape), "FP32")
    given.set_data_from_numpy(image, binary_data=False)
    result = client.infer("mnist", [given], request_id="from-tritonclient")
    assert result.get_response()["id"] == "from-tritonclient"
    assert result.as_numpy(tensor["name"]).tolist() == [0]  # TorchServe 0.12's digit here
