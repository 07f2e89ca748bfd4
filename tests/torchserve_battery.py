"""The battery every served model is checked with: .mar files, requests, and a real TorchServe.

`test_offline` and `test_engines` send the same requests to a real TorchServe 0.12 and to the
server under test; `real_torchserve` (session-scoped, via conftest) is shared between them.
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.parse
from pathlib import Path

import pytest
import torch

from handlerkit import samples

HANDLERS = Path(__file__).parent / "handlers"
BATCHED = "quirks_batched"


@pytest.fixture(scope="session")
def battery_store(tmp_path_factory) -> Path:
    """The .mar files every server under test loads."""
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


BATCH = {BATCHED: 4}  # the batched model's settings, on every server
BATCH_DELAY = {BATCHED: 3000}


@pytest.fixture(scope="session")
def real_torchserve(battery_store):
    """One real TorchServe with the battery, shared by every test module that compares."""
    from handlerkit.serve import TorchServe

    with TorchServe(battery_store, {name: f"{name}.mar" for name in MODELS}) as server:
        server.register(BATCHED, "quirks.mar", BATCH[BATCHED], BATCH_DELAY[BATCHED])
        yield server


def send(server, method: str, path: str, body: bytes = b"", headers=None):
    """(status, body bytes, content-type) from a server on a socket (`inference_url` or `url`)."""
    url = getattr(server, "inference_url", None) or server.url
    host, port = urllib.parse.urlsplit(url).netloc.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request(method, path, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("content-type")
    finally:
        connection.close()


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


def unclosed(form: tuple[bytes, dict]) -> tuple[bytes, dict]:
    """The form with its closing ``--boundary--`` cut off: the last field ends nowhere."""
    body, headers = form
    return body[: body.rindex(b"\r\n--")], headers


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
    "request headers, lower case": ("quirks", b"headers", {"x-custom": "yes"}),
    "form fields": ("quirks", *multipart(FIELDS)),
    "form without its closing delimiter": ("quirks", *unclosed(multipart(FIELDS))),
    "urlencoded fields": ("quirks", b"body=fields&a=1&b=h%C3%A9", {"Content-Type": FORM}),
}  # fmt: skip

ROUTES = [  # paths TorchServe routes itself: ping, unknown model, unknown path, versions, explain
    ("GET", "/ping"),
    ("POST", "/predictions/no_such_model"),
    ("GET", "/nothing/here"),
    ("POST", "/predictions"),
    ("POST", "/predictions/quirks/1.0"),
    ("POST", "/explanations/quirks"),
]
