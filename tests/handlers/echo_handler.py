"""A function entry point that answers with what its worker received, so that two servers that
parse a request differently give different answers even when their statuses agree.

Per row: each key, its value's type and content (text as it is, bytes by length and sha256,
JSON values as they are), and every request header as `get_request_header` reads it, by the
name the worker received it under (host and content-length left out: they name the server).
"""

import hashlib

SKIPPED = {"host", "content-length"}


def _describe(value):
    if isinstance(value, (bytes, bytearray)):
        digest = hashlib.sha256(bytes(value)).hexdigest()[:16]
        return {"type": "bytes", "length": len(value), "sha256": digest}
    if isinstance(value, str):
        return {"type": "str", "value": value}
    return {"type": type(value).__name__, "value": value}


def _headers(context, idx):
    names = context.request_processor[idx].get_request_properties()
    return {
        name: context.get_request_header(idx, name)
        for name in sorted(names)
        if name.lower() not in SKIPPED
    }


def handle(data, context):
    if data is None:  # TorchServe calls handle(None, context) once to initialize
        return None
    return [
        {
            "rows": len(data),
            "fields": [[key, _describe(value)] for key, value in row.items()],
            "headers": _headers(context, idx),
        }
        for idx, row in enumerate(data)
    ]
