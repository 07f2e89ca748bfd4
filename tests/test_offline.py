"""OfflineServer answers exactly as a real TorchServe 0.12 does: same status, same bytes.

One real TorchServe and one OfflineServer load the same `.mar` files (TorchServe's builtin
image_classifier, ts-based custom handlers, a function entry point, handlerkit's MNIST folder,
a handler whose answers cover the reply rules, and a batched model); every request goes to both.
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from handlerkit import samples
from handlerkit.offline import OfflineServer

HANDLERS = Path(__file__).parent / "handlers"
BATCHED = "quirks_batched"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """The .mar files both servers load."""
    from handlerkit.serve import archive

    store = tmp_path_factory.mktemp("store")
    nothing = tmp_path_factory.mktemp("quirks")  # a function handler needs no model
    torch.save({}, nothing / "empty.pt")
    archive(samples.efficientnet_folder(), store, "classifier", handler="image_classifier")
    archive(samples.MNIST_DIR, store, "mnist")
    archive(samples.MNIST_DIR, store, "ts_mnist", handler=str(HANDLERS / "ts_mnist_handler.py"))
    archive(samples.MNIST_DIR, store, "entry", handler=str(HANDLERS / "entry_point.py"))
    archive(nothing, store, "quirks", handler=str(HANDLERS / "quirks.py"))
    return store


MODELS = ("classifier", "mnist", "ts_mnist", "entry", "quirks")


@pytest.fixture(scope="module")
def real(store):
    from handlerkit.serve import TorchServe

    with TorchServe(store, {name: f"{name}.mar" for name in MODELS}) as server:
        server.register(BATCHED, "quirks.mar", batch_size=4, max_batch_delay=3000)
        yield server


@pytest.fixture(scope="module")
def offline(store):
    models = {name: store / f"{name}.mar" for name in MODELS}
    models[BATCHED] = store / "quirks.mar"
    with OfflineServer(models, batch_size={BATCHED: 4}) as server:
        yield server


def send(server, method: str, path: str, body: bytes = b"", headers=None):
    """(status, body bytes, content-type) from a real TorchServe, read off the socket."""
    host, port = urllib.parse.urlsplit(server.inference_url).netloc.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("content-type")
    finally:
        connection.close()


def offline_send(server, method, path, body=b"", headers=None):
    answer = server.request(method, path, body, headers)
    return answer.status, answer.body, answer.headers.get("content-type")


def multipart(fields: list[tuple[str, bytes, str | None, str | None]]) -> tuple[bytes, dict]:
    """A multipart/form-data body: (name, value, filename, content type) per field."""
    boundary = "handlerkit-boundary"
    body = b""
    for name, value, filename, content_type in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if content_type:
            body += f"Content-Type: {content_type}\r\n".encode()
        body += b"\r\n" + value + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def _json(value) -> tuple[bytes, dict]:
    return json.dumps(value).encode(), {"Content-Type": "application/json"}


PNG = samples.digit_png(7)
JSON, TEXT = "application/json", "text/plain; charset=utf-8"
FORM = "application/x-www-form-urlencoded"
PHOTO_FILE = [("data", samples.photo_bytes("chelsea"), "c.jpg", "image/jpeg")]
FIELDS = [("body", b"fields", None, None), ("x", b"\x01", "x.bin", "a/b"), ("n", b"hi", None, None)]
JPEG = samples.photo_bytes("chelsea")
CASES = {
    # TorchServe's builtin image_classifier
    "classifier photo": ("classifier", JPEG, {}),
    "classifier photo as form file": ("classifier", *multipart(PHOTO_FILE)),
    "classifier not an image": ("classifier", b"not an image", {}),
    # handlerkit's upload-ready MNIST folder (a handlerkit handler inside TorchServe)
    "mnist png": ("mnist", PNG, {"Content-Type": "image/png"}),
    "mnist junk is its own 400": ("mnist", b"junk", {}),
    "mnist empty body": ("mnist", b"", {}),
    # a ts-based custom handler and a function entry point
    "ts handler png": ("ts_mnist", PNG, {}),
    "ts handler base64 text": ("ts_mnist", base64.b64encode(PNG), {"Content-Type": "text/plain"}),
    "ts handler json list": ("ts_mnist", *_json(torch.zeros(1, 28, 28).tolist())),
    "ts handler crash": ("ts_mnist", b"\x00\x01", {}),
    "entry point png": ("entry", PNG, {}),
    "entry point form field": ("entry", *multipart([("data", PNG, "d.png", "image/png")])),
    # the reply rules
    "dict answer": ("quirks", *_json({"answer": "dict"})),
    "list answer": ("quirks", *_json({"answer": "list"})),
    "str answer": ("quirks", b"str", {"Content-Type": "text/plain"}),
    "bytes answer": ("quirks", b"bytes", {}),
    "per-row status": ("quirks", b"status", {}),
    "content type set": ("quirks", b"content_type", {}),
    "header set": ("quirks", b"header", {}),
    "prediction exception": ("quirks", b"prediction_exception", {}),
    "prediction exception 413": ("quirks", b"too_large", {}),
    "crash": ("quirks", b"raise", {}),
    "mismatch": ("quirks", b"mismatch", {}),
    "not a list": ("quirks", b"not_a_list", {}),
    "unserializable": ("quirks", b"unserializable", {}),
    "undecodable json forwarded as bytes": ("quirks", b"{not json", {"Content-Type": JSON}),
    "json, charset": ("quirks", b'{"answer": "dict"}', {"Content-Type": f"{JSON}; charset=utf-8"}),
    "text echo": ("quirks", "héllo".encode(), {"Content-Type": TEXT}),
    "binary echo": ("quirks", b"\xff\xfe\x00raw", {"Content-Type": "application/octet-stream"}),
    "request headers": ("quirks", b"headers", {"X-Custom": "yes"}),
    "form fields": ("quirks", *multipart(FIELDS)),
    "urlencoded fields": ("quirks", b"body=fields&a=1&b=h%C3%A9", {"Content-Type": FORM}),
}  # fmt: skip


@pytest.mark.serve
@pytest.mark.parametrize("case", list(CASES))
def test_offline_answers_with_the_real_servers_status_and_bytes(real, offline, case):
    model, body, headers = CASES[case]
    expected = send(real, "POST", f"/predictions/{model}", body, headers)
    assert offline_send(offline, "POST", f"/predictions/{model}", body, headers) == expected


@pytest.mark.serve
@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/ping"),
        ("POST", "/predictions/no_such_model"),
        ("GET", "/nothing/here"),
        ("POST", "/predictions"),
        ("POST", "/predictions/quirks/1.0"),
        ("POST", "/explanations/quirks"),
    ],
)
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
