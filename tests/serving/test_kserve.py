"""KServe's v1 and v2 protocols on the shared frontend and `OfflineServer`, with `ts`'s envelopes.

The expected statuses and bytes are a real TorchServe 0.12's (started with `service_envelope`
kserve / kservev2 and `ts_open_inference_protocol=true`); tests/run/test_kserve.py asks one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from handlerkit import samples
from handlerkit.offline import OfflineServer
from handlerkit.serving import frontend
from handlerkit.serving.frontend import Answer, Job, admit, route
from handlerkit.serving.versions import Versions

INPUTS = Path(__file__).resolve().parents[1] / "reference_api" / "inputs"
V1_BODY = (INPUTS / "mnist_v1.json").read_bytes()  # pytorch/serve's KServe v1 MNIST request
V2_BODY = (INPUTS / "mnist_v2_tensor.json").read_bytes()  # and its v2 tensor request
NOT_FOUND = frontend.not_found_answer().body

SERVED = Versions([("m", "1.0")])


@pytest.mark.parametrize(
    "path, kind, model, protocol",
    [
        ("/v1/models/mnist:predict", "predictions", "mnist", "kserve_v1"),
        ("/v1/models/mnist:explain", "explanations", "mnist", "kserve_v1"),
        ("/v1/models/mnist:predictx", "predictions", "mnist", "kserve_v1"),  # `contains`
        ("/v1/models/mnist:explain:predict", "predictions", "mnist", "kserve_v1"),
        ("/v2/models/mnist/infer", "predictions", "mnist", "kserve_v2"),
        ("/v2/models/mnist/explain", "explanations", "mnist", "kserve_v2"),
        ("/v2/models/mnist:x/infer", "predictions", "mnist", "kserve_v2"),
        ("/v2/models/mnist/infer?x=1", "predictions", "mnist", "kserve_v2"),
        ("/v1/models/mnist", "not_found", None, "torchserve"),
        ("/v2/models/mnist", "not_found", None, "torchserve"),
        ("/v2/models/mnist/ready", "not_found", None, "torchserve"),
        ("/v2/models/mnist/infer/x", "not_found", None, "torchserve"),
    ],
)
def test_kserve_paths_route_as_torchserves_frontend(path, kind, model, protocol):
    where = route(path)
    assert (where.kind, where.model, where.version, where.protocol) == (kind, model, None, protocol)


def test_a_kserve_request_reaches_the_worker_without_url_path():
    """TorchServe adds `url_path` on /predictions only; on KServe's routes just `explain`."""
    job = admit("/v1/models/m:explain", b"{}", {"X-A": "b"}, SERVED)
    assert isinstance(job, Job) and job.model == "m"
    assert job.request.headers == {"X-A": "b", "explain": "True"}
    job = admit("/v2/models/m/infer", b"{}", {}, SERVED)
    assert job.request.headers == {"explain": "False"}


SERVER_ROUTES = {  # path -> TorchServe 0.12's answer with ts_open_inference_protocol=true
    "/v2/health/live": (200, b'{\n  "live": true\n}\n'),
    "/v2/health/ready": (200, b'{\n  "ready": true\n}\n'),
    "/v2": (
        200,
        b'{\n  "name": "Torchserve",\n  "version": "0.12.0",\n  "extenstion": [\n    "kserve",\n'
        b'    "kubeflow"\n  ]\n}\n',
    ),
    "/v2/": None,  # as "/v2"
    "/v2/models/m/versions/1/infer": (
        501,
        b'{\n  "error": "Model versioning is not yet supported."\n}\n',
    ),
}


@pytest.mark.parametrize("path", list(SERVER_ROUTES))
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_v2_server_routes_answer_only_with_the_open_inference_protocol(path, method):
    expected = SERVER_ROUTES[path] or SERVER_ROUTES["/v2"]
    on = admit(path, b"", {}, SERVED, method, open_inference_protocol=True)
    assert isinstance(on, Answer) and (on.status, on.body) == expected
    off = admit(path, b"", {}, SERVED, method)
    assert (off.status, off.body) == (404, NOT_FOUND)


def test_an_unknown_model_on_kserve_routes_is_torchserves_404():
    answer = admit("/v2/models/nope/infer", b"{}", {}, SERVED)
    assert (answer.status, answer.json()["message"]) == (404, "Model not found: nope")


@pytest.fixture(scope="module")
def v1_server():
    with OfflineServer({"mnist": samples.MNIST_DIR}, service_envelope="kserve") as server:
        yield server


def test_offline_server_applies_ts_kserve_v1_envelope(v1_server):
    answer = v1_server.request("POST", "/v1/models/mnist:predict", V1_BODY)
    assert answer.status == 200, answer
    (prediction,) = answer.json()["predictions"]
    assert prediction["digit"] == 2  # the envelope wrapped the handler's answer per instance
    explained = v1_server.request("POST", "/v1/models/mnist:explain", V1_BODY)
    assert explained.status == 200 and list(explained.json()) == ["explanations"]


def test_the_envelope_is_applied_on_predictions_too_as_in_torchserve(v1_server):
    answer = v1_server.request("POST", "/predictions/mnist", V1_BODY)
    assert answer.status == 200 and "predictions" in answer.json()


def test_handler_is_the_models_handler_not_the_envelope(v1_server):
    from ts.torch_handler.request_envelope.base import BaseEnvelope

    handler = v1_server.handler("mnist")
    assert not isinstance(handler, BaseEnvelope) and hasattr(handler, "postprocess")


def test_offline_server_applies_ts_kserve_v2_envelope():
    with OfflineServer({"mnist": samples.MNIST_DIR}, service_envelope="kservev2") as server:
        answer = server.request("POST", "/v2/models/mnist/infer", V2_BODY)
    body = answer.json()
    assert answer.status == 200, answer
    assert body["id"] == json.loads(V2_BODY)["id"]  # the request's id, as ts's envelope keeps it
    assert (body["model_name"], body["model_version"]) == ("mnist", "1.0")
    assert [output["name"] for output in body["outputs"]] == ["input-0"]


def test_an_envelope_ts_lacks_is_refused():
    with pytest.raises(ValueError, match="kserve, kservev2"):
        OfflineServer({"mnist": samples.MNIST_DIR}, service_envelope="kserve_v3")


def test_ts_envelope_keeps_the_handlers_entry_point_where_the_worker_looks():
    """`worker._entry_holder` replaces ts 0.12's `BaseEnvelope._handle_fn`: fail loudly if ts
    renames it."""
    from ts.torch_handler.request_envelope.kserve import KServeEnvelope

    def entry(data, context):
        return data

    assert KServeEnvelope(entry)._handle_fn is entry
