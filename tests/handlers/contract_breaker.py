"""A function entry point that breaks one of TorchServe's rules for answers, as asked.

Each request's body names the breach (see BREACHES); the whole batch gets that handler's answer.
Written as users write these bugs (TorchServe's issue tracker has each of them).
"""

import numpy as np
import torch


def _rows(data):
    return [(row.get("body") or row.get("data") or b"").decode() for row in data]


def handle(data, context):
    if data is None:  # TorchServe calls handle(None, context) once to initialize
        return None
    kind = _rows(data)[0]
    n = len(data)
    if kind == "none":
        answers = [{"digit": 7}] * n  # noqa: F841 - the forgotten `return`
        return None
    if kind == "dict":
        return {"digit": 7, "probabilities": [0.1] * 10}
    if kind == "tuple":
        return tuple({"digit": 7} for _ in range(n))
    if kind == "generator":
        return ({"digit": 7} for _ in range(n))
    if kind == "tensor":
        return torch.zeros(n, 10)
    if kind == "numpy":
        return np.zeros((n, 10))
    if kind == "spread":  # one request's probabilities returned as the batch
        return [0.1] * 10
    if kind == "empty":
        return []
    if kind == "tensor_inside":
        return [{"digit": 7, "p": torch.tensor([0.5, 0.5])} for _ in range(n)]
    if kind == "numpy_inside":
        return [{"digit": np.int64(7)} for _ in range(n)]
    if kind == "set_inside":
        return [{"labels": {"seven"}} for _ in range(n)]
    if kind == "bytes_inside":
        return [{"image": b"\x89PNG"} for _ in range(n)]
    if kind == "header_int":
        context.set_response_header(0, "X-Count", 3)
        return ["ok"] * n
    if kind == "status_str":
        context.set_response_status("400", "bad input")
        return ["bad"] * n
    # answered with 200, but not as a client expects
    if kind == "tensor_row":
        return [torch.tensor([0.25, 0.75]) for _ in range(n)]
    if kind == "nan":
        return [{"p": float("nan")} for _ in range(n)]
    if kind == "repr":
        return [str({"digit": 7}) for _ in range(n)]
    return [{"echo": kind} for _ in range(n)]
