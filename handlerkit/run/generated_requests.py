"""Requests as clients write them, generated: methods, paths, content types and bodies.

The input side of `compare` and of the differential tests: each generated `Request` goes to a real
TorchServe and to a runner, and the answers must be the same bytes. One seeded `random.Random`
draws a request (hypothesis drives it in the tests, through `st.randoms()`), so a seed replays it.
"""

from __future__ import annotations

import json
import random
import urllib.parse
from dataclasses import dataclass, field

KINDS = ("json", "text", "form", "multipart", "raw", "route")


@dataclass(frozen=True)
class Request:
    """One HTTP request: method, target (path and query), headers as written, body bytes.

    `kind` says what was generated (json, text, form, multipart, raw, route, or file).
    """

    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    kind: str = "raw"
    note: str = field(default="", compare=False)

    def to_http(self) -> bytes:
        """The request as a `.http` file: request line, headers, a blank line, the body."""
        head = [f"{self.method} {self.target}"] + [f"{k}: {v}" for k, v in self.headers]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + self.body

    @classmethod
    def from_http(cls, data: bytes, kind: str = "file", note: str = "") -> Request:
        """Read a `.http` file (what `to_http` writes; LF line ends work too)."""
        head, sep, body = data.partition(b"\r\n\r\n")
        if not sep:
            head, _, body = data.partition(b"\n\n")
        lines = head.decode("latin-1").replace("\r\n", "\n").split("\n")
        method, _, target = lines[0].strip().partition(" ")
        headers = tuple(
            (name.strip(), value.strip())
            for name, _, value in (line.partition(":") for line in lines[1:] if line.strip())
        )
        return cls(method, target.strip() or "/", headers, body, kind, note)


def generate(rng: random.Random, models: tuple[str, ...] = ("echo",)) -> Request:
    """One request: mostly predictions to `models` with a body of a random kind; some odd routes."""
    kind = rng.choice(KINDS)
    model = rng.choice(models)
    if kind == "route":
        return _route_request(rng, model)
    body, content_type = BODIES[kind](rng)
    headers = []
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    headers += _custom_headers(rng)
    rng.shuffle(headers)
    method = rng.choice(["POST"] * 8 + ["PUT", "GET"])
    return Request(method, _prediction_path(rng, model), tuple(headers), body, kind)


# ---- paths and methods ---------------------------------------------------------------------
def _prediction_path(rng: random.Random, model: str) -> str:
    api = rng.choice(["predictions"] * 5 + ["explanations"])
    path = rng.choice(
        [f"/{api}/{model}"] * 6
        + [f"/{api}/{model}/", f"/{api}/{model}/1.0", f"/{api}/{model}/2.0", f"/{api}/{model}/3.0"]
        + [f"/{api}/{model}/1.0/", f"/{api}/{model}/1.0/extra/path"]
    )
    return path + _query(rng)


def _query(rng: random.Random) -> str:
    return rng.choice(
        ["", "", "", "?a=1", "?a=1&a=2&b", "?x=%zz", "?q=" + "z" * rng.randint(1, 200)]
    )


def _route_request(rng: random.Random, model: str) -> Request:
    method = rng.choice(
        ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "FOO", "options"]
    )
    path = rng.choice(
        [
            "/ping",
            "/ping/",
            "/PING",
            "/",
            "/predictions",
            "/predictions/",
            f"/predictions/{model}",
            f"/Predictions/{model}",
            f"/predictions/{model.upper()}",
            "/predictions/no_such_model",
            "/predictions/no_such_model/1.0",
            f"/predictions/{model}/../../ping",
            "/predictions/../ping",
            f"/predictions/{model}/2.0",
            f"/predictions/{model}/1.0",
            f"/explanations/{model}/..",
            "/models",
            "/metrics",
            "/nothing/here",
            f"//predictions/{model}",
            f"/predictions/%{ord(model[0]):02x}{model[1:]}",
            f"/predictions/{model}%zz",
            f"/predictions/{model[:-1]}%",
            f"/predictions/{model}%2F1.0",
            "/api-description",
            f"/predictions//{model}",
        ]
    )
    if rng.random() < 0.2:  # a long query: the request line may outgrow the server's limit
        path += "?" + "q" * rng.choice([100, 3000, 4060, 4070, 4080, 4090, 4100, 5000])
    else:
        path += _query(rng)
    return Request(method, path, tuple(_custom_headers(rng)), b"", "route")


def _custom_headers(rng: random.Random) -> list[tuple[str, str]]:
    names = ["X-Custom", "x-custom", "X-UPPER", "x-Request-Id", "Accept", "User-Agent"]
    values = ["yes", "1", "a b", "*/*", "curl/8.5.0", "é", ""]
    return [(rng.choice(names), rng.choice(values)) for _ in range(rng.randint(0, 2))]


# ---- bodies --------------------------------------------------------------------------------
def _case(rng: random.Random, text: str) -> str:
    return rng.choice([text, text.upper(), text.title(), text])


def _json_body(rng: random.Random) -> tuple[bytes, str | None]:
    value = rng.choice(
        [
            {"data": [1, 2, 3]},
            {"a": 1, "b": None, "c": "é", "d": [True, False]},
            [1.5, -0.0, 1e300],
            "just a string",
            {"big": 10**30},
            {"emoji": "\U0001f600", "cjk": "数字"},
            {"data": {"nested": {"deep": [1, {"x": "y"}]}}},
        ]
    )
    text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
    body = rng.choice(
        [
            text.encode(),
            text.encode(),
            b"\xef\xbb\xbf" + text.encode(),  # a BOM
            b'{"a": 1e999}',  # a number JSON cannot hold
            b"{not json",
            b"",
            text.encode()[: rng.randint(0, len(text))],  # cut short
        ]
    )
    content_type = _case(rng, "application/json") + rng.choice(
        ["", "", "; charset=utf-8", ";charset=UTF-8", " ; charset=utf-8"]
    )
    return body, content_type


def _text_body(rng: random.Random) -> tuple[bytes, str | None]:
    text = rng.choice(["hello", "héllo wörld", "数字 7", "", "a\r\nb\n", "\U0001f600"])
    charset = rng.choice(["utf-8", "latin-1", "utf-16", "ascii", "cp1252", None])
    try:
        body = text.encode(charset or "utf-8")
    except UnicodeEncodeError:
        body = text.encode("utf-8")
    params = f"; charset={charset}" if charset else ""
    return body, _case(rng, "text/plain") + params


def _form_body(rng: random.Random) -> tuple[bytes, str | None]:
    pairs = [
        "a=1",
        "a=2",
        "b=",
        "c",
        "=x",
        "",
        "d=h%C3%A9",
        "e=%zz",
        "f=%",
        "g=%4",
        "h=a+b",
        "i=%2B%26%3D",
        "é=ü",
        "k=%e9",
        "data=" + urllib.parse.quote(bytes(range(0, 256, 17))),
    ]
    body = "&".join(rng.choice(pairs) for _ in range(rng.randint(0, 4)))
    body += rng.choice(["", "", "&", "\r\n", "\n"])
    content_type = _case(rng, "application/x-www-form-urlencoded") + rng.choice(
        ["", "", "; charset=utf-8", " ; charset=UTF-8"]
    )
    return body.encode("utf-8"), content_type


def _multipart_body(rng: random.Random) -> tuple[bytes, str | None]:
    """A form as browsers, curl, requests and broken clients write it."""
    boundary = rng.choice(
        [
            "----WebKitFormBoundary7MA4YWxkTrZu0gW",  # browsers
            "------------------------d74496d66958873e",  # curl
            "9b3c1f0e8a5d4e2f",  # requests
            "a'()+_,-./:=?b",  # every character RFC 2046 allows
            "b",
        ]
    )
    quoted = rng.random() < 0.3
    parts = [_part(rng) for _ in range(rng.randint(0, 3))]
    newline = b"\n" if rng.random() < 0.1 else b"\r\n"
    body = b"".join(b"--" + boundary.encode() + newline + part for part in parts)
    ending = rng.choice(["close", "close", "close", "none", "no-newline", "dashes-only"])
    if ending == "close":
        body += b"--" + boundary.encode() + b"--" + newline
    elif ending == "no-newline":
        body += b"--" + boundary.encode() + b"--"
    elif ending == "dashes-only":
        body += b"--" + boundary.encode()
    if rng.random() < 0.15:
        body = b"a preamble" + newline + body
    if rng.random() < 0.15:
        body += b"an epilogue" + newline
    shown = f'"{boundary}"' if quoted else boundary
    content_type = _case(rng, "multipart/form-data") + rng.choice(
        [f"; boundary={shown}", f";boundary={shown}", f"; boundary={shown}; charset=utf-8", ""]
    )
    return body, content_type


def _part(rng: random.Random) -> bytes:
    name = rng.choice(['"data"', '"body"', '"a"', "a", '"a"', '""', '"x y"', None])
    filename = rng.choice([None, None, '"d.png"', '""', "d.bin", '"é.txt"'])
    disposition = rng.choice(["form-data", "form-data", "form-data", "Form-Data", "attachment"])
    lines = [f"Content-Disposition: {disposition}"]
    if name is not None:
        lines[0] += f"; name={name}"
    if filename is not None:
        lines[0] += f"; filename={filename}"
    content_type = rng.choice(
        [None, None, "image/png", "text/plain", "text/plain; charset=utf-8", "application/json"]
    )
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    value = rng.choice([b"hi", b"", b"\x89PNG\r\n\x1a\n\x00\xff", "é".encode(), b'{"a": 1}'])
    return "\r\n".join(lines).encode("utf-8") + b"\r\n\r\n" + value + b"\r\n"


def _raw_body(rng: random.Random) -> tuple[bytes, str | None]:
    body = rng.choice([b"", b"\x00\x01\x02", bytes(rng.randrange(256) for _ in range(40))])
    content_type = rng.choice(
        [None, "application/octet-stream", "image/png", "", "Application/Octet-Stream", "x/y; a=b"]
    )
    return body, content_type


BODIES = {
    "json": _json_body,
    "text": _text_body,
    "form": _form_body,
    "multipart": _multipart_body,
    "raw": _raw_body,
}
