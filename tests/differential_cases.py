"""The differential tests' fixed cases: requests the generator found answered differently
(kept as regressions, sent first on every run), and the deliberate divergences, each asserted.

See docs/divergences_requests.md for the divergences: what TorchServe does, what we do, why.
"""

from __future__ import annotations

from handlerkit.compare import Reply
from handlerkit.generated_requests import Request

FORM = (("Content-Type", "application/x-www-form-urlencoded"),)


def _multipart(body: bytes, boundary: str = "b", ct: str = "multipart/form-data") -> Request:
    headers = (("Content-Type", f"{ct}; boundary={boundary}"),)
    return Request("POST", "/predictions/echo", headers, body, "multipart")


_PART = b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nhi\r\n'

# Each class of difference the generator found before the fixes (issue 32), one request each.
REGRESSIONS: list[Request] = [
    # model versions: a version the model does not have is 404; its own version answers
    Request("POST", "/predictions/echo/2.0", (), b"hi", "route"),
    Request("POST", "/explanations/echo/2.0", (), b"hi", "route"),
    Request("POST", "/predictions/echo/1.0/extra", (), b"hi", "route"),
    Request("POST", "/predictions/echo/../../ping", (), b"", "route"),  # version ".."
    # the path is percent-decoded; a bad escape is Netty's IllegalArgumentException (403)
    Request("POST", "/predictions/%65cho", (), b"", "route"),
    Request("POST", "/predictions/echo%zz", (), b"", "route"),
    Request("POST", "/predictions/ech%", (), b"", "route"),
    # OPTIONS: the API's description; "/" with another method is 405; HEAD has no body
    Request("OPTIONS", "/", (), b"", "route"),
    Request("OPTIONS", "/predictions/echo", (), b"", "route"),
    Request("GET", "/", (), b"", "route"),
    Request("GET", "/api-description", (), b"", "route"),
    Request("HEAD", "/ping", (), b"", "route"),
    Request("HEAD", "/predictions/echo", (), b"", "route"),
    # a request line over Netty's 4,095 characters is 400 "Invalid HTTP message."
    Request("GET", "/ping?" + "q" * 4080, (), b"", "route"),
    Request("GET", "/ping?" + "q" * 4079, (), b"", "route"),
    # url-encoded bodies as Netty's decoder reads them
    Request("POST", "/predictions/echo", FORM, b"a=%zz&b=1", "form"),
    Request("POST", "/explanations/echo", FORM, b"a=%", "form"),
    Request("POST", "/predictions/no_such_model", FORM, b"a=%4", "form"),  # before the model
    Request("POST", "/predictions/echo", FORM, b"=x", "form"),
    Request("POST", "/predictions/echo", FORM, b"a=1&&b=2", "form"),
    Request("POST", "/predictions/echo", FORM, b"%zz=1", "form"),
    Request("POST", "/predictions/echo", FORM, b"a=1&tail", "form"),
    Request("POST", "/predictions/echo", FORM, b"a=1\r\nb=2", "form"),
    Request("POST", "/predictions/echo", FORM, b"a=1\rb=2", "form"),
    Request("POST", "/predictions/echo", FORM, "é=ü&k=%e9".encode(), "form"),
    Request(
        "POST",
        "/predictions/echo",
        (("Content-Type", "application/x-www-form-urlencoded ; charset=utf-8"),),
        b"a=1",
        "form",
    ),  # the mime type is what comes before ';', as written: not a form
    # multipart bodies as Netty's decoder reads them
    _multipart(_PART),  # no closing delimiter: the part never completes
    _multipart(_PART + b"--b"),  # a delimiter line ends it
    _multipart(b"preamble\r\n" + _PART + b"--b--\r\n"),  # a preamble: no fields
    _multipart(_PART + b"--b--\r\nepilogue"),
    _multipart(b"--b\r\nContent-Disposition: form-data\r\n\r\nhi\r\n--b--\r\n"),  # no name
    _multipart(b'--b\r\nContent-Disposition: attachment; name="a"\r\n\r\nhi\r\n--b--\r\n'),
    _multipart(b'--b\r\nContent-Disposition: form-data; name=""\r\n\r\nhi\r\n--b--\r\n'),
    _multipart(_PART + _PART.replace(b"hi", b"2") + b"--b--\r\n"),  # two parts of one name
    _multipart(_PART.replace(b"--b", b"--a'()b") + b"--a'()b--\r\n", "a'()b"),
    _multipart(_PART.replace(b"--b", b"--a'()b") + b"--a'()b--\r\n", '"a\'()b"'),
    _multipart(_PART + b"--b--\r\n", ct="Multipart/Form-Data"),  # not lower case: raw body
    _multipart(_PART + b"--b--\r\n", ct="multipart/form-data; charset=utf-8;"),
    _multipart(
        b'--b\r\nContent-Disposition: form-data; name="f"; filename="x.png"\r\n\r\nPNG\r\n--b--\r\n'
    ),  # a file part without a type is application/octet-stream
    _multipart(
        b'--b\r\nContent-Disposition: form-data; name="a"\r\n'
        b"Content-Type: text/plain; charset=latin-1\r\n\r\nhi\r\n--b--\r\n"
    ),  # a charset Java does not know
    _multipart(
        b'--b\r\nContent-Disposition: form-data; name="a"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\naGk=\r\n--b--\r\n"
    ),
    _multipart(
        b'--b\r\nContent-Disposition: form-data; name="a"; filename="x"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\naGk=\r\n--b--\r\n"
    ),
    # a non-ASCII status phrase garbles ts's reply: TorchServe's "Worker died."
    Request("POST", "/predictions/mnist", FORM, "é=ü".encode(), "form"),
    # header names reach the handler as written (the engines' ASGI servers lower-case them)
    Request("POST", "/predictions/echo", (("X-Custom", "Yes"), ("x-other", "2")), b"x", "raw"),
]

# llhttp (uvicorn's parser on LitServe and Ray Serve) knows these methods; Netty takes any token.
LLHTTP_METHODS = {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "CONNECT", "TRACE"}
UVICORN_400 = b"Invalid HTTP request received."


def divergence(runner: str, request: Request, torchserve: Reply, ours: Reply) -> str | None:
    """The name of the listed divergence that explains this difference, or None."""
    if runner in ("litserve", "ray") and request.method not in LLHTTP_METHODS:
        if (ours.status, ours.body) == (400, UVICORN_400):
            return "unknown method on the engines"
    return None


# name -> (runners, request, what TorchServe answers, what the runner answers)
DIVERGENCES = {
    "unknown method on the engines": (
        ("litserve", "ray"),
        Request("FOO", "/predictions/echo", (), b"x", "route"),
        lambda reply: reply.status == 200,
        lambda reply: (reply.status, reply.body) == (400, UVICORN_400),
    ),
    "legacy /{model}/predict": (
        ("offline", "litserve", "ray"),
        Request("POST", "/echo/predict", (), b"x", "route"),
        lambda reply: reply.status == 200 and b'"rows": 1' in reply.body,
        lambda reply: reply.status == 404 and b"ResourceNotFoundException" in reply.body,
    ),
}
