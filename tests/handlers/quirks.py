"""A function entry point whose answers cover TorchServe's reply rules, one request at a time.

Each request names what to do: JSON {"answer": KIND} or a text/bytes body holding KIND.
Batch-wide kinds (raise, mismatch, prediction_exception) act on the whole batch, as in TorchServe.
"""

import json

from ts.utils.util import PredictionException


def _kind(row):
    value = row.get("body", row.get("data"))
    if isinstance(value, dict):
        return value.get("answer", "echo"), value
    if isinstance(value, (bytes, bytearray)):
        try:
            return value.decode(), value
        except UnicodeDecodeError:
            return "binary", value
    if isinstance(value, str):
        return value, value
    return "echo", value


def _describe(value):
    if isinstance(value, (bytes, bytearray)):
        return {"type": "bytes", "length": len(value), "head": list(value[:8])}
    return {"type": type(value).__name__, "value": value}


def handle(data, context):
    if data is None:  # TorchServe calls handle(None, context) once to initialize
        return None
    kinds = [_kind(row)[0] for row in data]
    if "raise" in kinds:
        raise ValueError("the handler raised on purpose")
    if "prediction_exception" in kinds:
        raise PredictionException("the input is not acceptable", 422)
    if "too_large" in kinds:
        raise PredictionException("the answer is too large", 413)
    if "mismatch" in kinds:
        return [{"ok": True}] * (len(data) + 1)
    if "not_a_list" in kinds:
        return {"ok": True}
    answers = []
    for idx, row in enumerate(data):
        kind, value = _kind(row)
        if kind == "dict":
            answers.append({"b": 2, "a": [1, 2.5, None], "nested": {"x": "é"}})
        elif kind == "list":
            answers.append([3, 1, 2])
        elif kind == "str":
            answers.append("plain text answer")
        elif kind == "bytes":
            answers.append(b"\x00\x01binary\xff")
        elif kind == "status":
            context.set_response_status(418, "I'm a teapot", idx)
            answers.append({"error": "short and stout"})
        elif kind == "content_type":
            context.set_response_content_type(idx, "text/csv")
            answers.append("a,b\n1,2\n")
        elif kind == "header":
            context.set_response_header(idx, "x-handler", "quirks")
            answers.append({"with": "header"})
        elif kind == "fields":
            answers.append({name: _describe(v) for name, v in sorted(row.items())})
        elif kind == "headers":
            names = ("explain", "url_path", "x-custom")
            answers.append({n: context.get_request_header(idx, n) for n in names})
        elif kind == "batch_size":
            answers.append({"rows_in_this_batch": len(data)})
        elif kind == "unserializable":
            answers.append({1, 2})
        else:
            answers.append({"echo": _describe(value), "json": json.dumps(str(type(value)))})
    return answers
