"""OfflineServer answers exactly as a real TorchServe 0.12 does: same status, same bytes.

One real TorchServe and one OfflineServer load the same `.mar` files (TorchServe's builtin
image_classifier, ts-based custom handlers, a function entry point, handlerkit's MNIST folder,
a handler whose answers cover the reply rules, and a batched model); every request goes to both.
"""

from __future__ import annotations

import http.client
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from handlerkit import samples
from handlerkit.offline import OfflineServer
from tests.fixtures.torchserve_battery import BATCH, BATCHED, CASES, JPEG, MODELS, PNG, ROUTES, send


@pytest.fixture(scope="module")
def store(battery_store):
    return battery_store


@pytest.fixture(scope="module")
def real(real_torchserve):
    return real_torchserve


@pytest.fixture(scope="module")
def offline(store):
    models = {name: store / f"{name}.mar" for name in MODELS}
    models[BATCHED] = store / "quirks.mar"
    with OfflineServer(models, batch_size=BATCH) as server:
        yield server


def offline_send(server, method, path, body=b"", headers=None):
    answer = server.request(method, path, body, headers)
    return answer.status, answer.body, answer.headers.get("content-type")


@pytest.mark.serve
@pytest.mark.parametrize("case", list(CASES))
def test_offline_answers_with_the_real_servers_status_and_bytes(real, offline, case):
    model, body, headers = CASES[case]
    expected = send(real, "POST", f"/predictions/{model}", body, headers)
    assert offline_send(offline, "POST", f"/predictions/{model}", body, headers) == expected


@pytest.mark.serve
@pytest.mark.parametrize("method, path", ROUTES)
def test_offline_routes_like_the_real_server(real, offline, method, path):
    body = b"headers"
    assert offline_send(offline, method, path, body) == send(real, method, path, body)


@pytest.mark.serve
def test_explanations_reach_the_builtin_handler_like_the_real_server(real, offline):
    expected = send(real, "POST", "/explanations/ts_mnist", PNG)
    assert offline_send(offline, "POST", "/explanations/ts_mnist", PNG) == expected


@pytest.mark.serve
def test_a_batch_is_answered_like_the_real_servers_batch(real, offline):
    kinds = [b"batch_size", b"status", b"str", b"bytes"]
    with ThreadPoolExecutor(len(kinds)) as pool:
        expected = list(pool.map(lambda k: send(real, "POST", f"/predictions/{BATCHED}", k), kinds))
    assert json.loads(expected[0][1]) == {"rows_in_this_batch": 4}  # the real server batched
    answers = offline.batch(f"/predictions/{BATCHED}", [(k, None) for k in kinds])
    assert [(a.status, a.body, a.headers.get("content-type")) for a in answers] == expected


@pytest.mark.serve
def test_one_crash_fails_the_whole_batch_like_the_real_server(real, offline):
    kinds = [b"dict", b"raise", b"str"]
    with ThreadPoolExecutor(len(kinds)) as pool:
        expected = list(pool.map(lambda k: send(real, "POST", f"/predictions/{BATCHED}", k), kinds))
    answers = offline.batch(f"/predictions/{BATCHED}", [(k, None) for k in kinds])
    assert [(a.status, a.body, a.headers.get("content-type")) for a in answers] == expected
    assert {a.status for a in answers} == {503}


@pytest.mark.serve
def test_a_body_over_the_request_limit_is_refused_like_the_real_server(real, offline):
    body = b"x" * (6553500 + 1)
    status, data, _ = offline_send(offline, "POST", "/predictions/quirks", body)
    try:
        expected = send(real, "POST", "/predictions/quirks", body)
    except (ConnectionError, http.client.HTTPException):  # the server may close first
        expected = None
    assert (status, data) == (413, b"")
    if expected is not None:
        assert expected[:2] == (413, b"")


@pytest.mark.serve
def test_the_real_servers_explanation_equals_handlerkits_in_process(real, offline):
    from handlerkit import ImageClassifier

    status, body, _ = send(real, "POST", "/explanations/classifier", JPEG)
    assert status == 200
    assert offline_send(offline, "POST", "/explanations/classifier", JPEG)[:2] == (200, body)
    handler, context = ImageClassifier.for_folder(samples.efficientnet_folder())
    mine = handler.handle([{"data": JPEG}], context.for_requests([{"explain": "True"}]))[0]
    served = torch.tensor(json.loads(body))
    assert served.shape == (3, 224, 224)
    assert torch.allclose(torch.tensor(mine), served, atol=1e-6)
