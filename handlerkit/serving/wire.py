"""The worker's wire: a batch of requests in TorchServe's binary format, and the reply decoded.

TorchServe's frontend writes each batch to its Python worker in this format and reads the reply;
here `ts`'s own decoder (`retrieve_msg`) reads what we encode, and `ts.service` writes the reply.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .frontend import RequestInput

END = -1


@dataclass
class Prediction:
    """The worker's answer to one request of a batch."""

    request_id: str
    content_type: str
    status: int
    phrase: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Reply:
    """The worker's reply to a batch: an overall code and message, then one `Prediction` each."""

    code: int
    message: str
    predictions: list[Prediction]


def encode_batch(batch: list[RequestInput]) -> bytes:
    """An inference command ("I") for `batch`, byte for byte as the frontend sends it."""
    out = bytearray(b"I")
    for request in batch:
        _field(out, request.request_id)
        for name, value in request.headers.items():
            _field(out, name)
            _field(out, value)
        out += struct.pack("!i", END)
        for parameter in request.parameters:
            _field(out, parameter.name)
            _field(out, parameter.content_type)
            out += struct.pack("!i", len(parameter.value)) + parameter.value
        out += struct.pack("!i", END)
    out += struct.pack("!i", END)
    return bytes(out)


def decode_batch(message: bytes) -> list[dict]:
    """The batch as `ts`'s worker reads it off its socket (JSON and text bodies decoded)."""
    from ts.protocol.otf_message_handler import retrieve_msg

    command, batch = retrieve_msg(_Socket(message))
    assert command == b"I", command
    return batch


def decode_reply(message: bytes) -> Reply:
    """Read the reply `ts.service` wrote (`create_predict_response`)."""
    reader = _Reader(message)
    code = reader.int()
    text = reader.text()
    predictions = []
    while (length := reader.int()) != END:
        request_id = reader.take(length).decode()
        content_type = reader.text()
        status = reader.int()
        phrase = reader.text()
        headers = {reader.text(): reader.text() for _ in range(reader.int())}
        body = reader.take(reader.int())
        predictions.append(Prediction(request_id, content_type, status, phrase, headers, body))
    return Reply(code, text, predictions)


def _field(out: bytearray, text: str | None) -> None:
    data = b"" if text is None else text.encode("utf-8")
    out += struct.pack("!i", len(data)) + data


class _Socket:
    """Just enough of a socket for `retrieve_msg`: `recv(n)` from a bytes buffer."""

    def __init__(self, data: bytes) -> None:
        self._data, self._at = memoryview(data), 0

    def recv(self, size: int) -> bytes:
        chunk = bytes(self._data[self._at : self._at + size])
        self._at += len(chunk)
        return chunk


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data, self._at = memoryview(data), 0

    def take(self, size: int) -> bytes:
        chunk = bytes(self._data[self._at : self._at + size])
        self._at += size
        return chunk

    def int(self) -> int:
        return struct.unpack("!i", self.take(4))[0]

    def text(self) -> str:
        return self.take(self.int()).decode("utf-8")
